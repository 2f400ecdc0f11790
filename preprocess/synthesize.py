"""Synthetic training faces with ground truth, rendered from the face model.

    python preprocess/synthesize.py --num 1000 --out data/synthetic --seed 0

Each sample (schema: preprocess/schema.py, plus gt/*):
  1. random coefficients: identity, expression and albedo ~ N(0, 1) (the bases are in standard
     deviations; expression scaled by EXPRESSION_STD), pitch +-20, yaw +-60, roll +-15 degrees,
     spherical-harmonics light: white of random brightness and direction around the renderer's
     ambient, tinted slightly per channel (LIGHT_STD, LIGHT_TINT_STD); the appearance options
     (preprocess/appearance.py, flags below) then rescale the angles to +-max_pitch, +-max_yaw
     and +-max_roll and may replace
     the light by a coloured directional one;
  2. a procedural detail map (preprocess/detail.py: wrinkles, creases, pores; mm in UV space),
     times the UV layout's taper (model/face/uv_layout.py), displacing the layout's dense grid
     mesh (a vertex per map texel inside the detail mask) along the coarse surface normal;
  3. framing: the coarse and dense meshes are projected at the sampled rotation, and the
     translation and scale of the pose are then set so that the crop rule of
     model/face/framing.py, applied to the projected 68 landmark vertices, gives exactly the
     300 x 300 image, as it does for a photo whose landmarks dlib found (so crop/matrix is the
     identity);
  4. rendering through the face's one forward path (model/face/forward.py: scaled orthographic,
     back faces culled, Lambertian SH shading; the dense mesh inside the detail mask, the coarse
     mesh outside it) over a random background (preprocess/backgrounds.py), plus a little sensor
     noise;
  4b. appearance options: skin albedo scale, eye discs, skull cap and neck (in the same render),
     glasses and hand occluders, cast-shadow darkening, colour cast, blur, noise, JPEG
     (AppearanceOptions.plain(), --plain: none of it, the samples of before, byte for byte);
  5. segmentation: the face model's vertex regions rendered as one-hot attributes (nearest label
     per pixel): skin 1, nose 2, eyes 3, brows 4, lips 5; vertices in no region (neck, ears,
     scalp) are 7 "other"; 6 (mouth interior) where the face model has that region; the skull
     cap, neck, glasses and hands 7, the eye discs 3.
Landmarks are FaceModel.landmarks of the posed face: the projected landmark vertices, but for
the jaw points, which slide onto the face's outline as annotators' and dlib's points do
(model/face/contour.py; before 2026-12-08 they were fixed vertices, hidden on the far side of a
turned face).

Ground truth: gt/coefficients (with the framing pose), gt/displacement (the map as rendered, mm,
in the layout of UVLayout(face_model, map_size)), gt/points_px (the coarse vertices in crop
pixels and depth: what FaceModel.project returns for them at the gt pose).

Deterministic: sample i draws from numpy's Generator seeded with (seed, i), so any --workers
gives the same records in the same order.

A job array splits a run with --num_shards N --shard_index i: shard i writes samples
i*num//N .. (i+1)*num//N - 1 with their seeds unchanged, and a shard already complete is skipped
(preprocess/sharding.py).
"""
import dataclasses
import os
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from absl import app, flags
from tqdm import tqdm

from model.face.framing import crop_matrix_from_landmarks
from preprocess import appearance, backgrounds, detail, images, parallel, schema, sharding

FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags, defined only when this file runs as a program (other programs
    import this module and have flags of their own)."""
    flags.DEFINE_integer("num", None, "Number of samples to write.", lower_bound=1)
    flags.DEFINE_string("out", None, "Output folder for the tfrecord shards and the summary.")
    flags.DEFINE_integer("seed", 0, "Base seed; sample i uses the seed pair (seed, i).", lower_bound=0)
    flags.DEFINE_integer("workers", os.cpu_count() or 1, "Worker processes (1 = no pool).", lower_bound=1)
    flags.DEFINE_integer("records_per_shard", 1000, "Records per tfrecord shard.", lower_bound=1)
    flags.DEFINE_string("prefix", "synthetic", "Shard file name prefix (a plain file name).")
    flags.DEFINE_string("face_model", None, "Face model .npz (default: the embedded model).")
    flags.DEFINE_integer("map_size", detail.DEFAULT_MAP_SIZE,
                         "Side of the displacement map (pixels; every record stores map_size^2 floats).",
                         lower_bound=MIN_MAP_SIZE, upper_bound=MAX_MAP_SIZE)
    flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of the images.")
    flags.DEFINE_bool("overwrite", False, "Replace shards with the same prefix already in --out.")
    sharding.define_flags(flags)
    define_appearance_flags()


def define_appearance_flags():
    """One flag per field of appearance.AppearanceOptions, defaulting to its default."""
    defaults = appearance.AppearanceOptions()
    flags.DEFINE_float("max_yaw", defaults.max_yaw, "Yaw uniform in +-this many degrees.",
                       lower_bound=0.0, upper_bound=90.0)
    flags.DEFINE_float("max_pitch", defaults.max_pitch, "Pitch (nodding) uniform in +-this many degrees.",
                       lower_bound=0.0, upper_bound=60.0)
    flags.DEFINE_float("max_roll", defaults.max_roll, "Roll (tilt in the image plane) uniform in +-this "
                       "many degrees.", lower_bound=0.0, upper_bound=90.0)
    flags.DEFINE_enum("light", defaults.light, list(appearance.LIGHTS),
                      "soft: white SH light around the ambient (as before); directional: a coloured "
                      "ambient plus one coloured distant light.")
    flags.DEFINE_enum("expression", defaults.expression, list(appearance.EXPRESSIONS),
                      "gaussian: 0.5 N(0, 1) on every expression component (as before); units: a few of the 52 "
                      "face units at a time, as faces in photos move (preprocess/appearance.py ExpressionUnits: "
                      "smiles, lowered or closed eyes, open jaws; resources/expression_units.npz).")
    flags.DEFINE_bool("eyes", defaults.eyes, "Eye discs with iris, pupil and sclera behind the lids.")
    for name, what in (("shadow", "a cast-shadow-like soft darkening of one side"),
                       ("skin", "skin tone shift, maybe freckles and stubble"),
                       ("head", "a hair-coloured skull cap and a neck (labelled other)"),
                       ("glasses", "glasses over the eyes (labelled other)"),
                       ("hand", "a hand-like occluder on the lower face (labelled other)"),
                       ("blur", "Gaussian blur"), ("noise", "extra sensor noise"),
                       ("jpeg", "JPEG re-encoding of the image"), ("colour_cast", "a colour cast")):
        flags.DEFINE_float(name + "_probability", getattr(defaults, name + "_probability"),
                           "Probability of %s per sample." % what, lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_bool("plain", False, "All appearance options off: the samples of before them "
                      "(overrides the other appearance flags).")


def appearance_options_from_flags():
    """appearance.AppearanceOptions of the parsed appearance flags."""
    if FLAGS.plain:
        return appearance.AppearanceOptions.plain()
    return appearance.AppearanceOptions(**{
        field.name: getattr(FLAGS, field.name)
        for field in dataclasses.fields(appearance.AppearanceOptions)}).validate()

# Bounds of --map_size: below, the detail features are smaller than a texel; above, a record holds
# over 16 MB of map alone.
MIN_MAP_SIZE, MAX_MAP_SIZE = 16, 2048
MAX_ANGLES_DEG = np.array([20.0, 60.0, 15.0])   # pitch, yaw, roll: uniform in +-these
# Smaller than the bases' unit: all 49 expression components at 1 sd at once give grimaces.
EXPRESSION_STD = 0.5
# SH light: white light of random brightness (band 0) and direction (bands 1-3; 4-8 are weak),
# then tinted by one colour factor per channel. Units of renderer.shading (band 0 = 0 is the
# renderer's ambient DEFAULT_AMBIENT).
LIGHT_STD = np.array([0.1] + [0.3] * 3 + [0.08] * 5)
LIGHT_BRIGHTNESS_RANGE = (-0.1, 0.35)            # added to band 0
LIGHT_TINT_STD = 0.06
NOISE_STD = 2.0                                  # sensor noise, in 8-bit levels
# Region -> label, later entries win where regions overlap (eyes and lips sit inside skin).
# "mouth_interior" is optional in a face model file; the others are required.
REGION_LABELS = (("skin", schema.SKIN), ("nose", schema.NOSE), ("brows", schema.BROWS),
                 ("eyes", schema.EYES), ("lips", schema.LIPS),
                 ("mouth_interior", schema.MOUTH_INTERIOR))


def sample_rng(seed, index):
    """The generator of sample `index`: independent of how samples are split among workers."""
    return np.random.default_rng([seed, index])


def random_coefficients(rng, face_model):
    """Coefficient vector [coeff_size] (float64) with pose translation and scale left at 0."""
    identity = rng.standard_normal(face_model.k_id)
    expression = EXPRESSION_STD * rng.standard_normal(face_model.k_exp)
    albedo = rng.standard_normal(face_model.k_tex)
    angles = np.deg2rad(rng.uniform(-1.0, 1.0, 3) * MAX_ANGLES_DEG)
    pose = np.concatenate([angles, [0.0, 0.0, 0.0]])
    white = rng.standard_normal(9) * LIGHT_STD
    white[0] += rng.uniform(*LIGHT_BRIGHTNESS_RANGE)
    tint = 1.0 + LIGHT_TINT_STD * rng.standard_normal(3)
    light = white[:, None] * tint[None, :]
    # The renderer adds the ambient to band 0 after this; tint it too.
    light[0] += renderer_ambient() * (tint - 1.0)
    return np.concatenate([identity, expression, albedo, pose, light.ravel()])


def renderer_ambient():
    from renderer.shading import DEFAULT_AMBIENT
    return DEFAULT_AMBIENT


def vertex_labels(face_model):
    """uint8 [N] segmentation label of every vertex (REGION_LABELS; OTHER elsewhere)."""
    labels = np.full(face_model.num_vertices, schema.OTHER, dtype=np.uint8)
    for region, label in REGION_LABELS:
        if region in face_model.regions:
            labels[np.asarray(face_model.regions[region], dtype=bool)] = label
    return labels


def framing(landmarks, size=schema.CROP_SIZE):
    """(a, b): the crop rule's map of these landmarks, points -> a * points + b (b is [2])."""
    matrix = crop_matrix_from_landmarks(landmarks, out_size=size)
    return matrix[0, 0], matrix[:, 2]


def framed_pose(pose, a, b, size=schema.CROP_SIZE):
    """The pose whose projection is a * (projection at `pose`) + b (u, v and depth scaled by a).

    Projection (FaceModel.project): u = W/2 + s p_x + tx W/300, v = H/2 - s p_y + ty H/300,
    depth = s p_z, s = frame_scale exp(log_scale) W/300; with W = H = size.
    """
    pose = np.array(pose, dtype=np.float64)
    unit = size / float(schema.CROP_SIZE)    # pixels per pose translation unit
    centre = 0.5 * size
    pose[3] = (a * (centre + pose[3] * unit) + b[0] - centre) / unit
    pose[4] = (a * (centre + pose[4] * unit) + b[1] - centre) / unit
    pose[5] = pose[5] + np.log(a)
    return pose


class SampleRenderer:
    """The TF graph and session that turn sampled coefficients into a training sample, through
    the face's one forward path (model.face.forward: face_mesh, then render_mesh).

    The face is drawn as the coarse mesh outside the detail mask and, inside it, as the dense
    grid mesh of the UV layout (model/face/uv_layout.py: a vertex per map texel) displaced by
    the sample's map along the coarse normals and shaded with the normals the displacement gives
    it (UVLayout.detail_normals), so detail down to a texel (under a millimetre at map size 256)
    reaches the pixels.

    The appearance options (preprocess/appearance.py) add a skin scale of the albedo, and extra
    geometry drawn in the same render (eye discs, a skull cap and neck; after the face's vertices,
    so the coarse vertices and the landmark ids keep their places), then occluders and
    degradation on the image.

    One per process: building the graph and loading the face model take seconds, a sample
    then takes tens of milliseconds (a render graph per combination of extra geometry, built on
    its first use).
    """

    def __init__(self, face_model, size=schema.CROP_SIZE, map_size=detail.DEFAULT_MAP_SIZE,
                 options=None):
        import tensorflow.compat.v1 as tf

        from model.face import forward
        from model.face.uv_layout import UVLayout
        from renderer import shading

        self.face_model = face_model
        self.size = size
        self.map_size = map_size
        self.options = (appearance.AppearanceOptions() if options is None else options).validate()
        self.layout = UVLayout(face_model, map_size)
        uv = np.asarray(face_model.uv, dtype=np.float64)
        self._uv = uv
        self._landmark_uv = uv[np.asarray(face_model.landmarks68)]
        labels_per_vertex = vertex_labels(face_model)
        self._skin_vertices = np.flatnonzero(labels_per_vertex == schema.SKIN)
        one_hot = np.eye(schema.NUM_SEGMENTATION_LABELS, dtype=np.float32)[labels_per_vertex][None]
        self._eyes = appearance.EyeDiscs(face_model)
        self._expression_units = (appearance.ExpressionUnits(face_model) if self.options.expression == "units"
                                  else None)
        self._head = appearance.HeadTemplate(face_model)
        num_all = face_model.num_vertices + self.layout.num_dense_vertices
        self._tf, self._forward, self._shading = tf, forward, shading
        self._fetches = {}
        self.graph = tf.Graph()
        with self.graph.as_default():
            self._labels = tf.concat([one_hot, self.layout.dense_from_vertices(one_hot)], axis=1)
            self._coefficients = tf.placeholder(tf.float32, [1, face_model.coeff_size])
            self._displacement = tf.placeholder(tf.float32, [1, map_size, map_size])
            self._background = tf.placeholder(tf.float32, [1, size, size, 3])
            # Skin perturbations (appearance.py): albedo * scale per mesh vertex (coarse, then
            # dense); a scale of 1 changes nothing, bit for bit.
            self._albedo_scale = tf.placeholder(tf.float32, [1, num_all, 3])
            self._head_vertices = tf.placeholder(tf.float32, [1, self._head.num_vertices, 3])
            self._head_albedo = tf.placeholder(tf.float32, [1, self._head.num_vertices, 3])
            self._eye_albedo = tf.placeholder(tf.float32, [1, self._eyes.num_vertices, 3])
            self._mesh = forward.face_mesh(face_model, self._coefficients,
                                           displacement_map=self._displacement, layout=self.layout)
            self._albedo = self._mesh["albedo"] * self._albedo_scale
            self._skin_colour = tf.reduce_mean(tf.gather(self._albedo[0], self._skin_vertices), axis=0)
            # Framing needs only the landmarks: a run that fetches them does not rasterize.
            points_px = face_model.camera.project(self._mesh["vertices"], self._mesh["pose"], size)
            self._landmarks = face_model.landmarks(points_px)[0]
            config = tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
            self.session = tf.Session(graph=self.graph, config=config)

    def _render_fetches(self, parts):
        """The fetches of a render of the face mesh plus the extra geometry `parts` (a tuple of
        "eyes", "head"), built on first use: image, points (coarse vertices), labels."""
        if parts in self._fetches:
            return self._fetches[parts]
        tf, mesh = self._tf, self._mesh
        with self.graph.as_default():
            vertices, triangles, albedo = [mesh["vertices"]], [mesh["triangles"]], [self._albedo]
            normals, labels = [mesh["normals"]], [self._labels]
            count = self.face_model.num_vertices + self.layout.num_dense_vertices

            def add(part_vertices, part_triangles, part_albedo, label):
                nonlocal count
                vertices.append(part_vertices)
                triangles.append(part_triangles + count)
                albedo.append(part_albedo)
                normals.append(self._shading.vertex_normals(part_vertices, part_triangles))
                one_hot = np.zeros((1, part_albedo.shape[1], schema.NUM_SEGMENTATION_LABELS), np.float32)
                one_hot[..., label] = 1.0
                labels.append(tf.constant(one_hot))
                count += int(part_albedo.shape[1])

            if "eyes" in parts:
                centres, start = [], 0
                for ids, n in zip(self._eyes.eye_landmarks, self._eyes.counts):
                    centre = tf.reduce_mean(tf.gather(mesh["vertices"], ids, axis=1), axis=1, keepdims=True)
                    centres.append(tf.tile(centre, [1, n, 1]))
                eye_vertices = tf.concat(centres, axis=1) + self._eyes.offsets.astype(np.float32)[None]
                add(eye_vertices, self._eyes.triangles, self._eye_albedo, schema.EYES)
            if "head" in parts:
                add(self._head_vertices, self._head.triangles(), self._head_albedo, schema.OTHER)
            rendered = self._forward.render_mesh(
                self.face_model.camera, tf.concat(vertices, axis=1) if len(vertices) > 1 else vertices[0],
                np.concatenate(triangles).astype(np.int32), mesh["pose"], self.size,
                albedo=tf.concat(albedo, axis=1) if len(albedo) > 1 else albedo[0], light=mesh["light"],
                attributes=tf.concat(labels, axis=1) if len(labels) > 1 else labels[0],
                background=self._background, cull_backfaces=True,
                normals=tf.concat(normals, axis=1) if len(normals) > 1 else normals[0])
            self._fetches[parts] = self._outputs(tf, rendered, self.face_model.num_vertices, self.size)
        return self._fetches[parts]

    @staticmethod
    def _outputs(tf, rendered, num_vertices, size):
        return dict(image=rendered["render"][0], points=rendered["points_px"][0, :num_vertices],
                    labels=tf.where(rendered["mask"][0, :, :, 0] > 0,
                                    tf.argmax(rendered["attributes"][0], axis=-1, output_type=tf.int32),
                                    tf.zeros([size, size], tf.int32)))

    def _albedo_scale_of(self, rng):
        """float32 [V, 3], the appearance options' skin changes: the albedo of mesh vertex k
        becomes albedo_k * scale_k (coarse vertices, then the dense ones, which sample the UV
        maps at their own texel)."""
        n, m = self.face_model.num_vertices, self.layout.num_dense_vertices
        scale = np.ones((n + m, 3), np.float32)
        if rng.uniform() < self.options.skin_probability:
            points = detail.uv_to_map_pixels(self._landmark_uv, self.map_size)
            scale_map, tone = appearance.skin_maps(rng, points, self.map_size)
            for channel in range(3):
                scale[:n, channel] = detail.sample_map(scale_map[..., channel], self._uv)
            scale[n:] = scale_map.reshape(-1, 3)[self.layout.dense_texels]
            scale *= tone.astype(np.float32)
        return scale

    def sample(self, rng, displacement=None):
        """One random sample.

        Args:
          rng: numpy Generator, the sample's only source of randomness.
          displacement: None (a random detail map, detail.displacement_map), or a map [M, M]
            (mm) to render instead; either is multiplied by the layout's taper. The random map
            is drawn either way, so a given map changes nothing else in the sample.
        Returns:
          dict: image uint8 [S, S, 3], landmarks float32 [68, 2], segmentation uint8 [S, S],
          coefficients float32 [C] (framing pose), displacement float32 [M, M] (mm, the map as
          rendered), points_px float32 [N, 3] (crop-space u, v, depth of the coarse vertices).
          With the appearance options (preprocess/appearance.py) the image also shows what they
          add; the ground truth is the face mesh's either way.
        """
        coefficients = random_coefficients(rng, self.face_model)
        generated = detail.displacement_map(rng, self._landmark_uv, self.map_size)
        if displacement is None:
            displacement = generated
        displacement = (np.asarray(displacement, np.float32) * self.layout.taper).astype(np.float32)
        background = backgrounds.random_background(rng, self.size)
        noise = rng.normal(0.0, NOISE_STD, (self.size, self.size, 3))
        # What the appearance options add is drawn after all of the above, so that with
        # AppearanceOptions.plain() a sample is what it was before the options existed.
        options = self.options
        slices = self.face_model.coefficient_slices()
        # The angles were drawn uniform in +-MAX_ANGLES_DEG: rescaling keeps the draws (and every
        # draw after them) of the default ranges.
        for axis, limit in enumerate((options.max_pitch, options.max_yaw, options.max_roll)):
            if limit != MAX_ANGLES_DEG[axis]:
                coefficients[slices["pose"].start + axis] *= limit / MAX_ANGLES_DEG[axis]
        if options.light == "directional":
            coefficients[slices["light"]] = appearance.directional_light(rng, renderer_ambient()).ravel()
        if self._expression_units is not None:
            coefficients[slices["expression"]] = self._expression_units.draw(appearance.expression_rng(rng))
        feed = {self._coefficients: coefficients[None], self._displacement: displacement[None],
                self._albedo_scale: self._albedo_scale_of(rng)[None]}

        landmarks, skin_colour = self.session.run([self._landmarks, self._skin_colour], feed)
        a, b = framing(landmarks.astype(np.float64), self.size)
        coefficients[slices["pose"]] = framed_pose(coefficients[slices["pose"]], a, b, self.size)
        feed[self._coefficients] = coefficients[None]
        feed[self._background] = background[None] / 255.0

        parts = ()
        if options.eyes:
            parts += ("eyes",)
            feed[self._eye_albedo] = self._eyes.albedo(rng)[None]
        if rng.uniform() < options.head_probability:
            parts += ("head",)
            head_vertices, _, kind = self._head.mesh(rng)
            feed[self._head_vertices] = head_vertices[None]
            feed[self._head_albedo] = self._head.albedo(rng, kind, skin_colour)[None]
        result = self.session.run(self._render_fetches(parts), feed)
        points = result["points"]
        landmarks = self.face_model.landmarks_numpy(points[:, :2])
        labels = result["labels"].astype(np.uint8)
        image = result["image"] * 255.0 + noise
        if rng.uniform() < options.glasses_probability:
            image = self._occlude(image, labels, *appearance.glasses(rng, landmarks, self.size))
        if rng.uniform() < options.hand_probability:
            hand_colour = 255.0 * skin_colour * np.exp(0.1 * rng.standard_normal(3))
            image = self._occlude(image, labels, *appearance.hand(rng, landmarks, self.size, hand_colour))
        if rng.uniform() < options.shadow_probability:
            image = appearance.cast_shadow(rng, image, self.size)
        image = appearance.degrade(rng, image, options)
        return dict(image=image, landmarks=landmarks.astype(np.float32), segmentation=labels,
                    coefficients=coefficients.astype(np.float32), displacement=displacement,
                    points_px=points.astype(np.float32))

    @staticmethod
    def _occlude(image, labels, coverage, colour):
        """An occluder over the image (blended by its coverage); labels OTHER where it covers
        over half a pixel (labels are changed in place)."""
        labels[coverage > 0.5] = schema.OTHER
        return image * (1.0 - coverage[..., None]) + colour * coverage[..., None]


def encode_sample(sample, source_filename, image_format="png"):
    """Serialized tf.train.Example of a sample from `SampleRenderer.sample`."""
    from preprocess import tfrecord_writer
    return tfrecord_writer.make_example(
        images.encode_image(sample["image"], image_format), sample["landmarks"],
        images.encode_png(sample["segmentation"]), source_filename, np.eye(2, 3),
        ground_truth=dict(coefficients=sample["coefficients"],
                          displacement=sample["displacement"], points_px=sample["points_px"]))


_worker = {}


def _init_worker(face_model_path, map_size, image_format, options=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A failing initializer would only break the pool ("terminated abruptly"); keep the error
    # and raise it with the first task instead, so the run ends with its message.
    try:
        from model.face import FaceModel
        _worker["renderer"] = SampleRenderer(FaceModel(face_model_path), map_size=map_size,
                                            options=options)
        _worker["error"] = None
    except Exception as error:  # noqa: BLE001 -- re-raised by _make_record
        _worker["error"] = error
    _worker["image_format"] = image_format


def _make_record(seed_and_index):
    if _worker["error"] is not None:
        raise _worker["error"]
    seed, index = seed_and_index
    sample = _worker["renderer"].sample(sample_rng(seed, index))
    return encode_sample(sample, "synthetic/%d/%d" % (seed, index), _worker["image_format"])


def _face_model_sha256(face_model_path):
    """The SHA-256 of the face model file (None when it is missing: the workers then say so), so
    that a shard rendered with another model at the same path is not taken as complete."""
    from model.face import file_format
    from model.face.model import DEFAULT_PATH
    path = DEFAULT_PATH if face_model_path is None else face_model_path
    return file_format.file_sha256(path) if os.path.isfile(path) else None


def synthesize(num, out_dir, seed=0, workers=1, records_per_shard=1000, prefix="synthetic",
               face_model_path=None, map_size=detail.DEFAULT_MAP_SIZE, image_format="png",
               overwrite=False, progress=True, num_shards=1, shard_index=0, options=None):
    """Writes `num` synthetic samples as tfrecord shards and `<out_dir>/<prefix>-summary.txt` (what
    was written and with which settings); returns the shard paths.

    num_shards, shard_index: write only samples shard_range(num, ...) of the run, under the file
    prefix sharding.file_prefix(prefix, ...); a shard already complete with these settings is
    skipped (its paths are returned), a half-written one is redone (preprocess/sharding.py).
    options: an appearance.AppearanceOptions (None: its defaults); part of the shard's settings.
    """
    from model import output_files
    from preprocess import tfrecord_writer

    if num < 1:
        raise ValueError("--num must be >= 1, got %d" % num)
    options = (appearance.AppearanceOptions() if options is None else options).validate()
    settings = dict(num=num, seed=seed, records_per_shard=records_per_shard, prefix=prefix,
                    face_model=face_model_path, face_model_sha256=_face_model_sha256(face_model_path),
                    map_size=map_size, image_format=image_format,
                    appearance=dataclasses.asdict(options))
    shard = sharding.Shard(out_dir, prefix, num_shards, shard_index, settings, overwrite)
    if shard.complete is not None:
        print("synthesize: %s is complete (%d record(s)): skipped" % (shard.manifest_path,
                                                                       shard.complete["records"]),
              file=sys.stderr)
        return shard.paths
    indices = sharding.shard_range(num, num_shards, shard_index)
    tasks = [(seed, index) for index in indices]
    init_args = (face_model_path, map_size, image_format, options)
    prefix = shard.prefix
    with tfrecord_writer.ShardedWriter(out_dir, prefix, records_per_shard, shard.redo) as writer:
        shard.begin()
        bar = tqdm(total=len(tasks), unit="face", disable=not progress, file=sys.stderr)
        records = parallel.ordered_map(_make_record, tasks, workers, initializer=_init_worker,
                                       initargs=init_args, chunksize=4)
        for record in records:
            writer.write(record)
            bar.update(1)
        bar.close()
    with output_files.replacing(os.path.join(out_dir, prefix + "-summary.txt"), "w") as f:
        f.write("written: %d record(s) in %d shard(s)\nseed: %d\nface model: %s\nmap size: %d\n"
                "image format: %s\nappearance: %s\n" % (
                    writer.num_records, len(writer.paths), seed, face_model_path or "embedded default",
                    map_size, image_format, options))
        if num_shards > 1:
            f.write("shard: %d of %d (samples %d to %d)\n" % (shard_index, num_shards, indices.start,
                                                               indices.stop - 1))
    shard.finish(writer.paths, writer.counts)
    return writer.paths


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    if FLAGS.num is None or not FLAGS.out:
        raise app.UsageError("--num and --out are required")
    try:
        paths = synthesize(FLAGS.num, FLAGS.out, seed=FLAGS.seed, workers=FLAGS.workers,
                           records_per_shard=FLAGS.records_per_shard, prefix=FLAGS.prefix,
                           face_model_path=FLAGS.face_model, map_size=FLAGS.map_size,
                           image_format=FLAGS.image_format, overwrite=FLAGS.overwrite,
                           num_shards=FLAGS.num_shards, shard_index=FLAGS.shard_index,
                           options=appearance_options_from_flags())
    except (ValueError, OSError) as error:
        print("synthesize: %s" % error, file=sys.stderr)
        return 2
    num = len(sharding.shard_range(FLAGS.num, FLAGS.num_shards, FLAGS.shard_index))
    print("written: %d record(s) in %d shard(s) under %s" % (num, len(paths), FLAGS.out))
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
