"""The vertex loops' AVX2 code gives the same bytes as their baseline (SSE2) code.

shading_core.cc (ShShading and its gradient) and camera_core.cc (CropProject, RotateVectors and
their gradients) compile their block loops twice, for the build's baseline and, by the
target("avx2") attribute, for AVX2, taken at run time where the CPU has it unless
FACE3D_RASTERIZER_NO_AVX2=1 (renderer/kernels/simd_dispatch.h). Both do the same float operations
in the same order, lane by lane, and the gradients' sums over the vertices go into the same fixed
lanes whatever the vector width, so every output must be identical bit for bit, but for the sign
and payload of NaNs: where both operands of an operation are NaN, x86 returns one of them, and
which one depends on the operand order the compiler picks for each instruction set (IEEE 754
leaves it open), so NaNs are compared as NaNs. A child process
computes them for random meshes of awkward sizes (one vertex, less than a lane group, a block and
one, the face model's size) and special values (NaN, inf, huge, subnormal), once per setting; the
parent compares the bytes.
"""
import numpy as np
import pytest

from tests.simd_child import avx2_cpu, run_child


CHILD = r'''
import os, sys
import numpy as np
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
from renderer import load_op
from renderer.shading import _BAND_SCALES

ops = load_op()
results = {}
with tf.Graph().as_default(), tf.Session() as session:
    for case, vertices in enumerate((1, 7, 129, 11296)):
        rng = np.random.default_rng(case)
        batch = 2
        def floats(*shape, scale=1.0):
            x = (rng.normal(size=shape) * scale).astype(np.float32)
            if x.size > 8:  # special values in the first mesh
                flat = x.reshape(-1)
                flat[:5] = [np.nan, np.inf, -np.inf, 3e38, 1e-42]
            return x
        normals = floats(batch, vertices, 3)
        normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
        albedo, d_colours = floats(batch, vertices, 3), floats(batch, vertices, 3)
        light = floats(batch, 9, 3, scale=0.3)
        scales = np.asarray(_BAND_SCALES, np.float32)
        points, d_points, d_clip = floats(batch, vertices, 3, scale=50.0), floats(batch, vertices, 3), floats(batch, vertices, 4)
        rotation = floats(batch, 3, 3)
        centre, scale, shift = floats(3), floats(batch), floats(batch, 2)
        empty = np.zeros([0], np.float32)
        fetches = {"colours": ops.sh_shading(normals, albedo, light, scales),
                   "shading_grad": ops.sh_shading_grad(normals, albedo, light, scales, d_colours),
                   "project": ops.crop_project(points, rotation, centre, scale, shift, image_size=224, depth_scale=100.0),
                   "rotate": ops.rotate_vectors(normals, rotation),
                   "rotate_grad": ops.rotate_vectors_grad(normals, rotation, d_colours)}
        for name, (dp, dc) in {"both": (d_points, d_clip), "points": (d_points, empty),
                               "clip": (empty, d_clip), "none": (empty, empty)}.items():
            fetches["project_grad_" + name] = ops.crop_project_grad(
                points, rotation, centre, scale, shift, dp, dc, image_size=224, depth_scale=100.0)
        for name, value in session.run(fetches).items():
            for i, array in enumerate(value if isinstance(value, (list, tuple)) else [value]):
                results["%d_%s_%d" % (case, name, i)] = array
np.savez(OUT, **results)
'''


def same_bits(x, y):
    """Identical dtype, shape and bytes, NaNs of any sign and payload counting as equal."""
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind != "f":
        return x.tobytes() == y.tobytes()
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    return np.array_equal(nan_x, nan_y) and x[~nan_x].tobytes() == y[~nan_y].tobytes()


def test_avx2_and_baseline_vertex_loops_give_identical_bytes(tmp_path):
    if not avx2_cpu():
        pytest.skip("this CPU has no AVX2 (or no /proc/cpuinfo): the two settings run the same code")
    avx2, baseline = str(tmp_path / "avx2.npz"), str(tmp_path / "baseline.npz")
    run_child(CHILD, avx2, disable_avx2=False)
    run_child(CHILD, baseline, disable_avx2=True)
    with np.load(avx2) as a, np.load(baseline) as b:
        assert sorted(a.files) == sorted(b.files)
        assert len(a.files) == 4 * (1 + 3 + 2 + 1 + 2 + 4 * 4)
        differing = [key for key in a.files if not same_bits(a[key], b[key])]
        assert differing == [], differing[:10]
        # The big case has finite, non-trivial gradients in its second mesh.
        assert np.all(np.isfinite(a["3_shading_grad_2"][1])) and np.abs(a["3_shading_grad_2"][1]).max() > 0
        assert np.abs(a["3_project_grad_both_1"][1]).max() > 0
