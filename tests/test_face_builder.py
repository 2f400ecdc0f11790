"""model/face/builder/: the face cut's clipping and the UV chart, on small meshes with known answers."""
import numpy as np
import pytest

from model.face.builder import bases, topology, uv_chart


def grid_mesh(n, extent=1.0):
    """A flat n x n vertex grid on [-extent, extent]^2 (z = 0), counter-clockwise triangles."""
    xs = np.linspace(-extent, extent, n)
    x, y = np.meshgrid(xs, xs)
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]
    triangles = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                                np.stack([a, c, d], -1).reshape(-1, 3)])
    return vertices, triangles


def area_2d(points, triangles):
    return uv_chart.triangle_areas(points[:, :2], triangles)


def test_clipping_by_a_circle_keeps_its_inside_with_the_orientation():
    vertices, triangles = grid_mesh(21)
    values = np.sum(vertices[:, :2] ** 2, axis=1) / 0.7 ** 2 - 1.0
    clipped, edges, t, source = topology.clip_triangles(triangles, values)
    cut_points = (1 - t[:, None]) * vertices[edges[:, 0]] + t[:, None] * vertices[edges[:, 1]]
    points = np.concatenate([vertices, cut_points])
    areas = area_2d(points, clipped)
    assert (areas > 0).all()
    # The cut points lie on the circle (up to the chord's sagitta) and the kept area is the
    # inscribed polygon's, a little under pi r^2.
    np.testing.assert_allclose(np.linalg.norm(cut_points[:, :2], axis=1), 0.7, atol=0.02)
    assert areas.sum() == pytest.approx(np.pi * 0.7 ** 2, rel=0.02)
    used = np.unique(clipped)
    assert (values[used[used < len(vertices)]] <= 0).all()
    assert (source >= 0).all() and (source < len(triangles)).all()


def test_snapping_moves_near_end_cut_points_onto_the_vertex():
    vertices, triangles = grid_mesh(3)                  # spacing 1
    values = vertices[:, 0] - 0.1                       # the line x = 0.1: 10% from x = 0
    snapped = topology.snap_to_cut(triangles, values)
    assert (snapped[vertices[:, 0] == 0] == 0).all()
    _, edges, _, _ = topology.clip_triangles(triangles, snapped)
    assert len(edges) == 0                              # the cut now runs along x = 0


def test_boundary_loops_of_an_annulus_are_its_two_rims():
    vertices, triangles = grid_mesh(7)
    centre = np.all(np.abs(vertices[triangles][..., :2]).max(axis=1) < 0.4, axis=1)
    loops = topology.boundary_loops(triangles[~centre])
    assert sorted(len(loop) for loop in loops) == [8, 24]


def cap_mesh(n=25, radius=60.0, height=35.0):
    """A symmetric spherical cap (a face-sized dome, mm) over a disk, z towards the viewer."""
    vertices, triangles = grid_mesh(n, extent=1.0)
    inside = np.linalg.norm(vertices[:, :2], axis=1) <= 1.0
    keep = inside[triangles].all(axis=1)
    triangles = triangles[keep]
    used = np.unique(triangles)
    remap = np.full(len(vertices), -1)
    remap[used] = np.arange(len(used))
    xy = vertices[used, :2] * radius
    sphere = (radius ** 2 + height ** 2) / (2 * height)
    z = np.sqrt(sphere ** 2 - np.sum(xy ** 2, axis=1)) - (sphere - height)
    points = np.concatenate([xy, z[:, None]], axis=1)
    triangles = remap[triangles]
    # Mirror twins under x -> -x: the grid is symmetric, find each vertex's twin.
    twin = {tuple(np.round(p, 6)): i for i, p in enumerate(points * [1, 1, 1])}
    mirror = np.array([twin[tuple(np.round(p * [-1, 1, 1], 6))] for p in points])
    return points, triangles, mirror


def test_chart_of_a_dome_is_flip_free_symmetric_and_nearly_equal_area():
    points, triangles, mirror = cap_mesh()
    outer = max(topology.boundary_loops(triangles), key=len)
    uv = uv_chart.flatten_face(points, triangles, outer, mirror)
    figures = uv_chart.chart_figures(points, triangles, uv, mirror, np.ones(len(points), bool))
    assert figures["flipped"] == 0
    assert figures["mirror_error"] < 1e-9
    assert figures["area_ratio_spread"] < 1.6
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    # Upright: u grows with x, v with y.
    assert np.corrcoef(uv[:, 0], points[:, 0])[0, 1] > 0.99
    assert np.corrcoef(uv[:, 1], points[:, 1])[0, 1] > 0.99


def test_chart_shrinks_a_pocket_instead_of_inflating_it():
    # A deep pit in the middle of the dome (a pocket like an eye socket): flattened at its true
    # area it would push the rest apart; with the pocket flag it takes a small part of the chart.
    points, triangles, mirror = cap_mesh()
    pit = np.linalg.norm(points[:, :2], axis=1) < 12.0
    points = points.copy()
    points[pit, 2] -= 60.0 * (1 - np.linalg.norm(points[pit, :2], axis=1) / 12.0)
    outer = max(topology.boundary_loops(triangles), key=len)
    uv = uv_chart.flatten_face(points, triangles, outer, mirror, pocket=pit)
    areas = uv_chart.triangle_areas(uv, triangles)
    assert (areas > 0).all()
    pocket_share = areas[pit[triangles].all(axis=1)].sum() / areas.sum()
    true_share = (uv_chart.triangle_areas(points, triangles)[pit[triangles].all(axis=1)].sum()
                  / uv_chart.triangle_areas(points, triangles).sum())
    assert pocket_share < 0.5 * true_share


# ------------------------------------------------------------------ overall size out of the identity

def least_squares_scale(shape, reference, mask):
    """argmin_k |k (reference - c_ref) - (shape - c)|^2 over the masked vertices (c: their centroids)."""
    r = reference[mask] - reference[mask].mean(axis=0)
    x = shape[mask] - shape[mask].mean(axis=0)
    return float(np.sum(r * x) / np.sum(r * r))


def test_removing_size_deletes_a_pure_scaling_and_keeps_shape_changes_orthogonal_to_it():
    rng = np.random.default_rng(3)
    n = 30
    mean_shape = rng.normal(size=(n, 3)) * 50 + np.array([5.0, -3.0, 20.0])
    mask = np.arange(n) < 24  # the last vertices (a "mouth interior") do not count for size
    centre = mean_shape[mask].mean(axis=0)
    scaling = 0.1 * (mean_shape - centre)
    shape_change = rng.normal(size=(n, 3))
    offsets = bases.remove_translation(np.stack([scaling.ravel(), shape_change.ravel()]), n)
    projected, removed = bases.remove_size(offsets, mean_shape, mask)
    # A uniform scaling about the masked centroid is all size (translation removed again after).
    assert np.abs(projected[0]).max() < 1e-10 and removed[0] > 0.99  # the rest: a translation over the mask
    assert 0.0 < removed[1] < 0.2
    size = (mean_shape - centre)[mask].ravel()
    for row in projected:
        o = row.reshape(n, 3)
        assert abs(np.dot(o[mask].ravel(), size)) < 1e-9 * np.linalg.norm(size)
        assert np.abs(o.mean(axis=0)).max() < 1e-12
    # Any mix of the projected offsets keeps the mean shape's size: least-squares scale 1.
    for weights in rng.normal(size=(5, 2)) * 3:
        shape = mean_shape + (weights @ projected).reshape(n, 3)
        assert least_squares_scale(shape, mean_shape, mask) == pytest.approx(1.0, abs=1e-12)
        # ... while the unprojected mix is larger or smaller.
        assert abs(least_squares_scale(mean_shape + (weights @ offsets).reshape(n, 3), mean_shape, mask)
                   - 1.0) > 1e-3
    # An offset that is already size- and translation-free is kept as it is.
    again, removed_again = bases.remove_size(projected[1:], mean_shape, mask)
    assert np.allclose(again, projected[1:], atol=1e-12) and removed_again[0] < 1e-20


def test_size_free_identity_basis_is_the_pca_of_the_projected_population():
    rng = np.random.default_rng(4)
    n, m = 20, 7
    mean_shape = rng.normal(size=(n, 3)) * 30
    mask = np.arange(n) < 16
    size = mean_shape - mean_shape[mask].mean(axis=0)
    # Targets with a strong size component, as MakeHuman's macro targets have.
    offsets = rng.normal(size=(m, n * 3)) + rng.normal(size=(m, 1)) * 3 * size.ravel()
    offsets = bases.remove_translation(offsets, n)
    weights = rng.uniform(size=(400, m))
    basis, variances, fraction = bases.identity_basis(offsets, weights, 4, mean_shape, mask)
    projected, _ = bases.remove_size(offsets, mean_shape, mask)
    samples = weights @ projected
    centred = samples - samples.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    assert np.allclose(variances, (sv ** 2 / (len(samples) - 1))[:len(variances)])
    gram = basis.T @ basis
    assert np.allclose(gram, np.diag(variances[:4]), atol=1e-8 * variances[0])  # orthogonal, honest stds
    assert np.abs(basis.reshape(n, 3, 4)[mask].reshape(-1, 4).T @ size[mask].ravel()).max() < 1e-8
    raw = weights @ offsets
    total = np.sum(np.var(raw, axis=0, ddof=1))
    assert fraction == pytest.approx(1.0 - np.sum(np.var(samples, axis=0, ddof=1)) / total)
    assert fraction > 0.5
