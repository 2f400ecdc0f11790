"""Sliding jaw-contour landmarks ("landmark marching"): the 17 jaw points of the 68-point layout
as an annotator places them, on the face's outline in the image, not at fixed vertices.

A model's landmarks68 are fixed vertices. For the eyes, brows, nose and mouth that is what an
annotator (or dlib) marks at any pose. The jaw points are not: annotators put them on the visible
outline of the face, so when the head turns, the far side's points move onto the cheek's
silhouette, which in the model is a different vertex for every yaw; the fixed jaw vertex is then
hidden behind the cheek, well inside the outline in the image. Comparing fixed jaw vertices with
annotated points makes the jaw the largest landmark error on turned faces even for a perfect
reconstruction, teaches a network trained on fixed-vertex labels the wrong outline for photos,
and pulls a fitted face narrower.

Here each jaw point k (but the chin, 8) has a line of candidate vertices on the mean face: from
its fixed vertex medially (towards the nose) at the same height, on the skin. For a posed face,
the point is the candidate furthest out on its side of the face in the image, along the image
direction from jaw point 0 to jaw point 16 (the subject's right to left). On the far side of a
turned face that is the silhouette (vertices beyond it are hidden and project further in); on
the near side, and at a frontal pose, it is the fixed vertex itself, because the candidates are
only medial to it. The choice is piecewise constant; the gradient flows through the chosen
vertex's position (as in Zhu et al., "Face Alignment Across Large Poses: A 3D Solution", CVPR
2016, and 3DDFA's landmark marching; facts only, this is our own construction). Tilting the head
up or down does not move the points along the outline (the lines are horizontal).
"""
import numpy as np

from model.face import landmarks68

# Vertices within this distance (mm) of the jaw point's height are on its line.
BAND_MM = 3.0
# One candidate per this many mm of the line's lateral extent, the one nearest the line's height.
STEP_MM = 3.0
# The line runs from the fixed vertex to this fraction of its lateral distance from the midline.
INNER_FRACTION = 0.25
CHIN = 8


# +1 / -1 per jaw point: +1 for the points on the subject's left (9-16: on the image's right in a
# frontal photo, the direction jaw 0 -> jaw 16), -1 for the right (0-7), 0 for the chin.
JAW_SIDES = np.sign(np.arange(len(landmarks68.JAW)) - CHIN).astype(np.float32)


def contour_candidates(mean_shape, landmark_ids, allowed=None, band_mm=BAND_MM, step_mm=STEP_MM,
                       inner_fraction=INNER_FRACTION):
    """The candidate vertices of each jaw point.

    Args:
      mean_shape: [N, 3] mm, x to the subject's left, y up, z towards the viewer (the models' frame).
      landmark_ids: int [68] fixed landmark vertices.
      allowed: bool [N] vertices that may be on a line (the skin), or None for all.
    Returns:
      int32 [17, M]: row k starts with landmark_ids[k]; the rest are its line's vertices ordered
      from it towards the midline, padded with landmark_ids[k] (the chin's row is all its vertex).
    """
    mean_shape = np.asarray(mean_shape, np.float64)
    allowed = np.ones(len(mean_shape), bool) if allowed is None else np.asarray(allowed, bool)
    rows = []
    for k in landmarks68.JAW:
        fixed = int(landmark_ids[k])
        row = [fixed]
        x0, y0, z0 = mean_shape[fixed]
        if k != CHIN and abs(x0) > 0:
            side = np.sign(x0)
            lateral = side * mean_shape[:, 0]             # > 0 on the point's side
            inner = inner_fraction * abs(x0)
            on_line = (allowed & (np.abs(mean_shape[:, 1] - y0) < band_mm) & (lateral < abs(x0))
                       & (lateral > inner) & (mean_shape[:, 2] > z0))
            ids = np.flatnonzero(on_line)
            if len(ids):
                bins = np.floor((abs(x0) - lateral[ids]) / step_mm).astype(int)
                for b in np.unique(bins):
                    in_bin = ids[bins == b]
                    row.append(int(in_bin[np.argmin(np.abs(mean_shape[in_bin, 1] - y0))]))
        rows.append(row)
    width = max(len(r) for r in rows)
    return np.array([r + [r[0]] * (width - len(r)) for r in rows], np.int32)


def sliding_jaw_numpy(points_2d, candidates):
    """NumPy twin of FaceModel.landmarks' jaw: points_2d [..., N, 2] -> [..., 17, 2]."""
    points_2d = np.asarray(points_2d)
    fixed_ends = points_2d[..., candidates[[0, -1], 0], :]             # jaw 0 and 16 fixed vertices
    lateral = fixed_ends[..., 1, :] - fixed_ends[..., 0, :]
    cand = points_2d[..., candidates, :]                               # [..., 17, M, 2]
    score = np.sum(cand * lateral[..., None, None, :], -1) * JAW_SIDES[:, None]
    best = np.argmax(score, axis=-1)
    return np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
