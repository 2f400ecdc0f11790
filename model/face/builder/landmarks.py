"""The 68 landmark vertices: eye points from the mesh's eye openings, the others from dlib's
68-point predictor on frontal renders of the mean face.

Eye points (36-47) sit on the visible eye openings of a frontal render (corners at their extreme
x, lid points at 1/3 and 2/3 of the span), mirror-symmetric; inner-lip points take the nearest
visible vertex outside the mouth cavity, other inner points the vertex nearest to the surface
point under dlib's point, jaw points the nearest vertex of the frontal outline.
"""
import numpy as np
import scipy.ndimage

from model.face.builder.topology import boundary_loops
from model.face import NUM_LIGHT, NUM_POSE
from model.face.camera import CropCamera
from model.face.framing import CROP_SIZE
from model.face.landmarks68 import FLIP_PERMUTATION
from model.metrics import vertex_normals

LANDMARK_RENDER_SIZE = 512  # the first, plain grey render
EYE_RENDER_SIZE = 1024  # the render whose eye openings place landmarks 36-47
JAW_RAY_BAND_MM = 2.0  # half-width of the band around a jaw point's ray
CONTOUR_MAX_NORMAL_Z = 0.3  # |n_z| below this: the surface is seen edge-on (occluding contour)
VISIBILITY_TOLERANCE_MM = 1.0
BACKGROUND_GREY = 0.5
# The light of the second landmark render, and of resources/preview_face_model.py, which checks
# the landmarks on the same picture: added on top of the renderer's white ambient, a frontal and
# a slightly overhead lobe (SH bands z and y, all channels), so the face has shading for dlib.
PREVIEW_LIGHT = np.zeros((9, 3), np.float32)
PREVIEW_LIGHT[2] = 0.3
PREVIEW_LIGHT[1] = 0.1


def render_frontal(vertices, triangles, colours, size, framing=None):
    """Frontal orthographic render through the face's one forward path (model.face.forward.render_mesh).

    Args:
      vertices: [N, 3] mm, model frame; colours: [N, C].
      framing: (scale px/mm, centre [3] mm): pixel (u, v) = size/2 + scale (x - cx, cy - y);
        None frames the bounding box to 80% of the image.
    Returns:
      image [size, size, C] float, surface [size, size, 3] (model-frame point under each pixel),
      mask [size, size] bool, and the (scale, centre) used.
    """
    if framing is None:
        framing = (0.8 * size / np.ptp(vertices[:, :2], axis=0).max(),
                   0.5 * (vertices.min(axis=0) + vertices.max(axis=0)))
    scale, centre = framing
    # CropCamera's scale is per 300-crop pixel; at pose 0 it maps x to size/2 + scale (x - cx).
    camera = CropCamera(scale * CROP_SIZE / size, np.asarray(centre, np.float32))
    attributes = np.concatenate([colours, vertices], axis=1)[None].astype(np.float32)
    image, mask = _run_frontal(camera, vertices, triangles, size, colours=attributes, keys=("render", "mask"))
    c = colours.shape[1]
    return image[0, ..., :c], image[0, ..., c:], mask[0, ..., 0] > 0.5, (scale, centre)


def _run_frontal(camera, vertices, triangles, size, keys, **shading):
    """Values `keys` of model.face.forward.render_mesh for vertices [N, 3] at pose 0 (grey background)."""
    import tensorflow.compat.v1 as tf
    from model.face import forward

    tf.disable_eager_execution()
    with tf.Graph().as_default():
        channels = (shading["colours"].shape[-1] if "colours" in shading else 3)
        out = forward.render_mesh(camera, tf.constant(vertices[None], tf.float32), tf.constant(triangles, tf.int32),
                                  tf.zeros([1, NUM_POSE]), size,
                                  background=tf.fill([1, size, size, channels], BACKGROUND_GREY),
                                  **{k: tf.constant(v, tf.float32) for k, v in shading.items()})
        with tf.Session() as sess:
            return sess.run([out[key] for key in keys])


def preview_colours(vertices, triangles, albedo):
    """Colours [N, 3] of a frontal face under PREVIEW_LIGHT (the forward path's SH shading)."""
    camera = CropCamera(1.0, np.zeros(3, np.float32))
    colours, = _run_frontal(camera, vertices, triangles, CROP_SIZE, keys=("colours",),
                            albedo=albedo[None], light=PREVIEW_LIGHT.reshape(1, NUM_LIGHT))
    return colours[0].astype(np.float64)


def lambert_grey(vertices, triangles):
    """Plain grey shading for the landmark render: [N, 3] in [0, 1], light from the upper front."""
    n = vertex_normals(vertices, triangles)
    light = np.array([0.0, 0.4, 1.0]) / np.linalg.norm([0.0, 0.4, 1.0])
    shade = 0.25 + 0.7 * np.clip(n @ light, 0, None)
    return np.repeat(shade[:, None], 3, axis=1)


def pick_landmarks(vertices, triangles, eye_sockets, mouth_cavity, mirror, colours, size,
                   detect_landmarks, framing=None):
    """68 landmark vertex ids: eye points from the mesh, the others from dlib on a frontal render
    of the mean face.

    The render shows colours [N, C] (see render_frontal for size and framing).
    detect_landmarks: image uint8 [H, W, 3] -> dlib's 68 points [68, 2] (continuous pixels) on
    the largest face, or None (the script passes preprocess.faces.largest_face_landmarks: the
    face model package does not import preprocess).

    Eye points (36-47) come from the eye openings themselves (eye_landmarks): dlib misplaces them
    on a render (it pulls them towards the brows), and they must sit where dlib puts them on real
    photos, on the lid margins. Inner lip points (60-67) lie on the lips' contact line; through
    the opening the render shows the mouth cavity, so each takes the visible vertex nearest to
    dlib's point in the frontal plane that is not inside the cavity (mouth_cavity: bool [N]).
    Other inner points (17-35, 48-59): the vertex nearest (3D) to the surface point under dlib's
    point. Jaw points (0-16): dlib puts them on the face's outline, so each takes a vertex of the
    frontal outline (visible, and either seen edge-on or on the mesh border): the one nearest to
    dlib's point within a thin band around the ray from the face centre through it. dlib's
    points are first symmetrised and the picks made mirror twins (mirror_consistent).
    """
    image, surface, mask, (scale, centre) = render_frontal(vertices, triangles, colours, size, framing)
    points = detect_landmarks(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8))
    points = None if points is None else np.asarray(points, np.float64)
    if points is None:
        raise RuntimeError("dlib found no face on the frontal render of the mean face")
    # dlib's points on a symmetric face are not quite symmetric; average each with its mirror
    # partner's reflection (about the pixel column of x = 0), so the picks can be made mirror twins.
    midline = size / 2 - scale * centre[0]
    reflected = points[FLIP_PERMUTATION] * np.array([-1.0, 1.0]) + np.array([2.0 * midline, 0.0])
    points = 0.5 * (points + reflected)
    visible = visible_vertices(vertices, surface, mask, scale, centre)
    flat = vertices[:, :2]
    in_mm = np.stack([centre[0] + (points[:, 0] - size / 2) / scale,
                      centre[1] - (points[:, 1] - size / 2) / scale], axis=1)
    ids = np.empty(68, dtype=np.int64)
    for k in list(range(17, 36)) + list(range(48, 60)):
        c, r = np.clip(points[k].astype(int), 0, size - 1)
        if not mask[r, c]:
            raise RuntimeError("landmark %d falls off the rendered face" % k)
        ids[k] = np.argmin(np.linalg.norm(vertices - surface[r, c], axis=1))
    candidates = np.flatnonzero(visible & ~mouth_cavity)
    for k in range(60, 68):
        ids[k] = candidates[np.argmin(np.linalg.norm(flat[candidates] - in_mm[k], axis=1))]
    ids[36:48] = eye_landmarks(vertices, triangles, eye_sockets, mirror)
    # The outline is where the surface turns away (grazing normals) or where the mesh ends.
    outline = np.abs(vertex_normals(vertices, triangles)[:, 2]) < CONTOUR_MAX_NORMAL_Z
    outline[max(boundary_loops(triangles), key=len)] = True
    ids[:17] = contour_vertices(flat, visible & outline, in_mm[:17], flat[ids[17:]].mean(axis=0),
                                JAW_RAY_BAND_MM)
    return mirror_consistent(ids, vertices, mirror), points


def mirror_consistent(ids, vertices, mirror):
    """Landmark ids [68] made mirror twins: a point on the model's x < 0 side keeps its vertex and
    its partner (FLIP_PERMUTATION) takes that vertex's mirror; a midline point moves to the nearest
    vertex that is its own mirror."""
    ids = ids.copy()
    on_midline = np.flatnonzero(mirror == np.arange(len(mirror)))
    for k, partner in enumerate(FLIP_PERMUTATION):
        if partner == k:
            ids[k] = on_midline[np.argmin(np.linalg.norm(vertices[on_midline] - vertices[ids[k]], axis=1))]
        elif vertices[ids[k], 0] < vertices[ids[partner], 0]:
            ids[partner] = mirror[ids[k]]
    return ids


def visible_vertices(vertices, surface, mask, scale, centre):
    """Bool [N]: vertices that a frontal render (render_frontal's surface, mask, framing) shows.

    A vertex is visible when the rendered surface is not in front of it at its pixel or at one of
    the 8 around it (a vertex on the outline may sit just off the covered pixels).
    """
    size = mask.shape[0]
    cols = (size / 2 + scale * (vertices[:, 0] - centre[0])).astype(int)
    rows = (size / 2 - scale * (vertices[:, 1] - centre[1])).astype(int)
    visible = np.zeros(len(vertices), dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            r, c = np.clip(rows + dr, 0, size - 1), np.clip(cols + dc, 0, size - 1)
            visible |= mask[r, c] & (surface[r, c, 2] - vertices[:, 2] < VISIBILITY_TOLERANCE_MM)
    return visible


def eye_landmarks(vertices, triangles, eye_sockets, mirror, size=EYE_RENDER_SIZE):
    """Vertex ids [12] of landmarks 36-47 on the visible eye openings of a frontal view.

    The opening of the subject's right eye (model x < 0) is where a frontal render shows the
    socket (eye_sockets: bool [N]); its extreme pixels along x are the corners (36 outer, 39
    inner), the top and bottom of the opening at 1/3 and 2/3 of the corner-to-corner span are
    the upper (37, 38) and lower (41, 40) lid points. Each takes the nearest (frontal plane)
    visible vertex outside the socket that faces the viewer or is seen edge-on, i.e. on the lid
    margin. The left eye (42-47) is the mirror
    image (mirror: [N] vertex ids), so the choice is symmetric.
    """
    indicator = np.concatenate([eye_sockets[:, None].astype(np.float64), vertices], axis=1)
    image, surface, mask, (scale, centre) = render_frontal(vertices, triangles, indicator, size)
    visible = visible_vertices(vertices, surface, mask, scale, centre)
    opening = mask & (image[..., 0] > 0.5)
    labels, count = scipy.ndimage.label(opening)
    if count < 2:
        raise RuntimeError("the frontal render shows %d eye openings, expected 2" % count)
    right_half = np.arange(size)[None, :] + 0.5 < size / 2 - scale * centre[0]
    sizes = np.bincount(labels[opening & right_half], minlength=count + 1)
    rows, cols = np.nonzero(labels == sizes.argmax())
    xs = centre[0] + (cols + 0.5 - size / 2) / scale
    ys = centre[1] - (rows + 0.5 - size / 2) / scale
    outer, inner = xs.min(), xs.max()
    targets = [[outer, ys[xs == outer].mean()]]
    for t in (1 / 3, 2 / 3):
        column = np.abs(xs - (outer + t * (inner - outer))) <= 0.5 / scale
        targets.append([xs[column].mean(), ys[column].max()])
    targets.append([inner, ys[xs == inner].mean()])
    for t in (2 / 3, 1 / 3):
        column = np.abs(xs - (outer + t * (inner - outer))) <= 0.5 / scale
        targets.append([xs[column].mean(), ys[column].min()])
    # Vertices on the lids' front or edge (normal towards the viewer): where the lid rolls back
    # into the socket, a vertex may be visible within the tolerance yet face away.
    facing = vertex_normals(vertices, triangles)[:, 2] > 0
    candidates = np.flatnonzero(visible & facing & ~eye_sockets & (vertices[:, 0] < 0))
    right = np.array([candidates[np.argmin(np.linalg.norm(vertices[candidates, :2] - p, axis=1))]
                      for p in targets])
    # 42-47: inner corner, upper lid inner to outer, outer corner, lower lid outer to inner.
    left = mirror[right[[3, 2, 1, 0, 5, 4]]]
    return np.concatenate([right, left])


def contour_vertices(flat, is_contour, targets, centre, band):
    """For each target point [2], the contour vertex nearest to it within `band` of the ray
    centre -> target (frontal plane, mm)."""
    ids = []
    for p in targets:
        d = (p - centre) / np.linalg.norm(p - centre)
        rel = flat - centre
        across = np.abs(rel @ np.array([-d[1], d[0]]))
        candidates = np.flatnonzero(is_contour & (across < band) & (rel @ d > 0))
        if len(candidates) == 0:
            raise RuntimeError("no contour vertex near the ray through jaw point %s" % (p,))
        ids.append(candidates[np.argmin(np.linalg.norm(flat[candidates] - p, axis=1))])
    return np.array(ids)

