"""Differential test: our forward pass against Google's tf_mesh_renderer (mesh-renderer==1.4).

The upstream kernel is fetched from PyPI and compiled on first use (bench/upstream_rasterizer.py,
cached under cache/). Only forward outputs are compared: upstream's gradient has a known bug.
Upstream draws both windings (so ours runs without culling) and puts row 0 at the bottom.
Pixels may legitimately differ only at exact ties: a pixel centre on a triangle edge (both
triangles claim it and float rounding picks one) or two surfaces at equal depth.
"""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import renderer

tf.disable_eager_execution()

IMAGE_SIZE = (48, 64)
EDGE_TIE = 1e-4  # barycentric coordinate below which a pixel centre counts as on an edge
DEPTH_TIE = 1e-5


@pytest.fixture(scope="module")
def upstream():
    from bench import upstream_rasterizer
    try:
        upstream_rasterizer.load()
    except upstream_rasterizer.UpstreamUnavailable as error:
        pytest.skip("upstream mesh-renderer==1.4 unavailable: %s" % error)
    return upstream_rasterizer


def random_mesh(rng, perspective):
    """A triangle soup of 3 overlapping layers, clip-space [2, V, 4], partly off-screen."""
    batch, count = 2, 120
    centres = rng.uniform(-1.1, 1.1, (batch, count, 1, 2))
    xy = centres + rng.normal(0, 0.25, (batch, count, 3, 2))
    z = rng.uniform(-1.05, 1.05, (batch, count, 1, 1)) + rng.normal(0, 0.1, (batch, count, 3, 1))
    w = rng.uniform(0.3, 3.0, (batch, count, 3, 1)) if perspective else np.ones((batch, count, 3, 1))
    clip = np.concatenate([xy * w, z * w, w], -1).reshape(batch, count * 3, 4).astype(np.float32)
    triangles = np.arange(count * 3, dtype=np.int32).reshape(count, 3)
    return clip, triangles


def min_barycentric(clip, triangles, triangle_ids, rows, cols):
    """float64 smallest barycentric of each pixel centre (rows, cols: ours) in the given triangles."""
    height, width = IMAGE_SIZE
    corners = clip[triangles[triangle_ids]].astype(np.float64)  # [P, 3, 4]
    m = np.transpose(corners[..., [0, 1, 3]], (0, 2, 1))
    points = np.stack([2 * (cols + 0.5) / width - 1, 1 - 2 * (rows + 0.5) / height, np.ones(len(rows))], -1)
    lam = np.linalg.solve(m, points[..., None])[..., 0]
    return (lam / lam.sum(-1, keepdims=True)).min(-1)


@pytest.mark.parametrize("perspective", [False, True])
def test_forward_matches_upstream_except_at_exact_ties(upstream, perspective):
    rng = np.random.default_rng(7 + perspective)
    clip, triangles = random_mesh(rng, perspective)
    with tf.Graph().as_default(), tf.Session() as session:
        ours = renderer.rasterize(clip, triangles, IMAGE_SIZE)
        theirs = upstream.rasterize(tf.constant(clip), tf.constant(triangles), IMAGE_SIZE)
        ours, (their_bary, their_ids, their_z) = session.run([ours, theirs])
    # Upstream's row 0 is the bottom of the image.
    their_bary, their_ids, their_z = their_bary[:, ::-1], their_ids[:, ::-1], their_z[:, ::-1]
    their_mask = their_bary.sum(-1) > 0

    assert 0.3 < ours.mask.mean() < 0.95
    agree = (ours.mask == their_mask) & (~their_mask | (ours.triangle_ids == their_ids))
    assert agree.mean() > 0.99
    for b, rows, cols in zip(*np.nonzero(~agree)):
        near_edge = [min_barycentric(clip[b], triangles, ids[b, rows, cols][None], np.array([rows]),
                                     np.array([cols]))[0] < EDGE_TIE
                     for ids, covered in ((ours.triangle_ids, ours.mask == 1), (their_ids, their_mask))
                     if covered[b, rows, cols]]
        depth_tie = abs(ours.depth[b, rows, cols] - their_z[b, rows, cols]) < DEPTH_TIE
        assert any(near_edge) or depth_tie, "pixel (%d, %d, %d) differs away from any tie" % (b, rows, cols)

    both = agree & their_mask
    np.testing.assert_allclose(ours.barycentrics[both], their_bary[both], atol=2e-4)
    np.testing.assert_allclose(ours.depth[both], their_z[both], atol=5e-5)
