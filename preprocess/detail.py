"""Procedural fine detail: a UV displacement map with wrinkles, creases and pores.

The synthetic data's ground-truth detail layer (what the fine network should recover). Features
are placed from the UV positions of the face model's 68 landmark vertices, so the same code
works for any face model whose face is one UV island:
  - pores: band-limited noise over the face skin, 0.005-0.015 mm RMS (PORE_RMS_RANGE_MM);
  - forehead wrinkles: 0-5 gently arched horizontal furrows above the brows;
  - frown lines: 0-2 short vertical furrows between the brows;
  - crow's feet: 0-4 rays fanning out from each outer eye corner;
  - nasolabial folds: a crease from each nose wing bending outwards to the mouth corner;
  - scattered creases: 0-5 short furrows anywhere on the skin.
Furrows have a Gaussian cross-section and taper to zero at both ends. Their depths (0.15-1.0 mm,
the folds up to 1.2 mm) and widths (sigma 1-2.5 map pixels at an eye 30 pixels wide, the folds
1.5-4) were doubled and widened on 2026-12-02: at half these depths the detail's shading was about
a sixteenth of the fine-scale content of the unwrapped photo (bench/fine_detail_visibility.py) and
the furrows could hardly be seen in the crops, so the fine network had nothing to read. Their placement (the first
forehead line's height, the spacing, tilt and shift, the folds' ends and bulge) is drawn per face:
with fixed places, the mean map of the other faces scored as well as the fine network on held-out
faces (results/README.md, "fine stage"), so a network could score by learning the template alone.

Units and conventions:
  displacement in millimetres along the coarse surface normal (outward positive; furrows are
  negative), in the UV layout of model/face/uv_layout.py;
  map [S, S], row-major; map pixel (row r, col c) has its centre at
  (u, v) = ((c + 0.5) / S, 1 - (r + 0.5) / S), so row 0 is the top of the UV image (v = 1).
Feature sizes are set relative to the eye width in the map, so they do not depend on S.
"""
import numpy as np
from scipy import ndimage
from skimage import draw

from model.face import landmarks68 as lm
from preprocess import segmentation

DEFAULT_MAP_SIZE = 256
# RMS of the pore noise (mm), uniform in this range per face. The noise is about a texel wide (~1 mm
# at map size 256, under a pixel of the 300 crop), below what a photo at that resolution resolves:
# at 0.01-0.04 mm (before) it held 27% of the maps' mean square over the detail mask, so even a
# perfect recovery of the furrows scored 0.52 x the RMS error of predicting zero (measured on 100
# maps; results/README.md "fine stage"). At 0.005-0.015 mm it is ~7%: the ground truth is mostly
# what the image shows.
PORE_RMS_RANGE_MM = (0.005, 0.015)


def uv_to_map_pixels(uv, size):
    """[..., 2] UV in [0, 1] -> [..., 2] continuous map pixels (x right, y down)."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([uv[..., 0] * size, (1.0 - uv[..., 1]) * size], axis=-1)


def sample_map(displacement, uv):
    """Bilinear samples of a map at UV points (edge values beyond the border).

    Args:
      displacement: [S, S] map.
      uv: [N, 2] in [0, 1].
    Returns:
      [N] float64.
    """
    displacement = np.asarray(displacement, dtype=np.float64)
    size = displacement.shape[0]
    # Pixel centres sit at +0.5: index coordinates are pixels - 0.5.
    xy = uv_to_map_pixels(uv, size) - 0.5
    return ndimage.map_coordinates(displacement, [xy[:, 1], xy[:, 0]], order=1, mode="nearest")


def _polyline_field(shape, polyline, depth, width):
    """Furrow along a polyline: -depth * exp(-d^2 / (2 width^2)) * taper, on [H, W].

    The taper is sin(pi t) of the arc-length fraction t at the nearest point, so the furrow
    fades out at both ends.
    """
    field = np.zeros(shape)
    polyline = np.asarray(polyline, dtype=np.float64)
    margin = 3.0 * width
    x0, y0 = np.maximum(np.floor(polyline.min(axis=0) - margin), 0).astype(int)
    x1 = int(min(np.ceil(polyline[:, 0].max() + margin), shape[1]))
    y1 = int(min(np.ceil(polyline[:, 1].max() + margin), shape[0]))
    if x1 <= x0 or y1 <= y0:
        return field
    rows, cols = np.mgrid[y0:y1, x0:x1]
    pixels = np.stack([cols + 0.5, rows + 0.5], axis=-1)[..., None, :]       # [h, w, 1, 2]
    start, segment = polyline[:-1], np.diff(polyline, axis=0)                # [K-1, 2]
    lengths = np.linalg.norm(segment, axis=1)
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    t = np.clip(np.sum((pixels - start) * segment, -1) / np.maximum(lengths ** 2, 1e-12), 0, 1)
    distance = np.linalg.norm(pixels - (start + t[..., None] * segment), axis=-1)  # [h, w, K-1]
    nearest = np.argmin(distance, axis=-1)
    d = np.take_along_axis(distance, nearest[..., None], -1)[..., 0]
    arc = (cumulative[nearest] + np.take_along_axis(t, nearest[..., None], -1)[..., 0]
           * lengths[nearest]) / max(cumulative[-1], 1e-12)
    field[y0:y1, x0:x1] = -depth * np.exp(-0.5 * (d / width) ** 2) * np.sin(np.pi * arc)
    return field


def _bezier(p0, p1, p2, count=16):
    t = np.linspace(0.0, 1.0, count)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _skin_mask(shape, points):
    """Soft [0, 1] mask of the face skin in the map: face outline minus eyes and mouth."""
    mask = np.zeros(shape, dtype=np.float64)
    fill = np.zeros(shape, dtype=bool)

    def polygon(poly):
        poly = np.asarray(poly)
        rr, cc = draw.polygon(poly[:, 1] - 0.5, poly[:, 0] - 0.5, shape=shape)
        return rr, cc

    fill[polygon(segmentation.face_outline(points))] = True
    for part in (lm.RIGHT_EYE, lm.LEFT_EYE, lm.OUTER_LIPS):
        fill[polygon(points[part])] = False
    mask[fill] = 1.0
    eye_width = np.linalg.norm(points[39] - points[36])
    # A soft edge: a step at the outline would itself be a crease in the geometry.
    return ndimage.gaussian_filter(mask, sigma=max(0.15 * eye_width, 0.5))


def displacement_map(rng, landmark_uv, size=DEFAULT_MAP_SIZE, pore_rms_range=PORE_RMS_RANGE_MM):
    """A random detail map.

    Args:
      rng: numpy Generator (all randomness comes from it).
      landmark_uv: [68, 2] UV coordinates of the face model's 68 landmark vertices.
      size: S, the map side in pixels.
      pore_rms_range: (low, high) mm, the pore noise's RMS range; the same rng draws for any
        range, so (0, 0) gives the same map without its pores.
    Returns:
      float32 [S, S] displacement in mm (see the module docstring for the layout).
    """
    points = uv_to_map_pixels(landmark_uv, size)
    if points.shape != (lm.NUM_LANDMARKS, 2):
        raise ValueError("landmark_uv must be [68, 2], got %s" % (points.shape,))
    shape = (size, size)
    eye_width = 0.5 * (np.linalg.norm(points[39] - points[36])
                       + np.linalg.norm(points[45] - points[42]))
    if eye_width < 2.0:
        raise ValueError("the eyes span %.1f map pixels; use a larger map" % eye_width)
    brow_centre = points[np.concatenate([lm.RIGHT_BROW, lm.LEFT_BROW])].mean(axis=0)
    up = brow_centre - points[8]
    up /= np.linalg.norm(up)
    across = points[45] - points[36]
    across /= np.linalg.norm(across)
    width_scale = eye_width / 30.0     # feature widths below are for an eye 30 pixels wide
    total = np.zeros(shape)
    skin = _skin_mask(shape, points)

    # Forehead wrinkles: arches above the brow line. Where the first one sits, their spacing, a
    # tilt and a sideways shift are drawn per face, so that the mean map of many faces (a template
    # a network can learn without reading the image) is a poor guess for any one of them.
    brow_left, brow_right = points[18], points[25]
    tilt = rng.uniform(-0.15, 0.15)
    forehead_up = np.cos(tilt) * up + np.sin(tilt) * across
    base, spacing = rng.uniform(0.35, 0.8), rng.uniform(0.28, 0.55)
    shift = rng.uniform(-0.3, 0.3) * eye_width * across
    for k in range(rng.integers(0, 6)):
        lift = eye_width * (base + spacing * k + rng.uniform(-0.12, 0.12))
        span = rng.uniform(0.35, 1.0)
        half = 0.5 * span * (brow_right - brow_left)
        middle = (0.5 * (brow_left + brow_right) + lift * forehead_up + shift
                  + rng.uniform(-0.5, 0.5) * (1.0 - span) * (brow_right - brow_left))
        arch = rng.uniform(0.0, 0.25) * eye_width * forehead_up
        curve = _bezier(middle - half, middle + arch, middle + half)
        curve += (rng.uniform(-0.06, 0.06) * eye_width
                  * np.sin(np.linspace(0, rng.uniform(2, 8), len(curve)))[:, None] * forehead_up)
        total += _polyline_field(shape, curve, rng.uniform(0.25, 1.0),
                                 rng.uniform(1.2, 2.5) * width_scale)

    # Frown lines between the brows, each leaning a little.
    glabella = 0.5 * (points[21] + points[22])
    for _ in range(rng.integers(0, 3)):
        offset = rng.uniform(-0.35, 0.35) * eye_width * across
        length = rng.uniform(0.4, 0.8) * eye_width
        lean = rng.uniform(-0.35, 0.35)
        direction = np.cos(lean) * up + np.sin(lean) * across
        curve = np.array([glabella + offset - 0.2 * length * direction,
                          glabella + offset + 0.8 * length * direction])
        total += _polyline_field(shape, curve, rng.uniform(0.25, 0.9),
                                 rng.uniform(1.2, 2.2) * width_scale)

    # Crow's feet: rays pointing away from the face centre at each outer eye corner.
    for corner, outward in ((points[36], -across), (points[45], across)):
        for _ in range(rng.integers(0, 5)):
            angle = rng.uniform(-0.8, 0.8)
            direction = np.cos(angle) * outward + np.sin(angle) * up
            start = corner + rng.uniform(0.1, 0.4) * eye_width * direction
            curve = np.array([start, start + rng.uniform(0.4, 0.8) * eye_width * direction])
            total += _polyline_field(shape, curve, rng.uniform(0.15, 0.6),
                                     rng.uniform(1.0, 1.8) * width_scale)

    # Nasolabial folds: nose wing to around the mouth corner, bulging outwards; where each one
    # starts and ends, its bulge and its depth are drawn per side.
    fold_depth = rng.uniform(0.0, 1.2)
    fold_width = rng.uniform(1.5, 4.0) * width_scale
    for wing, mouth_corner, outward in ((points[31], points[48], -across),
                                        (points[35], points[54], across)):
        start = wing + rng.uniform(0.0, 0.5) * eye_width * outward
        end = (mouth_corner + rng.uniform(0.0, 0.4) * eye_width * outward
               - rng.uniform(0.0, 0.8) * eye_width * up)
        bulge = 0.5 * (start + end) + rng.uniform(0.05, 0.45) * eye_width * outward
        total += _polyline_field(shape, _bezier(start, bulge, end),
                                 fold_depth * rng.uniform(0.4, 1.0), fold_width)

    # Scattered creases: 0-5 short, slightly curved furrows anywhere on the skin (scars, sleep
    # lines, fine folds), at places no template can know.
    candidates = np.argwhere(skin > 0.9)
    for _ in range(rng.integers(0, 6) if len(candidates) else 0):
        row, col = candidates[rng.integers(len(candidates))]
        centre = np.array([col + 0.5, row + 0.5])
        angle = rng.uniform(0.0, np.pi)
        direction = np.cos(angle) * across + np.sin(angle) * up
        normal = np.array([-direction[1], direction[0]])
        half = 0.5 * rng.uniform(0.3, 1.2) * eye_width * direction
        bend = rng.uniform(-0.15, 0.15) * eye_width * normal
        total += _polyline_field(shape, _bezier(centre - half, centre + bend, centre + half),
                                 rng.uniform(0.15, 0.7), rng.uniform(1.0, 2.2) * width_scale)

    # Pores: white noise low-passed to about a pixel.
    pores = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=0.7 * max(width_scale, 1.0))
    total += rng.uniform(*pore_rms_range) * pores / max(pores.std(), 1e-12)

    return (total * skin).astype(np.float32)
