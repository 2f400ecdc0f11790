"""model/face/builder/: the face cut's clipping and the UV chart, on small meshes with known answers."""
import numpy as np
import pytest

from model.face.builder import topology, uv_chart


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
