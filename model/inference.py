"""Reconstruction of photos with a trained network: the one path test.py and evaluate.py share.

    reconstructor = load_reconstructor("results/release/coarse")      # or a fine export
    face, result, landmarks = reconstruct_photo_file(reconstructor, "photo.jpg")

The flags that choose what reconstructs (checkpoint, stage, face model, detector, fitting steps)
are defined here once (`define_flags`) for both programs, so that one command line scores what
another writes. The backbone is not a flag: it comes from the checkpoint's stage config
(stage.json, model/training.py), which also names the face model the checkpoint was trained with;
another face model is an error.

Two reconstructors, one per stage:
  CoarseReconstructor  crop -> coarse net -> test-time fitting (fit_steps) -> coarse mesh;
  FineReconstructor    the same, then the fine network on the fitted coarse result (the photo
                       and the coarse render unwrapped to UV, model/fine.FineModel.forward) ->
                       displacement map -> detailed mesh. Loaded from a fine export (what
                       train.py --stage=fine exports: one checkpoint with the coarse network's and
                       the fine network's variables, stage.json with stage "fine", uv_size,
                       max_channels, max_displacement, displacement_direction).
Which one: `resolve_stage` (--stage auto: the checkpoint's stage config; without --checkpoint,
results/release/fine when it exists, else results/release/coarse).
"""
import os

import numpy as np
import tensorflow.compat.v1 as tf

from model import coarse, fine, fitting, output_files, training
from model.face import FaceModel, forward, framing
from model.face.uv_layout import UVLayout
from preprocess.photo import crop_photo_file

# Photo files taken from a folder (test.py --input, evaluate.py --photos/--scans); matched
# case-insensitively. A file named on its own is read whatever its extension.
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COARSE_STAGE, FINE_STAGE = "coarse", "fine"
STAGES = ("auto", COARSE_STAGE, FINE_STAGE)
RELEASED = {COARSE_STAGE: os.path.join("results", "release", "coarse"),
            FINE_STAGE: os.path.join("results", "release", "fine")}
# The fine stage config entries a fine export must carry (what train.py --stage=fine exports).
FINE_CONFIG_KEYS = ("backbone", "uv_size", "max_channels", "max_displacement", "displacement_direction")
# The detail picture (`_detail.png`): a grey material lit by one directional light from the upper
# left front (camera frame: x right, y up, z towards the viewer), raking enough to show folds.
GREY_ALBEDO = 0.8
PICTURE_AMBIENT = 0.2
PICTURE_LIGHT = (-0.45, 0.45, 0.77)


def define_flags(flags):
    """Defines --checkpoint, --stage, --face_model_path, --detector and --fit_steps on an absl `flags`
    module."""
    flags.DEFINE_string("checkpoint", "",
                        "Checkpoint: a folder (its latest checkpoint) or a checkpoint prefix; its folder "
                        "holds the stage config stage.json (stage, backbone, face model). Empty = the "
                        "released one of --stage: results/release/fine when it exists, else "
                        "results/release/coarse.")
    flags.DEFINE_enum("stage", "auto", list(STAGES),
                      "auto: the checkpoint's stage (stage.json); coarse: the coarse network (and fitting) "
                      "only, also from a fine export; fine: coarse, fitting, then the fine network's "
                      "detail (needs a fine checkpoint).")
    flags.DEFINE_string("face_model_path", "", "Face model npz the checkpoint was trained with (its stage "
                        "config names it and checks it); empty = resources/face_model.npz.")
    flags.DEFINE_enum("detector", "hog", ["hog", "cnn"], "dlib face detector.")
    flags.DEFINE_integer("fit_steps", fitting.DEFAULT_STEPS,
                         "Test-time fitting steps from the network's prediction (model/fitting.py; "
                         "0 = the network alone, as in the paper).", lower_bound=0)


def reconstructor_from_flags(flag_values):
    """`load_reconstructor` for the parsed flags of `define_flags`."""
    return load_reconstructor(flag_values.checkpoint or None, flag_values.face_model_path or None,
                              flag_values.fit_steps, flag_values.stage)


def resolve_stage(checkpoint=None, stage="auto", root=REPOSITORY):
    """(checkpoint, stage) that a reconstruction uses.

    Args:
      checkpoint: a checkpoint folder or prefix, or None: the released one (RELEASED, under `root`,
        the repository) of `stage`; for "auto" the fine one when it exists, else the coarse one.
      stage: "auto" (the checkpoint's stage config decides), "coarse" (a coarse or a fine export:
        a fine export holds the coarse network too), or "fine".
    Raises:
      FileNotFoundError: no stage config beside the checkpoint.
      training.StageConfigMismatch (a ValueError): --stage=fine with a coarse checkpoint, or a
        stage config of an unknown stage.
    """
    if stage not in STAGES:
        raise ValueError("--stage must be one of %s, got %r" % (", ".join(STAGES), stage))
    if checkpoint is None:
        if stage == "auto":
            fine_release = os.path.join(root, RELEASED[FINE_STAGE])
            stage_of_release = FINE_STAGE if os.path.isdir(fine_release) else COARSE_STAGE
        else:
            stage_of_release = stage
        checkpoint = os.path.join(root, RELEASED[stage_of_release])
    resolve_checkpoint(checkpoint)
    found = training.read_stage_config(checkpoint).get("stage")
    if found not in (COARSE_STAGE, FINE_STAGE):
        raise training.StageConfigMismatch("%s is a checkpoint of the %s stage, not of the coarse or the "
                                           "fine stage" % (checkpoint, found))
    if stage == FINE_STAGE and found != FINE_STAGE:
        raise training.StageConfigMismatch("%s is a checkpoint of the %s stage: --stage=fine needs a fine "
                                           "export (train.py --stage=fine, or results/release/fine)"
                                           % (checkpoint, found))
    return checkpoint, (found if stage == "auto" else stage)


def load_reconstructor(checkpoint=None, face_model_path=None, fit_steps=0, stage="auto"):
    """The reconstructor of a checkpoint (CoarseReconstructor or FineReconstructor), matched to it by
    its stage config.

    Args:
      checkpoint: a checkpoint folder (its latest checkpoint) or prefix, with stage.json in its
        folder; None = the released one (`resolve_stage`).
      face_model_path: the face model npz; None = resources/face_model.npz.
      fit_steps: test-time fitting steps (CoarseReconstructor).
      stage: "auto", "coarse" or "fine" (`resolve_stage`).
    Raises:
      FileNotFoundError: no checkpoint, no stage config or no face model file (the message names it).
      ValueError: the stage config is not of the stage asked for, the face model is not the file the
        checkpoint was trained with (training.StageConfigMismatch), a fine stage config lacks an
        entry, or the face model file is bad.
    """
    checkpoint, stage = resolve_stage(checkpoint, stage)
    prefix = resolve_checkpoint(checkpoint)
    config = training.read_stage_config(checkpoint)
    face_model = FaceModel(face_model_path)
    training.check_face_model(config, face_model, checkpoint)
    if stage == COARSE_STAGE:
        return CoarseReconstructor(prefix, face_model, config["backbone"], fit_steps)
    missing = [key for key in FINE_CONFIG_KEYS if config.get(key) is None]
    if missing:
        raise training.StageConfigMismatch("%s: the fine stage config lacks %s"
                                           % (checkpoint, ", ".join(missing)))
    return FineReconstructor(prefix, face_model, config, fit_steps)


def list_photos(path):
    """The photo files named by `path`: the file itself, or a folder's photos (PHOTO_EXTENSIONS) in
    sorted order, not recursively. FileNotFoundError naming `path` if it is neither."""
    if os.path.isdir(path):
        return [os.path.join(path, name) for name in sorted(os.listdir(path))
                if name.lower().endswith(PHOTO_EXTENSIONS) and os.path.isfile(os.path.join(path, name))]
    if os.path.isfile(path):
        return [path]
    raise FileNotFoundError("%s is neither a file nor a folder" % path)


def resolve_checkpoint(path):
    """Checkpoint prefix from a folder or a prefix; FileNotFoundError naming `path` if there is none."""
    prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    if prefix is None or not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError("no checkpoint at %s (train one with run_train.sh, or pass "
                                "--checkpoint)" % path)
    return prefix


def check_checkpoint_matches(checkpoint, variables, backbone):
    """Raises ValueError naming the mismatch when `checkpoint` can't be restored into `variables` (the
    network built for --backbone=`backbone` and the face model): another backbone, or other sizes."""
    stored = dict(tf.train.list_variables(checkpoint))
    stored_backbones = sorted({name.split("/")[1] for name in stored
                               if name.startswith(coarse.SCOPE + "/") and name.split("/")[1] in coarse.BACKBONES})
    if stored_backbones and backbone not in stored_backbones:
        raise ValueError("checkpoint %s holds a --backbone=%s network, not --backbone=%s"
                         % (checkpoint, stored_backbones[0], backbone))
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in stored:
            raise ValueError("checkpoint %s has no variable %s: it is not a coarse network for "
                             "--backbone=%s" % (checkpoint, name, backbone))
        if stored[name] != shape:
            raise ValueError("checkpoint %s has %s of shape %s, the network here %s: was it trained "
                             "with another face model (--face_model_path)?"
                             % (checkpoint, name, stored[name], shape))


def check_variables_in_checkpoint(checkpoint, variables, what):
    """Raises ValueError naming the first of `variables` that `checkpoint` lacks or holds in another shape."""
    stored = dict(tf.train.list_variables(checkpoint))
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in stored:
            raise ValueError("checkpoint %s has no variable %s: it is not %s" % (checkpoint, name, what))
        if stored[name] != shape:
            raise ValueError("checkpoint %s has %s of shape %s, the network here %s: it is not %s"
                             % (checkpoint, name, stored[name], shape, what))


class CoarseReconstructor(object):
    """The trained coarse network, test-time fitting and the face model, for one 300 x 300 crop at a time.

    fit_steps: test-time fitting steps from the network's prediction (model/fitting.py; 0: the
    network alone).
    """
    stage = COARSE_STAGE

    def __init__(self, checkpoint, face_model, backbone, fit_steps=0):
        self.face_model = face_model
        self.fit_steps = fit_steps
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.crop = tf.placeholder(tf.float32, [1, framing.CROP_SIZE, framing.CROP_SIZE, 3])
            net = coarse.network(face_model, backbone)
            self.network_coeffs = net(coarse.resize_for_encoder(self.crop))
            # Fed with the fitted coefficients when fitting; the network's otherwise.
            self.coeffs = tf.placeholder_with_default(self.network_coeffs, self.network_coeffs.shape)
            outputs = forward.render_face(face_model, self.coeffs, framing.CROP_SIZE)
            outputs["coeffs"] = self.coeffs
            self.fetches = {key: outputs[key] for key in
                            ("vertices", "colours", "landmarks", "render", "mask")}
            self.fetches["coeffs"] = self.coeffs
            # What `__call__(..., pictures=True)` fetches too (the fine stage's detail picture).
            self.picture_fetches = {}
            check_checkpoint_matches(checkpoint, net.variables(), backbone)
            variables = list(net.variables()) + self._extend(outputs, checkpoint)
            self.fitter = fitting.CoefficientFitter(face_model) if fit_steps > 0 else None
            self.session = tf.Session(graph=self.graph)
            tf.train.Saver(variables).restore(self.session, checkpoint)
            if self.fitter is not None:
                self.session.run(self.fitter.initializer())
            self.graph.finalize()

    def _extend(self, coarse_outputs, checkpoint):
        """Hook of a later stage: more graph on the coarse outputs (in self.fetches); returns the
        variables to restore from `checkpoint` besides the coarse network's."""
        return []

    def __call__(self, crop_uint8, landmarks=None, segmentation=None, pictures=False):
        """crop [300, 300, 3] uint8, and when fitting its landmarks [68, 2] (crop pixels) and
        segmentation [300, 300] (preprocess/schema.py labels) -> dict of numpy outputs of that one
        crop: vertices [N, 3] mm (model frame), colours [N, 3], landmarks [68, 2] crop pixels,
        render [300, 300, 3], mask [300, 300, 1], coeffs [C] (after fitting: what the rest shows),
        network_coeffs [C] (the network's, before fitting); with `pictures`, also picture_fetches."""
        feed = {self.crop: crop_uint8[None].astype(np.float32) / 255.0}
        fetches = dict(self.fetches, **self.picture_fetches) if pictures else self.fetches
        if self.fitter is None:
            values = self.session.run(fetches, feed)
            values["network_coeffs"] = values["coeffs"]
        else:
            if landmarks is None or segmentation is None:
                raise ValueError("fitting (fit_steps=%d) needs the crop's landmarks and segmentation"
                                 % self.fit_steps)
            network = self.session.run(self.network_coeffs, feed)
            fitted = self.fitter.fit(self.session, crop_uint8[None], np.asarray(landmarks)[None],
                                     np.asarray(segmentation)[None], network, self.fit_steps)
            feed[self.coeffs] = fitted
            values = self.session.run(fetches, feed)
            values["network_coeffs"] = network
        return {key: value[0] for key, value in values.items()}


def grey_shading(face_model, vertices, normals, triangles, pose, background):
    """The detail picture's render: a grey material under PICTURE_LIGHT (camera frame) plus
    PICTURE_AMBIENT, over `background` [B, S, S, 3]; vertices, normals [B, V, 3] model frame."""
    rotation = face_model.camera.rotation(pose)
    camera_normals = tf.matmul(normals, rotation, transpose_b=True)
    light = np.asarray(PICTURE_LIGHT, np.float32) / np.linalg.norm(PICTURE_LIGHT)
    lambert = tf.maximum(tf.reduce_sum(camera_normals * light, axis=-1, keepdims=True), 0.0)
    shade = GREY_ALBEDO * (PICTURE_AMBIENT + (1.0 - PICTURE_AMBIENT) * lambert)
    size = int(background.shape[1])
    rendered = forward.render_mesh(face_model.camera, vertices, triangles, pose, size,
                                   colours=tf.tile(shade, [1, 1, 3]), cull_backfaces=True)
    return rendered["mask"] * rendered["render"] + (1.0 - rendered["mask"]) * background


class FineReconstructor(CoarseReconstructor):
    """A fine export: the CoarseReconstructor's reconstruction (network, fitting), then the fine
    network on the fitted coarse result, for one 300 x 300 crop at a time.

    Args:
      checkpoint: the export's checkpoint prefix (coarse and fine variables).
      face_model: model.face.FaceModel.
      config: its stage config (FINE_CONFIG_KEYS).
      fit_steps: as CoarseReconstructor.
    Attributes (besides CoarseReconstructor's):
      layout: the UVLayout of the fine network's map size; net: the FineNet; model: the FineModel;
      detailed_triangles: int32 [T', 3] of the detailed face (into its N + M vertices: the N coarse
      ones, then the layout's M dense ones).
    __call__ also returns: displacement [S, S, 1] mm (as applied: tapered to the detail mask),
    uv_photo [S, S, 3] (the photo unwrapped through the fitted coarse mesh), visibility [S, S, 1],
    texel_positions [S, S, 2] (u, v crop pixels of each texel on the coarse face),
    detailed_vertices [N + M, 3] mm and detailed_normals [N + M, 3] (model frame), dense_vertices,
    dense_normals [M, 3]; with pictures=True also coarse_shading, fine_shading [300, 300, 3] (the
    grey renders of `grey_shading` over the crop).
    """
    stage = FINE_STAGE

    def __init__(self, checkpoint, face_model, config, fit_steps=0):
        self.config = dict(config)
        self.max_displacement = float(config["max_displacement"])
        super(FineReconstructor, self).__init__(checkpoint, face_model, config["backbone"], fit_steps)

    def _extend(self, coarse_outputs, checkpoint):
        config, face_model = self.config, self.face_model
        self.layout = UVLayout(face_model, int(config["uv_size"]))
        self.net = fine.FineNet(int(config["uv_size"]), int(config["max_channels"]), self.max_displacement,
                                float(config.get("displacement_highpass", 0.0)))
        self.model = fine.FineModel(face_model, self.layout, self.net, config["displacement_direction"],
                                    shading_cue=bool(config.get("shading_cue", False)),
                                    ratio_input=bool(config.get("ratio_input", False)))
        self.detailed_triangles = self.model.triangles
        outputs = self.model.forward(coarse_outputs, self.crop)
        detailed_normals = tf.concat([face_model.normals(coarse_outputs["vertices"]), outputs["dense_normals"]],
                                     axis=1)
        self.fetches.update(displacement=outputs["displacement"], uv_photo=outputs["uv_photo"],
                            visibility=outputs["visibility"], texel_positions=outputs["texel_positions"],
                            detailed_vertices=outputs["vertices"],
                            detailed_normals=detailed_normals, dense_vertices=outputs["dense_vertices"],
                            dense_normals=outputs["dense_normals"])
        pose = face_model.split_coefficients(self.coeffs)["pose"]
        self.picture_fetches.update(
            coarse_shading=grey_shading(face_model, coarse_outputs["vertices"],
                                        face_model.normals(coarse_outputs["vertices"]), face_model.triangles,
                                        pose, self.crop),
            fine_shading=grey_shading(face_model, outputs["vertices"], detailed_normals, self.detailed_triangles,
                                      pose, self.crop))
        variables = self.net.variables()
        check_variables_in_checkpoint(checkpoint, variables, "a fine export of uv_size %s and max_channels %s"
                                      % (config["uv_size"], config["max_channels"]))
        return variables


def reconstruct_photo_file(reconstructor, path, detector="hog", **options):
    """Detects, crops and reconstructs the largest face of one photo file (`options`: the
    reconstructor's, e.g. pictures=True).

    Returns:
      (face, result, landmarks): the preprocess.photo.FaceCrop, the reconstructor's outputs for its
      crop, and the model's 68 landmarks [68, 2] in pixels of the original photo (continuous,
      pixel centres at +0.5).
    Raises:
      preprocess.photo.SkippedPhoto: the file is unreadable or holds no face.
    """
    face = crop_photo_file(path, detector=detector)
    result = reconstructor(face.image, face.landmarks, face.segmentation, **options)
    landmarks = framing.apply_affine(framing.invert_affine(face.matrix), result["landmarks"])
    return face, result, landmarks


def save_landmarks(path_or_file, landmarks):
    """Writes 68 landmarks [68, 2] as one `x y` line each (pixels, two decimals): to a path (through
    model/output_files) or to an open text file (a caller writing several files together)."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with output_files.replacing(path_or_file, "w") as f:
            np.savetxt(f, landmarks, fmt="%.2f")
    else:
        np.savetxt(path_or_file, landmarks, fmt="%.2f")
