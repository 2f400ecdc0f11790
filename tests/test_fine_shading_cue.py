"""The fine network's shading cue (fine.shading_cue): the first-order shading of a displacement."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from model import coarse, fine
from model.face import FaceModel
from model.face.uv_layout import UVLayout
from renderer import shading

tf.disable_eager_execution()

UV_SIZE = 64


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def layout(face_model):
    return UVLayout(face_model, UV_SIZE)


def coefficients(face_model, light_band1):
    coeffs = np.zeros((1, face_model.coeff_size), np.float32)
    parts = face_model.coefficient_slices()
    coeffs[0, parts["pose"].start + 1] = 0.3                       # some yaw
    light = np.zeros((9, 3), np.float32)
    light[1:4] = np.asarray(light_band1, np.float32)[:, None]
    coeffs[0, parts["light"]] = light.ravel()
    return coeffs


def bumps(size, amplitude=0.3, frequency=25.0):
    rows, cols = np.mgrid[0:size, 0:size] / float(size)
    return (amplitude * np.sin(frequency * rows + 1.0) * np.sin(0.7 * frequency * cols)).astype(np.float32)


def cue_and_detail_shading(face_model, layout, coeffs, displacement):
    """(cue [S, S, 2], grey shading of the displaced dense mesh minus the undisplaced one, [S, S],
    0 off the dense mesh)."""
    with tf.Graph().as_default(), tf.Session() as session:
        model = coarse.CoarseModel(face_model, None, render_size=128)
        co = model.decode(tf.constant(coeffs), tf.zeros([1, 300, 300, 3]))
        fm = fine.FineModel(face_model, layout, None)
        fo = fm.decode(co, tf.constant(displacement[None, :, :, None]), 128)
        parts = face_model.split_coefficients(co["coeffs"])
        rotation = face_model.camera.rotation(parts["pose"])
        albedo = layout.dense_from_vertices(co["albedo"])

        def shade(normals):
            return tf.reduce_mean(shading.sh_shading(tf.matmul(normals, rotation, transpose_b=True), albedo,
                                                     parts["light"]), axis=-1)
        detail = shade(fo["dense_normals"]) - shade(fo["dense_coarse_normals"])
        cue, detail = session.run([fine.shading_cue(face_model, layout, co), detail])
    grid = np.zeros(UV_SIZE * UV_SIZE, np.float32)
    grid[layout.dense_texels] = detail[0]
    return cue[0], grid.reshape(UV_SIZE, UV_SIZE)


def first_order(cue, displacement):
    """-(cue_col (d[c+1] - d[c-1]) / 2 + cue_row (d[r+1] - d[r-1]) / 2) / SHADING_CUE_SCALE."""
    d_col = np.zeros_like(displacement)
    d_row = np.zeros_like(displacement)
    d_col[:, 1:-1] = 0.5 * (displacement[:, 2:] - displacement[:, :-2])
    d_row[1:-1] = 0.5 * (displacement[2:] - displacement[:-2])
    return -(cue[..., 0] * d_col + cue[..., 1] * d_row) / fine.SHADING_CUE_SCALE


def test_the_cue_predicts_the_shading_a_displacement_adds(face_model, layout):
    displacement = bumps(UV_SIZE) * layout.mask
    coeffs = coefficients(face_model, [0.2, 0.3, 0.4])
    cue, detail = cue_and_detail_shading(face_model, layout, coeffs, displacement)
    assert cue.shape == (UV_SIZE, UV_SIZE, 2) and np.all(np.isfinite(cue))
    inner = layout._inner(2)
    predicted = first_order(cue, displacement)[inner]
    actual = detail[inner]
    assert np.abs(actual).max() > 1e-3                     # the bumps do show in the shading
    correlation = np.corrcoef(predicted, actual)[0, 1]
    slope = (predicted * actual).sum() / (predicted * predicted).sum()
    assert correlation > 0.9, correlation
    assert 0.7 < slope < 1.4, slope


def test_the_cue_flips_with_the_light_and_vanishes_without_a_direction(face_model, layout):
    zero = np.zeros((UV_SIZE, UV_SIZE), np.float32)
    cue, _ = cue_and_detail_shading(face_model, layout, coefficients(face_model, [0.2, 0.3, 0.4]), zero)
    flipped, _ = cue_and_detail_shading(face_model, layout, coefficients(face_model, [-0.2, -0.3, -0.4]), zero)
    ambient, _ = cue_and_detail_shading(face_model, layout, coefficients(face_model, [0.0, 0.0, 0.0]), zero)
    mask = layout.mask
    # Band 1 is odd in the normal: its shading derivative changes sign with the light; band 0 has none.
    np.testing.assert_allclose(flipped[mask], -cue[mask], atol=1e-3 * np.abs(cue[mask]).max())
    assert np.abs(cue[mask]).mean() > 0.01
    np.testing.assert_allclose(ambient[mask], 0.0, atol=1e-4)
    # Off the face (uncovered texels and their neighbours) the cue is 0.
    assert np.all(cue[~layout.covered] == 0.0)


def test_the_ratio_input_is_the_photo_relative_to_the_render_and_the_relative_cue_is_scaled():
    photo = np.array([0.3, 0.6, 0.0], np.float32).reshape(1, 1, 1, 3)
    render = np.array([0.2, 0.6, -0.1], np.float32).reshape(1, 1, 1, 3)
    visibility = np.ones((1, 1, 1, 1), np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        ratio, plain = session.run([fine.network_input(photo, render, visibility, ratio=True),
                                    fine.network_input(photo, render, visibility)])
    floor = fine.RATIO_FLOOR
    np.testing.assert_allclose(ratio[0, 0, 0], [0.1 / (0.2 + floor), 0.0, 0.1 / floor, 1.0], rtol=1e-6)
    np.testing.assert_allclose(plain[0, 0, 0], [0.2, 0.0, 0.2, 1.0], rtol=1e-6)


def test_the_relative_cue_is_the_cue_over_the_shade(face_model, layout):
    coeffs = coefficients(face_model, [0.2, 0.3, 0.4])
    with tf.Graph().as_default(), tf.Session() as session:
        co = coarse.CoarseModel(face_model, None, render_size=64).decode(tf.constant(coeffs), tf.zeros([1, 300, 300, 3]))
        absolute, relative = session.run([fine.shading_cue(face_model, layout, co),
                                          fine.shading_cue(face_model, layout, co, relative=True)])
    mask = layout.mask & (np.abs(absolute[0, ..., 0]) > 1e-3)
    factor = absolute[0][mask] / relative[0][mask]            # the shade + floor, the same for both channels
    assert np.all(factor[:, 0] > fine.RATIO_FLOOR) and np.all(factor[:, 0] < 2.0)
    both = mask & (np.abs(absolute[0, ..., 1]) > 1e-3)
    np.testing.assert_allclose(absolute[0][both][:, 0] / relative[0][both][:, 0],
                               absolute[0][both][:, 1] / relative[0][both][:, 1], rtol=1e-4)
