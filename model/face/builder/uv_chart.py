"""The UV chart of a face model: one island in [0, 1]^2, mirror-symmetric, with bounded area
distortion over the face.

How (flatten_face):
  1. a Tutte embedding of the whole mesh with its border on a circle starts it (flip-free);
  2. SLIM (libigl `slim_precompute` / `slim_solve`) minimises the symmetric Dirichlet energy
     from there, border free. The energy penalises stretch and squash alike, which bounds the
     area distortion (a conformal map, libigl `lscm`, spreads the area ratio 4.1 over the
     skin), and grows without bound as a triangle degenerates, so no triangle flips. The eye
     sockets and the mouth cavity are pockets into the head: flattened at their true area they
     would push the face apart (the mouth cavity alone took as much UV as the cheeks), so SLIM
     sees them scaled by POCKET_SCALE about the centre of their openings;
  3. the result is turned to face upright, made exactly mirror-symmetric (each vertex averaged
     with its twin's reflection, u -> 1 - u) and scaled uniformly into
     [CHART_MARGIN, 1 - CHART_MARGIN].
chart_figures measures it: the spread of the UV / 3D area ratio over the skin (its 95th over its
5th percentile), the flipped triangles and the mirror error. The previous chart (a mean-value
embedding with the border on a circle) had a spread of 4.9 over the skin.
"""
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from model.face.builder.topology import component_labels

SLIM_ITERATIONS = 30   # the skin's spread settles within 1% after about 20
POCKET_SCALE = 0.2
CHART_MARGIN = 0.01   # UV border left free around the chart
UV_MASK_SIZE = 512


def triangle_areas(points, triangles):
    """Signed areas [T] of triangles over 2D points (counter-clockwise positive), or unsigned
    areas of triangles over 3D points."""
    a = points[triangles[:, 1]] - points[triangles[:, 0]]
    b = points[triangles[:, 2]] - points[triangles[:, 0]]
    if points.shape[1] == 2:
        return 0.5 * (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    return 0.5 * np.linalg.norm(np.cross(a, b), axis=1)


def flatten_face(vertices, triangles, outer_loop, mirror, pocket=None):
    """UV coordinates [N, 2] in [0, 1]^2: u grows with model x, v with model y.

    Args:
      vertices: [N, 3] the mean shape (mm, x right, y up, x = 0 the midline).
      triangles: [T, 3] counter-clockwise seen from the front; a disk (one border loop).
      outer_loop: vertex ids of the border.
      mirror: [N] each vertex's mirror twin.
      pocket: bool [N] or None, vertices of pockets into the head (eye sockets, mouth cavity).
    Raises:
      ValueError if the chart has a flipped or degenerate triangle.
    """
    import igl

    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    n = len(vertices)
    pocket = np.zeros(n, dtype=bool) if pocket is None else np.asarray(pocket, dtype=bool)
    rest = shrink_pockets(vertices, triangles, pocket)
    start = circle_embedding(vertices, triangles, outer_loop)
    slim = igl.slim_precompute(np.asfortranarray(rest), np.asfortranarray(triangles.astype(np.int32)),
                               np.asfortranarray(start), igl.MappingEnergyType.SYMMETRIC_DIRICHLET,
                               np.zeros(0, np.int32), np.zeros((0, 2), order="F"), 0.0)
    full = igl.slim_solve(slim, SLIM_ITERATIONS)
    # The energy does not see rotations: turn the result to best match the frontal view.
    full = full @ best_rotation(full - full.mean(axis=0), vertices[:, :2] - vertices[:, :2].mean(axis=0))
    # Mirror-symmetric about the midline; the start and SLIM are symmetric up to round-off, so
    # this moves vertices by far less than a triangle.
    midline = 0.5 * (full[:, 0] + full[mirror, 0]).mean()
    full[:, 0] -= midline
    full = 0.5 * (full + full[mirror] * np.array([-1.0, 1.0]))
    low, high = full.min(axis=0), full.max(axis=0)
    scale = (1.0 - 2 * CHART_MARGIN) / (high - low).max()
    full = 0.5 + scale * (full - np.array([0.0, 0.5 * (low[1] + high[1])]))
    flipped = int((triangle_areas(full, triangles) <= 0).sum())
    if flipped:
        raise ValueError("the UV chart flips %d triangles" % flipped)
    return full


def best_rotation(points, targets):
    """The rotation [2, 2] R minimising |points R - targets| (Kabsch, no reflection)."""
    u, _, vt = np.linalg.svd(points.T @ targets)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, d]) @ vt


def circle_embedding(vertices, triangles, outer_loop):
    """Tutte embedding [N, 2] of a disk mesh: the border on the unit circle by arc length, from
    the top of the midline (so the chart is upright), every other vertex at the average of its
    neighbours. Free of flips (Tutte's theorem)."""
    n = len(vertices)
    loop = np.asarray(outer_loop)
    top = np.argmax(vertices[loop, 1] - 1e3 * np.abs(vertices[loop, 0]))
    loop = np.roll(loop, -top)
    seg = np.linalg.norm(vertices[np.roll(loop, -1)] - vertices[loop], axis=1)
    angle = 0.5 * np.pi + 2 * np.pi * np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    uv = np.zeros((n, 2))
    uv[loop] = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    free = np.ones(n, dtype=bool)
    free[loop] = False
    return tutte_fill(uv, triangles, free)


def shrink_pockets(vertices, triangles, pocket):
    """vertices [N, 3] with each pocket (a connected piece of the bool [N] mask) scaled by
    POCKET_SCALE about the centre of its rim (the vertices next to it): the rest shape that
    SLIM flattens, in which a pocket asks for POCKET_SCALE^2 of its area."""
    n = len(vertices)
    rest = vertices.copy()
    labels = component_labels(triangles[pocket[triangles].all(axis=1)], n)
    for label in np.unique(labels[pocket]):
        members = pocket & (labels == label)
        touching = np.zeros(n, dtype=bool)
        touching[triangles[members[triangles].any(axis=1)].ravel()] = True
        centre = vertices[touching & ~pocket].mean(axis=0)
        rest[members] = centre + POCKET_SCALE * (vertices[members] - centre)
    return rest


def tutte_fill(uv, triangles, free):
    """uv [N, 2] with the `free` vertices (bool [N]) moved to the uniform-weight average of their
    neighbours (a Tutte embedding inside the fixed ones)."""
    n = len(uv)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    adjacency = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), (n, n))
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64).tocsr()
    laplacian = scipy.sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel()) - adjacency
    inner, fixed = np.flatnonzero(free), np.flatnonzero(~free)
    if len(inner) == 0:
        return uv
    uv = uv.copy()
    a = laplacian[inner][:, inner].tocsc()
    b = -laplacian[inner][:, fixed] @ uv[fixed]
    uv[inner] = np.stack([scipy.sparse.linalg.spsolve(a, b[:, c]) for c in range(2)], axis=1)
    return uv


def chart_figures(vertices, triangles, uv, mirror, skin):
    """Figures of a chart: dict area_ratio_spread (95th / 5th percentile of UV area / 3D area over
    the triangles whose corners are all skin, bool [N]), flipped (triangles of zero or negative
    UV area), mirror_error (max |uv[mirror] - (1 - u, v)|)."""
    ratio = triangle_areas(np.asarray(uv, np.float64), triangles) / triangle_areas(
        np.asarray(vertices, np.float64), triangles)
    p5, p95 = np.percentile(ratio[np.asarray(skin)[triangles].all(axis=1)], [5, 95])
    reflected = np.asarray(uv)[mirror] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    return dict(area_ratio_spread=float(p95 / p5), flipped=int((ratio <= 0).sum()),
                mirror_error=float(np.abs(reflected - uv).max()))


def uv_face_mask(uv, outer_loop, size=UV_MASK_SIZE):
    """uint8 [size, size] image, 1 inside the chart; row r covers v in [1-(r+1)/size, 1-r/size)."""
    from skimage.draw import polygon
    mask = np.zeros((size, size), dtype=np.uint8)
    rr, cc = polygon((1.0 - uv[outer_loop, 1]) * size - 0.5, uv[outer_loop, 0] * size - 0.5,
                     shape=mask.shape)
    mask[rr, cc] = 1
    return mask
