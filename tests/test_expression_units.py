"""The "units" expression draw (preprocess/appearance.ExpressionUnits, resources/expression_units.npz):
what the units do to the face, how often they move, and that the draw changes nothing else."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from model.face import FaceModel
from model.face import landmarks68 as lm
from preprocess import appearance, synthesize


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture(scope="module")
def units(face_model):
    return appearance.ExpressionUnits(face_model)


def landmarks_of(face_model, expression):
    offsets = (face_model.exp_basis @ expression).reshape(-1, 3)
    return (face_model.mean_shape + offsets)[face_model.landmarks68]


def one_unit(units, name, value=1.0):
    activation = np.zeros(len(units.names))
    activation[units.index[name]] = value
    return activation @ units.coefficients


def test_the_file_holds_the_52_units_each_of_full_size_in_the_basis(units, face_model):
    assert len(units.names) == 52 and units.coefficients.shape == (52, face_model.k_exp)
    sizes = np.linalg.norm(units.coefficients, axis=1)
    # Units of iid U(0, 1) activations have principal spread sqrt(1/3): a unit at 1 is sqrt(3)
    # long in the basis' standard deviations (eyeLookIn/Out lose a little in dropped components).
    moving = sizes > 0
    assert np.sum(~moving) <= 1
    assert np.all((sizes[moving] > 1.15) & (sizes[moving] < 1.74))


def test_jaw_open_drops_the_chin_and_eye_blink_closes_the_eye(units, face_model):
    neutral = landmarks_of(face_model, np.zeros(face_model.k_exp))
    jaw = landmarks_of(face_model, one_unit(units, "jawOpen"))
    assert neutral[8, 1] - jaw[8, 1] > 8.0                    # mm down
    assert (jaw[66, 1] - jaw[62, 1]) < (neutral[66, 1] - neutral[62, 1]) - 5.0   # lips apart
    for side, (upper, lower) in (("Right", ((37, 38), (41, 40))), ("Left", ((43, 44), (47, 46)))):
        blink = landmarks_of(face_model, one_unit(units, "eyeBlink" + side))
        open_gap = np.mean(neutral[list(upper), 1] - neutral[list(lower), 1])
        closed_gap = np.mean(blink[list(upper), 1] - blink[list(lower), 1])
        assert open_gap > 3.0 and closed_gap < 0.35 * open_gap, side


def test_draws_are_sparse_non_negative_and_left_right_together(units):
    rng = np.random.default_rng(0)
    draws = np.array([units.activations(rng) for _ in range(2000)])
    assert draws.min() >= 0 and draws.max() <= 1
    active = (draws > 0).sum(axis=1)
    # ~6 of the 52 units move in a face (a smile moves six), and ~7% of faces are neutral.
    assert 2.0 < active.mean() < 8.0 and np.mean(active == 0) > 0.04
    closed = draws[:, units.index["eyeBlinkLeft"]] >= 0.3
    assert abs(closed.mean() - appearance.EYES_PROBABILITY) < 0.06
    smiling = draws[:, units.index["mouthSmileLeft"]] > 0
    assert abs(smiling.mean() - appearance.SMILE_PROBABILITY - appearance.UNIT_PROBABILITY) < 0.06
    for left, right in [g for g in units.groups if len(g) == 2]:
        both = draws[:, [units.index[left], units.index[right]]]
        assert np.all(np.abs(both[:, 0] - both[:, 1]) <= 0.15 + 1e-9), left


def test_the_units_draw_replaces_the_expression_and_leaves_every_other_draw(face_model):
    assert appearance.AppearanceOptions().expression == "units"
    assert appearance.AppearanceOptions.plain().expression == "gaussian"
    gaussian = synthesize.SampleRenderer(face_model, map_size=32, options=dataclasses.replace(
        appearance.AppearanceOptions(), expression="gaussian"))
    moving = synthesize.SampleRenderer(face_model, map_size=32)
    slices = face_model.coefficient_slices()
    a = gaussian.sample(synthesize.sample_rng(4, 1))
    b = moving.sample(synthesize.sample_rng(4, 1))
    for part in ("identity", "albedo", "light"):
        np.testing.assert_array_equal(a["coefficients"][slices[part]], b["coefficients"][slices[part]])
    np.testing.assert_allclose(a["coefficients"][slices["pose"]][:3], b["coefficients"][slices["pose"]][:3],
                               atol=1e-6)
    np.testing.assert_array_equal(a["displacement"], b["displacement"])
    assert not np.allclose(a["coefficients"][slices["expression"]], b["coefficients"][slices["expression"]])
    # The same sample twice: the same bytes.
    c = moving.sample(synthesize.sample_rng(4, 1))
    np.testing.assert_array_equal(b["image"], c["image"])


def test_a_units_file_of_another_face_model_is_refused_naming_it(face_model, tmp_path):
    path = tmp_path / "units.npz"
    with np.load(appearance.EXPRESSION_UNITS_PATH) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["face_model_sha256"] = "0" * 64
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="units.npz was built for another face model"):
        appearance.ExpressionUnits(face_model, str(path))
    with pytest.raises(FileNotFoundError, match="build_expression_units.py"):
        appearance.ExpressionUnits(face_model, str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="--expression"):
        appearance.AppearanceOptions(expression="grimace").validate()
