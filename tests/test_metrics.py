"""model/metrics.py: known answers for every metric, and a brute-force point-to-triangle oracle."""
import numpy as np
import pytest

from model import metrics
from model.face import landmarks68
from model.face import FaceModel


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def rotation_about_x(degrees):
    a = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


@pytest.fixture(scope="module")
def face_model():
    return FaceModel()


@pytest.fixture
def landmarks():
    rng = np.random.default_rng(0)
    points = rng.uniform(50, 250, (68, 2))
    points[36], points[45] = (100.0, 120.0), (180.0, 120.0)   # outer eye corners 80 px apart
    return points


def test_nme_of_a_shifted_prediction_is_the_shift_over_the_outer_eye_corner_distance(landmarks):
    shifted = landmarks + np.array([3.0, 4.0])                 # 5 px for every point
    assert metrics.landmark_nme(shifted, landmarks) == pytest.approx(5.0 / 80.0)
    regions = metrics.landmark_nme_by_region(shifted, landmarks)
    assert set(regions) == {"jaw", "brows", "nose", "eyes", "mouth"}
    assert all(value == pytest.approx(5.0 / 80.0) for value in regions.values())


def test_nme_regions_cover_the_68_points_once_and_score_only_their_own_points(landmarks):
    indices = np.sort(np.concatenate(list(landmarks68.GROUPS.values())))
    np.testing.assert_array_equal(indices, np.arange(68))
    moved = landmarks.copy()
    moved[48:68] += (8.0, 0.0)                                 # only the mouth, by 8 px
    regions = metrics.landmark_nme_by_region(moved, landmarks)
    assert regions["mouth"] == pytest.approx(0.1)
    assert regions["jaw"] == regions["eyes"] == 0.0
    assert metrics.landmark_nme(moved, landmarks) == pytest.approx(0.1 * 20 / 68)


def test_nme_is_per_sample_over_leading_dimensions_and_normalised_by_the_target(landmarks):
    target = np.stack([landmarks, 2.0 * landmarks])            # second face twice as large
    predicted = target + 1.0
    np.testing.assert_allclose(metrics.landmark_nme(predicted, target),
                               [np.sqrt(2) / 80.0, np.sqrt(2) / 160.0])


def test_nme_rejects_wrong_shapes_and_degenerate_eye_corners(landmarks):
    with pytest.raises(ValueError, match="68"):
        metrics.landmark_nme(landmarks[:5], landmarks[:5])
    flat = landmarks.copy()
    flat[45] = flat[36]
    with pytest.raises(ValueError, match="36 and 45"):
        metrics.landmark_nme(landmarks, flat)


def test_kabsch_recovers_a_known_rigid_transform():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(50, 3)) * 40.0
    rotation, translation = random_rotation(rng), np.array([10.0, -5.0, 30.0])
    target = source @ rotation.T + translation
    found_rotation, found_translation = metrics.kabsch(source, target)
    np.testing.assert_allclose(found_rotation, rotation, atol=1e-10)
    np.testing.assert_allclose(found_translation, translation, atol=1e-9)


def test_umeyama_recovers_a_known_similarity_and_never_returns_a_reflection():
    rng = np.random.default_rng(2)
    source = rng.normal(size=(30, 3))
    rotation, translation = random_rotation(rng), np.array([1.0, 2.0, 3.0])
    scale, found_rotation, found_translation = metrics.umeyama(source, 2.5 * source @ rotation.T + translation)
    assert scale == pytest.approx(2.5)
    np.testing.assert_allclose(found_rotation, rotation, atol=1e-10)
    np.testing.assert_allclose(found_translation, translation, atol=1e-9)
    mirrored = source * np.array([-1.0, 1.0, 1.0])
    assert np.linalg.det(metrics.kabsch(source, mirrored)[0]) == pytest.approx(1.0)


def test_vertex_error_after_alignment_ignores_pose_and_measures_shape(face_model):
    rng = np.random.default_rng(3)
    shape = face_model.mean_shape.astype(np.float64)
    moved = shape @ random_rotation(rng).T + np.array([5.0, 6.0, 7.0])
    assert metrics.aligned_vertex_error(moved, shape).max() < 1e-9
    bumped = shape.copy()
    bumped[::2, 2] += 1.0                                  # half the vertices 1 mm forward
    error = metrics.aligned_vertex_error(bumped, shape)
    assert error.shape == (face_model.num_vertices,)
    assert 0.4 < error.mean() < 0.6                        # alignment splits the 1 mm: ~0.5 each
    region = face_model.regions["nose"]
    assert metrics.aligned_vertex_error(bumped, shape, mask=region).shape == (region.sum(),)


def grid_surface(size=12, spacing=2.0):
    """A flat square grid in the z = 0 plane: vertices [size^2, 3], CCW triangles facing +z."""
    rows, cols = np.mgrid[0:size, 0:size]
    vertices = np.stack([cols.ravel() * spacing, rows.ravel() * spacing, np.zeros(size * size)], axis=1)
    index = np.arange(size * size).reshape(size, size)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    triangles = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return vertices, triangles


def test_normal_error_of_a_surface_against_itself_is_zero(face_model):
    shape = face_model.mean_shape
    mean, median = metrics.normal_angle_error(shape, shape, face_model.triangles)
    assert mean == pytest.approx(0.0, abs=1e-5) and median == pytest.approx(0.0, abs=1e-5)


def test_normal_error_against_a_plane_tilted_by_a_known_angle_is_that_angle():
    vertices, triangles = grid_surface()
    tilted = vertices @ rotation_about_x(17.0).T
    mean, median = metrics.normal_angle_error(vertices, tilted, triangles)
    assert mean == pytest.approx(17.0, abs=1e-6) and median == pytest.approx(17.0, abs=1e-6)
    bent = vertices.copy()
    bent[:, 2] = 0.5 * vertices[:, 0]                      # half the plane sloped ...
    half = vertices[:, 0] <= 11.0
    bent[half, 2] = 0.0                                    # ... the other half flat
    mask = vertices[:, 0] < 10.0                           # vertices well inside the flat half
    assert metrics.normal_angle_error(vertices, bent, triangles, mask)[0] == pytest.approx(0.0, abs=1e-6)


def test_displacement_error_is_the_mean_absolute_difference_over_the_mask():
    target = np.zeros((4, 4))
    predicted = np.zeros((4, 4))
    predicted[0] = 2.0
    predicted[1] = -1.0
    assert metrics.displacement_error(predicted, target) == pytest.approx(3.0 * 4 / 16)
    mask = np.zeros((4, 4), bool)
    mask[1] = True
    assert metrics.displacement_error(predicted, target, mask) == pytest.approx(1.0)


def brute_force_point_to_triangle(point, a, b, c):
    """Distance of a point to a triangle: the nearest of the interior projection, the three edges."""
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal)
    projected = point - np.dot(point - a, normal) * normal
    # Inside test by barycentric signs of the projection.
    signs = [np.dot(np.cross(q - p, projected - p), normal) for p, q in ((a, b), (b, c), (c, a))]
    candidates = []
    if all(s >= 0 for s in signs):
        candidates.append(np.linalg.norm(point - projected))
    for p, q in ((a, b), (b, c), (c, a)):
        t = np.clip(np.dot(point - p, q - p) / np.dot(q - p, q - p), 0.0, 1.0)
        candidates.append(np.linalg.norm(point - (p + t * (q - p))))
    return min(candidates)


def test_point_to_triangle_distance_agrees_with_a_brute_force_reference(face_model):
    rng = np.random.default_rng(4)
    # A patch of the face mesh (nose region) and points around it, some far off the surface.
    keep = face_model.regions["nose"]
    triangles = face_model.triangles[keep[face_model.triangles].all(axis=1)][:160]
    vertices = face_model.mean_shape.astype(np.float64)
    used = vertices[np.unique(triangles)]
    points = used[rng.integers(0, len(used), 24)] + rng.normal(0, 3.0, (24, 3))
    distances, closest, triangle_ids = metrics.point_to_mesh(points, vertices, triangles)
    for point, distance, found, tid in zip(points, distances, closest, triangle_ids):
        reference = min(brute_force_point_to_triangle(point, *vertices[t]) for t in triangles)
        assert distance == pytest.approx(reference, abs=1e-6)
        assert np.linalg.norm(point - found) == pytest.approx(distance, abs=1e-6)
        assert brute_force_point_to_triangle(point, *vertices[triangles[tid]]) == pytest.approx(reference, abs=1e-6)
    nearest_vertex = np.min(np.linalg.norm(points[:, None] - used[None], axis=2), axis=1)
    assert np.all(distances <= nearest_vertex + 1e-9) and np.any(distances < nearest_vertex - 0.1)


def surface_samples(rng, vertices, triangles, count):
    """Points uniformly spread over the triangles (area-weighted) and their triangle normals."""
    corners = vertices[triangles]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = np.linalg.norm(cross, axis=1)
    chosen = rng.choice(len(triangles), count, p=area / area.sum())
    u, v = rng.uniform(size=(2, count))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    c = corners[chosen]
    points = c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])
    return points, cross[chosen] / area[chosen, None]


def test_now_pipeline_recovers_a_known_rigid_transform_and_reports_the_scan_noise(face_model):
    rng = np.random.default_rng(5)
    vertices = face_model.mean_shape.astype(np.float64)
    triangles = face_model.triangles
    face = np.zeros(face_model.num_vertices, bool)
    for region in ("skin", "nose", "lips", "brows"):
        face |= face_model.regions[region]
    points, normals = surface_samples(rng, vertices, triangles[face[triangles].all(axis=1)], 6000)
    noise_mm = 0.5
    points = points + rng.normal(0.0, noise_mm, (len(points), 1)) * normals
    rotation = random_rotation(rng)
    translation = np.array([40.0, -25.0, 300.0])
    scan = points @ rotation.T + translation
    mesh_landmarks = vertices[face_model.landmarks68[list(metrics.NOW_LANDMARKS)]]
    # Scan landmarks as a person clicks them: a few mm off.
    scan_landmarks = mesh_landmarks @ rotation.T + translation + rng.normal(0, 2.0, (7, 3))

    result = metrics.scan_to_mesh_error(scan, scan_landmarks, vertices, triangles, mesh_landmarks)

    np.testing.assert_allclose(result["rotation"], rotation, atol=1e-3)
    aligned = metrics.apply_transform(vertices, result["rotation"], result["translation"])
    assert np.abs(aligned - (vertices @ rotation.T + translation)).max() < 0.2
    # |N(0, s)| has mean s sqrt(2 / pi), median 0.674 s (the mesh is smooth at this scale).
    assert result["mean_mm"] == pytest.approx(noise_mm * np.sqrt(2 / np.pi), rel=0.08)
    assert result["median_mm"] == pytest.approx(0.6745 * noise_mm, rel=0.08)
    assert result["distances"].shape == (len(scan),) and result["std_mm"] > 0
    # From the landmarks alone the error would be several times larger: ICP did the work.
    start_rotation, start_translation = metrics.kabsch(mesh_landmarks, scan_landmarks)
    start = metrics.point_to_mesh(scan, metrics.apply_transform(vertices, start_rotation, start_translation),
                                  triangles)[0]
    assert start.mean() > 2.0 * result["mean_mm"]
