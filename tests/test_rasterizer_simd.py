"""The rasterizer's AVX2 code gives the same bytes as its SSE2 code.

On x86-64 CPUs with AVX2, rasterize_core.cc takes 8-wide AVX2 versions of the projection, the
forward pass's group loop, the gradient's pixel loop and the chain through the projection; with
FACE3D_RASTERIZER_NO_AVX2=1 it takes the SSE2 code that other CPUs run. The two do the same float
operations in the same order, lane by lane, so every output (triangle ids, mask, barycentrics,
depth, the projection handed to the gradient, and the gradients through the barycentrics, the
depth and both) must be identical bit for bit. A child process computes them for fuzzed cases
(bench/bench_fuzz.py: NaN, inf, +-3.4e38, subnormals, w at and behind the eye), the benchmark's
face-sized mesh and a perspective triangle soup with special values, with and without back-face
culling, once per setting; the parent compares the bytes.
"""
import numpy as np
import pytest

from tests.simd_child import avx2_cpu, run_child


CHILD = r'''
import os, sys
import numpy as np
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
import renderer
import bench_fuzz
from bench_rasterizer import face_sized_mesh


def soup(seed):
    rng = np.random.default_rng(seed)
    batch, vertices, triangles = 2, 1501, 3003
    w = rng.uniform(0.3, 3.0, (batch, vertices))
    clip = np.concatenate([rng.uniform(-1.3, 1.3, (batch, vertices, 3)) * w[..., None], w[..., None]], -1)
    clip = clip.astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -0.5, 1e-13, 1e13, 1e-40, 1e30, 2.0 ** -41,
                         2.0 ** 41, 1e7], np.float32)
    where = rng.random(clip.shape) < 0.03
    clip[where] = rng.choice(specials, int(where.sum()))
    clip[:, :100, :2] *= 6  # some large triangles
    tri = rng.integers(0, vertices, (triangles, 3)).astype(np.int32)
    local = rng.integers(0, vertices - 3, triangles // 2)
    tri[: triangles // 2] = np.stack([local, local + 1, local + 2], -1)
    return clip, tri


cases = []
for index in range(200):
    case = bench_fuzz.make_case(7, index)
    if case["bad_index"] or case["clip"].shape[0] == 0:
        continue
    cases.append(("fuzz%d" % index, case["clip"], case["triangles"], (case["height"], case["width"]),
                  [case["cull"]]))
clip, tri = face_sized_mesh(2, 224)
cases.append(("face", clip, tri, (224, 224), [False, True]))
cases.append(("face_band", clip[:1], tri, (97, 131), [False, True]))
for seed in (1, 2):
    clip, tri = soup(seed)
    cases.append(("soup%d" % seed, clip, tri, (45, 67), [False, True]))

graphs = {}


def graph_for(height, width, cull):
    key = (height, width, cull)
    if key not in graphs:
        clip_t = tf.placeholder(tf.float32, [None, None, 4])
        tri_t = tf.placeholder(tf.int32, [None, 3])
        bary_w = tf.placeholder(tf.float32, [None, height, width, 3])
        depth_w = tf.placeholder(tf.float32, [None, height, width])
        ids, mask, bary, depth, projected = renderer.rasterizer.load_op().rasterize_clip_triangles(
            clip_t, tri_t, image_height=height, image_width=width, cull_backfaces=cull)
        bary_loss = tf.reduce_sum(bary * bary_w)
        depth_loss = tf.reduce_sum(depth * depth_w)
        fetches = {"ids": ids, "mask": mask, "bary": bary, "depth": depth, "projected": projected,
                   "d_bary": tf.gradients(bary_loss, clip_t)[0],
                   "d_depth": tf.gradients(depth_loss, clip_t)[0],
                   "d_both": tf.gradients(bary_loss + depth_loss, clip_t)[0]}
        graphs[key] = (clip_t, tri_t, bary_w, depth_w, fetches)
    return graphs[key]


results = {}
with tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=2)) as session:
    for name, clip, tri, size, culls in cases:
        for cull in culls:
            clip_t, tri_t, bary_w, depth_w, fetches = graph_for(size[0], size[1], cull)
            rng = np.random.default_rng(1)
            feed = {clip_t: clip, tri_t: tri,
                    bary_w: rng.normal(size=(clip.shape[0],) + size + (3,)).astype(np.float32),
                    depth_w: rng.normal(size=(clip.shape[0],) + size).astype(np.float32)}
            for key, value in session.run(fetches, feed).items():
                results["%s_%d_%s" % (name, cull, key)] = value
np.savez(OUT, **results)
'''


@pytest.mark.slow
def test_avx2_and_sse2_code_give_identical_bytes(tmp_path):
    if not avx2_cpu():
        pytest.skip("this CPU has no AVX2 (or no /proc/cpuinfo): the two settings run the same code")
    avx2, sse2 = str(tmp_path / "avx2.npz"), str(tmp_path / "sse2.npz")
    run_child(CHILD, avx2, disable_avx2=False)
    run_child(CHILD, sse2, disable_avx2=True)
    with np.load(avx2) as a, np.load(sse2) as b:
        assert sorted(a.files) == sorted(b.files)
        assert len(a.files) > 8 * 150
        differing = [key for key in a.files
                     if a[key].dtype != b[key].dtype or a[key].shape != b[key].shape
                     or a[key].tobytes() != b[key].tobytes()]
        assert differing == [], differing[:10]
        # The cases draw something and have gradients.
        assert a["face_0_mask"].mean() > 0.5 and np.abs(a["face_0_d_both"]).max() > 0
        assert np.abs(a["soup1_0_d_both"]).max() > 0
