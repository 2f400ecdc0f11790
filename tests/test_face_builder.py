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


# --------------------------------------------------- overall size and rotation out of the identity

def least_squares_scale(shape, reference, mask):
    """argmin_k |k (reference - c_ref) - (shape - c)|^2 over the masked vertices (c: their centroids)."""
    r = reference[mask] - reference[mask].mean(axis=0)
    x = shape[mask] - shape[mask].mean(axis=0)
    return float(np.sum(r * x) / np.sum(r * r))


def linearised_rotation(shape, reference, mask):
    """The small rotation w [3] (radians) that best explains shape - reference over the mask after
    translation: argmin_w |w x (reference - c) - (d - mean d)|^2, d = shape - reference."""
    r = reference[mask] - reference[mask].mean(axis=0)
    d = shape[mask] - reference[mask]
    d = d - d.mean(axis=0)
    fields = np.stack([np.cross(axis, r).ravel() for axis in np.eye(3)], axis=1)
    return np.linalg.lstsq(fields, d.ravel(), rcond=None)[0]


def rotation_about_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def small_model(rng, n=30):
    mean_shape = rng.normal(size=(n, 3)) * 50 + np.array([5.0, -3.0, 20.0])
    mask = np.arange(n) < n - 6  # the last vertices (a "mouth interior") do not count
    return mean_shape, mask


def test_removing_camera_directions_deletes_scalings_and_small_rotations():
    rng = np.random.default_rng(3)
    mean_shape, mask = small_model(rng)
    n = len(mean_shape)
    centre = mean_shape[mask].mean(axis=0)
    scaling = 0.1 * (mean_shape - centre)
    rotation = np.cross(np.array([0.02, -0.01, 0.03]), mean_shape - centre)
    both = scaling + rotation + np.array([1.0, 2.0, 3.0])
    offsets = bases.remove_translation(np.stack([scaling.ravel(), rotation.ravel(), both.ravel()]), n)
    projected, removed = bases.remove_camera_directions(offsets, mean_shape, mask)
    assert np.abs(projected).max() < 1e-10
    assert np.all(removed > 0.99)  # the rest: a translation over the mask


def test_mixes_of_projected_offsets_keep_the_mean_size_and_orientation():
    rng = np.random.default_rng(4)
    mean_shape, mask = small_model(rng)
    n = len(mean_shape)
    centre = mean_shape[mask].mean(axis=0)
    # Shape changes with a size and a rotation part, as MakeHuman's macro targets have.
    offsets = (5.0 * rng.normal(size=(3, n, 3)) + 0.1 * (mean_shape - centre)
               + np.cross(np.array([0.05, 0.0, 0.0]), mean_shape - centre))
    offsets = bases.remove_translation(offsets.reshape(3, -1), n)
    projected, removed = bases.remove_camera_directions(offsets, mean_shape, mask)
    assert np.all((removed > 0.05) & (removed < 0.95))
    for row in projected:
        assert np.abs(row.reshape(n, 3).mean(axis=0)).max() < 1e-12  # still translation-free
    for weights in rng.normal(size=(5, 3)) * 3:
        shape = mean_shape + (weights @ projected).reshape(n, 3)
        assert least_squares_scale(shape, mean_shape, mask) == pytest.approx(1.0, abs=1e-12)
        assert np.abs(linearised_rotation(shape, mean_shape, mask)).max() < 1e-12
        raw = mean_shape + (weights @ offsets).reshape(n, 3)
        assert abs(least_squares_scale(raw, mean_shape, mask) - 1.0) > 1e-3
        assert np.abs(linearised_rotation(raw, mean_shape, mask)).max() > 1e-3
    # A finite rotation of a projected mix is found again as the pose by the linearised fit.
    shape = mean_shape + (np.ones(3) @ projected).reshape(n, 3)
    turned = (shape - centre) @ rotation_about_x(0.01).T + centre
    assert linearised_rotation(turned, mean_shape, mask)[0] == pytest.approx(0.01, abs=2e-3)
    # An offset that is already free of them is kept as it is.
    again, removed_again = bases.remove_camera_directions(projected, mean_shape, mask)
    assert np.allclose(again, projected, atol=1e-12) and removed_again.max() < 1e-20


def test_identity_basis_is_the_pca_of_the_projected_population():
    rng = np.random.default_rng(5)
    mean_shape, mask = small_model(rng, 20)
    n, m = len(mean_shape), 7
    size = mean_shape - mean_shape[mask].mean(axis=0)
    offsets = rng.normal(size=(m, n * 3)) + rng.normal(size=(m, 1)) * 3 * size.ravel()
    offsets = bases.remove_translation(offsets, n)
    weights = rng.uniform(size=(400, m))
    basis, variances, fractions = bases.identity_basis(offsets, weights, 4, mean_shape, mask)
    projected, _ = bases.remove_camera_directions(offsets, mean_shape, mask)
    samples = weights @ projected
    sv = np.linalg.svd(samples - samples.mean(axis=0), compute_uv=False)
    assert np.allclose(variances, (sv ** 2 / (len(samples) - 1))[:len(variances)])
    assert np.allclose(basis.T @ basis, np.diag(variances[:4]), atol=1e-8 * variances[0])  # honest stds
    fields = bases.camera_directions(mean_shape, mask)[:, mask].reshape(4, -1)
    assert np.abs(fields @ basis.reshape(n, 3, 4)[mask].reshape(-1, 4)).max() < 1e-8
    # The reported fractions: of the raw samples' variance over the mask, along each direction.
    raw = (weights @ offsets).reshape(len(weights), n, 3)[:, mask].reshape(len(weights), -1)
    raw = raw - raw.mean(axis=0)
    total = np.sum(raw ** 2)
    unit = fields[0] / np.linalg.norm(fields[0])
    assert fractions["size"] == pytest.approx(np.sum((raw @ unit) ** 2) / total)
    assert fractions["size"] > 0.5 and fractions["size"] <= fractions["all"] <= 1.0
