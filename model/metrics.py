"""Reconstruction metrics: the one home of every accuracy figure the project reports (NumPy).

evaluate.py, bench/bench_coarse.py and resources/preview_face_model.py read their numbers from here.

Conventions:
  * landmarks: [..., 68, 2] in the iBUG / dlib order (model/face/landmarks68.py), any pixel frame
    as long as prediction and target share it;
  * 3D points: [N, 3] in millimetres; a transform (scale s, rotation R [3, 3], translation t [3])
    maps points x (rows) to s x R^T + t, i.e. s R x + t for column vectors;
  * masks: bool [N] over vertices, None = all.
"""
import numpy as np

from model.face import landmarks68

# The 7 points of the NoW protocol, as indices of the 68: outer and inner corners of the right eye,
# inner and outer corners of the left eye (the subject's sides), nose tip, right and left mouth corner.
NOW_LANDMARKS = (36, 39, 42, 45, 30, 48, 54)


# ---------------------------------------------------------------------------------------- landmarks

def landmark_distances(predicted, target):
    """Point-to-point distances [..., 68] over the outer-eye-corner distance of `target`.

    Args:
      predicted, target: [..., 68, 2] (or [..., 68, 3]) in one frame.
    Raises:
      ValueError: shapes differ, are not 68 points, or a target's eye corners coincide.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape or predicted.shape[-2:-1] != (68,):
        raise ValueError("landmarks must both be [..., 68, D], got %s and %s"
                         % (predicted.shape, target.shape))
    normaliser = landmarks68.inter_ocular_distance(target)
    if np.any(normaliser <= 0):
        raise ValueError("target landmarks with coincident outer eye corners (points 36 and 45)")
    return np.linalg.norm(predicted - target, axis=-1) / normaliser[..., None]


def landmark_nme(predicted, target):
    """Normalised mean error [...]: mean point-to-point distance over the outer-eye-corner
    distance of the target (landmarks68.OUTER_EYE_CORNERS, points 36 and 45), the 300-W convention.
    See landmark_distances."""
    return landmark_distances(predicted, target).mean(axis=-1)


def landmark_nme_by_region(predicted, target):
    """dict region name (landmarks68.GROUPS: jaw, brows, nose, eyes, mouth) -> NME [...] of its points,
    with the same whole-face normaliser as landmark_nme."""
    distances = landmark_distances(predicted, target)
    return {name: distances[..., points].mean(axis=-1) for name, points in landmarks68.GROUPS.items()}


# ---------------------------------------------------------------------------------------- alignment

def _check_pairs(source, target):
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or len(source) < 3:
        raise ValueError("alignment needs two [N >= 3, 3] point sets, got %s and %s"
                         % (source.shape, target.shape))
    return source, target


def umeyama(source, target, with_scale=True):
    """Least-squares similarity transform from source to target (Umeyama 1991).

    Args:
      source, target: [N, 3] corresponding points, N >= 3 and not all on one line.
      with_scale: False fixes the scale to 1 (then this is Kabsch's rigid alignment).
    Returns:
      (scale, rotation [3, 3], translation [3]) minimising sum |s R source_i + t - target_i|^2,
      with det R = +1 (no reflection).
    """
    source, target = _check_pairs(source, target)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred_source, centred_target = source - source_mean, target - target_mean
    covariance = centred_target.T @ centred_source / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = 1.0
    if with_scale:
        scale = float(np.sum(singular * signs) / np.mean(np.sum(centred_source ** 2, axis=1)))
    translation = target_mean - scale * rotation @ source_mean
    return scale, rotation, translation


def kabsch(source, target):
    """Least-squares rigid transform (rotation [3, 3], translation [3]) from source to target [N, 3]."""
    _, rotation, translation = umeyama(source, target, with_scale=False)
    return rotation, translation


def apply_transform(points, rotation, translation, scale=1.0):
    """s R x + t for every row x of points [N, 3]."""
    return scale * np.asarray(points, dtype=np.float64) @ rotation.T + translation


def aligned_vertex_error(predicted, target, mask=None, with_scale=False):
    """Per-vertex distance in mm after aligning the prediction onto the target.

    Args:
      predicted, target: [N, 3] mm, vertex-to-vertex correspondence (one topology).
      mask: bool [N]: the vertices that are aligned and scored; None = all.
      with_scale: similarity (Umeyama) instead of rigid (Kabsch) alignment.
    Returns:
      [M] distances of the M masked vertices.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if mask is not None:
        predicted, target = predicted[mask], target[mask]
    scale, rotation, translation = umeyama(predicted, target, with_scale)
    return np.linalg.norm(apply_transform(predicted, rotation, translation, scale) - target, axis=1)


# ---------------------------------------------------------------------------------------- surfaces

def vertex_normals(vertices, triangles):
    """Unit area-weighted vertex normals [N, 3] of a mesh (vertices [N, 3], triangles [T, 3] CCW)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles)
    corners = vertices[triangles]
    face = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def normal_angle_error(vertices_a, vertices_b, triangles, mask=None):
    """Angle between the vertex normals of two surfaces of one topology, in the frame they are given in
    (align them first), over the masked vertices.

    Args:
      vertices_a, vertices_b: [N, 3]; triangles: [T, 3], shared.
      mask: bool [N] or None (all vertices).
    Returns:
      (mean, median) in degrees.
    """
    normals_a = vertex_normals(vertices_a, triangles)
    normals_b = vertex_normals(vertices_b, triangles)
    cosine = np.clip(np.sum(normals_a * normals_b, axis=1), -1.0, 1.0)
    angles = np.degrees(np.arccos(cosine))
    if mask is not None:
        angles = angles[mask]
    return float(angles.mean()), float(np.median(angles))


def dense_surface(layout, vertices, triangles, displacement=None, direction="normal"):
    """The dense UV-grid surface of a mesh and a displacement map, as the fine stage builds it
    (model/fine.FineModel.decode, model/face/forward.face_mesh), in NumPy.

    Each dense vertex (a detail-mask texel of `layout`) is the barycentric interpolation of the
    mesh at its texel centre, moved by the map's value along the interpolated, renormalised vertex
    normal ("normal") or along model z ("z"); its normal is the shading normal of
    UVLayout.detail_normals: normalise(smooth + n(displaced) - n(undisplaced)), n the dense grid
    mesh's area-weighted vertex normals.

    Args:
      layout: model.face.uv_layout.UVLayout (its size S).
      vertices: [N, 3] mm; triangles: [T, 3], the face model's.
      displacement: [S, S] or [S, S, 1] mm, or None (zero: the mesh's own surface, smooth normals).
      direction: "normal" or "z".
    Returns:
      (points [M, 3], unit normals [M, 3]), float64.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles)
    ids = layout.triangle_id.ravel()[layout.dense_texels]
    corners = triangles[ids]
    weights = layout.barycentrics.reshape(-1, 3)[layout.dense_texels].astype(np.float64)

    def interpolate(values):
        return np.sum(values[corners] * weights[:, :, None], axis=1)
    base = interpolate(vertices)
    smooth = interpolate(vertex_normals(vertices, triangles))
    smooth /= np.maximum(np.linalg.norm(smooth, axis=1, keepdims=True), 1e-12)
    if displacement is None:
        return base, smooth
    offsets = np.asarray(displacement, dtype=np.float64).reshape(-1)[layout.dense_texels][:, None]
    if direction == "normal":
        dense = base + offsets * smooth
    elif direction == "z":
        dense = base + offsets * np.array([0.0, 0.0, 1.0])
    else:
        raise ValueError("direction must be normal or z, got %r" % (direction,))
    normals = (smooth + vertex_normals(dense, layout.dense_triangles)
               - vertex_normals(base, layout.dense_triangles))
    return dense, normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def normal_angles(normals_a, normals_b):
    """Angles in degrees [K] between unit normals [K, 3] (row by row)."""
    cosine = np.clip(np.sum(np.asarray(normals_a) * np.asarray(normals_b), axis=1), -1.0, 1.0)
    return np.degrees(np.arccos(cosine))


def displacement_rms_error(predicted, target, mask=None):
    """Root mean square difference in mm of two displacement maps [S, S] (mm) over mask [S, S]
    (bool); with predicted = 0 it is the target's RMS (what predicting no detail scores)."""
    difference = np.asarray(predicted, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    if mask is not None:
        difference = difference[np.asarray(mask, dtype=bool)]
    return float(np.sqrt(np.mean(difference ** 2)))


def displacement_error(predicted, target, mask=None):
    """Mean absolute difference in mm of two displacement maps [S, S] (mm) over mask [S, S] (bool)."""
    difference = np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(target, dtype=np.float64))
    if mask is not None:
        difference = difference[np.asarray(mask, dtype=bool)]
    return float(difference.mean())


# ---------------------------------------------------------------------------------------- scans

class TriangleMesh(object):
    """A triangle mesh with a search tree (libigl's AABB) for nearest points on its triangles.

    Args:
      vertices: [N, 3]; triangles: [T, 3] 0-based.
    """

    def __init__(self, vertices, triangles):
        import igl

        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        self.triangles = np.ascontiguousarray(triangles, dtype=np.int64)
        self._tree = igl.AABB()
        self._tree.init(self.vertices, self.triangles)

    def nearest(self, points):
        """Each point's nearest point on a triangle (its interior, an edge or a corner).

        Args:
          points: [P, 3].
        Returns:
          (distances [P], closest points [P, 3], triangle ids [P]).
        """
        squared, triangle_ids, closest = self._tree.squared_distance(
            self.vertices, self.triangles, np.ascontiguousarray(points, dtype=np.float64))
        return np.sqrt(squared), closest, triangle_ids

    def triangle_normals(self, triangle_ids):
        """Unit normals [K, 3] of the triangles triangle_ids [K] (counter-clockwise = front)."""
        corners = self.vertices[self.triangles[triangle_ids]]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def point_to_mesh(points, vertices, triangles):
    """Each point's nearest point on a triangle mesh (on a triangle, not only at a vertex).

    Args:
      points: [P, 3]; vertices: [N, 3]; triangles: [T, 3].
    Returns:
      (distances [P], closest points [P, 3], triangle ids [P]).
    """
    return TriangleMesh(vertices, triangles).nearest(points)


def _small_rotation(omega):
    """Rotation matrix of the rotation vector omega [3] (Rodrigues)."""
    angle = np.linalg.norm(omega)
    if angle < 1e-15:
        return np.eye(3)
    k = omega / angle
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def rigid_icp(points, vertices, triangles, rotation, translation, iterations=50, tolerance_mm=1e-4):
    """Refines a rigid transform of a mesh onto a point cloud (ICP, no scale).

    Point-to-plane ICP: each iteration pairs every point with its nearest point on the mesh (point to
    triangle) and takes the rigid motion that minimises the squared distances to those triangles'
    planes (one Gauss-Newton step of the scan-to-mesh distance that NoW minimises; it converges in a
    few iterations where point-to-point ICP needs hundreds on a smooth face). It stops when no
    vertex moves by more than tolerance_mm, or after `iterations`.

    Args:
      points: [P, 3] mm, the fixed cloud (a scan).
      vertices, triangles: the mesh [N, 3] mm, [T, 3].
      rotation, translation: the initial mesh -> cloud transform.
    Returns:
      (rotation, translation), mesh -> cloud.
    """
    mesh = TriangleMesh(vertices, triangles)
    points = np.asarray(points, dtype=np.float64)
    # The mesh stays put (one search tree) and the cloud moves instead: x_mesh = x_cloud C^T + c.
    cloud_rotation = rotation.T
    cloud_translation = -translation @ rotation
    for _ in range(iterations):
        moved = points @ cloud_rotation.T + cloud_translation
        _, closest, triangle_ids = mesh.nearest(moved)
        normals = mesh.triangle_normals(triangle_ids)
        centre = moved.mean(axis=0)
        arm = moved - centre
        # Residual along the normal after a small motion (omega about centre, tau):
        #   (x - c) . n + omega . (arm x n) + tau . n
        system = np.concatenate([np.cross(arm, normals), normals], axis=1)
        residual = np.sum((moved - closest) * normals, axis=1)
        step = np.linalg.lstsq(system, -residual, rcond=None)[0]
        step_rotation = _small_rotation(step[:3])
        step_translation = centre + step[3:] - centre @ step_rotation.T
        cloud_rotation = step_rotation @ cloud_rotation
        cloud_translation = cloud_translation @ step_rotation.T + step_translation
        # Largest motion of a scan point in this step (the cloud spans the compared region).
        shift = np.abs(moved @ step_rotation.T + step_translation - moved).max()
        if shift < tolerance_mm:
            break
    return cloud_rotation.T, -cloud_translation @ cloud_rotation


def scan_to_mesh_error(scan_points, scan_landmarks, vertices, triangles, mesh_landmarks,
                       icp_points=20000, icp_iterations=50):
    """Scan-to-mesh distance of a reconstruction, following the NoW protocol.

    1. rigid alignment (rotation + translation, Kabsch) of the mesh onto the scan from landmark
       pairs (the 7 points of NOW_LANDMARKS);
    2. refinement by rigid ICP (no scale, `rigid_icp`) on at most `icp_points` scan points (evenly
       strided);
    3. the distance of every scan point to its nearest triangle of the aligned mesh.

    Args:
      scan_points: [P, 3] mm (the scan's vertices, cropped to the face as NoW's are).
      scan_landmarks, mesh_landmarks: [K, 3] mm corresponding points, K >= 3.
      vertices, triangles: the reconstructed mesh [N, 3] mm, [T, 3].
    Returns:
      dict: distances [P] mm, triangle_ids [P] (nearest triangle of each scan point), closest
      [P, 3] (nearest mesh points, scan frame), rotation, translation (mesh -> scan), and
      median_mm, mean_mm, std_mm of the distances.
    """
    scan_points = np.asarray(scan_points, dtype=np.float64)
    rotation, translation = kabsch(mesh_landmarks, scan_landmarks)
    stride = max(1, int(np.ceil(len(scan_points) / float(icp_points))))
    rotation, translation = rigid_icp(scan_points[::stride], vertices, triangles, rotation, translation,
                                      iterations=icp_iterations)
    aligned = apply_transform(vertices, rotation, translation)
    distances, closest, triangle_ids = point_to_mesh(scan_points, aligned, triangles)
    return dict(distances=distances, triangle_ids=triangle_ids, closest=closest, rotation=rotation,
                translation=translation, median_mm=float(np.median(distances)),
                mean_mm=float(distances.mean()), std_mm=float(distances.std()))
