"""The 3D morphable face model as TensorFlow graph ops: coefficients -> vertices, albedo,
normals, landmarks.

One class for every model file in the format of model/face/file_format.py (the embedded default
`resources/face_model.npz` and a converted Basel Face Model alike). TensorFlow is imported by the
graph ops only, so that preprocessing workers can read a model without it. The NumPy twins of
these ops, the tests' oracle, are in tests/face_model_oracle.py.

Coefficient vector (shared/DESIGN.md), in this order:
  identity k_id | expression k_exp | albedo k_tex | pose NUM_POSE | light NUM_LIGHT.

Model frame: millimetres, x right (the viewer's right), y up, z towards the viewer. The model's
camera (`FaceModel.camera`, model/face/camera.py) takes it to crop pixels; model/face/forward.py
is the one path from coefficients to a rendered face.
"""
import collections
import json
import os
import weakref

import numpy as np

from model.face import contour, file_format, landmarks68
from model.face.camera import CropCamera
from model.face.framing import crop_frame

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "resources", "face_model.npz")
# Pose: pitch, yaw, roll, tx, ty, log_scale.
NUM_POSE = 6
# Lighting: 9 spherical-harmonics bands x RGB, the layout renderer.shading.sh_shading takes.
NUM_LIGHT = 27
COEFFICIENT_PARTS = ("identity", "expression", "albedo", "pose", "light")


def clip_to_unit(x):
    """x clipped to [0, 1], with tf.clip_by_value's gradient (the incoming one where 0 <= x <= 1, 0
    elsewhere) computed as one multiply by a mask: clip_by_value's own gradient builds a zero
    tensor and two selects. Used for every clip to [0, 1] of the training steps: the albedo (~4% of
    the whole face render's forward and backward, bench/bench_face_render.py) and the render
    compared with the photo (model/coarse.py, losses.composite_render). A NaN gets gradient 0 here
    (clip_by_value passes it on).
    """
    import tensorflow.compat.v1 as tf

    @tf.custom_gradient
    def clip(value):
        clipped = tf.clip_by_value(value, 0.0, 1.0)

        def gradient(upstream):
            return upstream * tf.cast(tf.equal(value, clipped), upstream.dtype)
        return clipped, gradient
    return clip(x)


class FaceModel:
    """A morphable face model loaded from an npz file.

    Attributes:
      path: the file; sha256: hex SHA-256 of its bytes (what a checkpoint records).
      num_vertices: N.
      triangles: int32 [T, 3], counter-clockwise seen from the front (normals point outward).
      uv: float32 [N, 2] in [0, 1]^2 (u right, v up; image row = (1 - v) * size).
      uv_mask: uint8 [S, S] face chart mask in UV image space.
      landmarks68: int32 [68] vertex ids, dlib / iBUG order (model/face/landmarks68.py).
      mirror: int32 [N], index of each vertex's mirror twin (x -> -x).
      regions: dict name -> bool [N] for skin, eyes, brows, nose, lips (and any extra
        region_* arrays the file has, e.g. mouth_interior).
      k_id, k_exp, k_tex: basis sizes; coeff_size = k_id + k_exp + k_tex + NUM_POSE + NUM_LIGHT.
      mean_shape [N, 3] mm, mean_albedo [N, 3] in [0, 1], id_basis [3N, k_id],
      exp_basis [3N, k_exp], tex_basis [3N, k_tex] (coefficients in standard deviations).
      frame_scale: pixels per mm in a 300 crop at log_scale 0; frame_centre: [3] mm;
      camera: CropCamera(frame_scale, frame_centre), the pose -> crop pixels map.
      meta: dict (source, licence, build parameters).
    """

    def __init__(self, path=None):
        path = DEFAULT_PATH if path is None else path
        arrays = file_format.load_face_model_arrays(path)
        self.path = path
        self.mean_shape = arrays["mean_shape"].astype(np.float32)
        self.num_vertices = len(self.mean_shape)
        n3 = 3 * self.num_vertices
        self.id_basis = arrays["id_basis"].astype(np.float32)
        self.exp_basis = arrays["exp_basis"].astype(np.float32)
        self.mean_albedo = arrays["mean_albedo"].astype(np.float32)
        self.tex_basis = arrays["tex_basis"].astype(np.float32)
        for name in ("id_basis", "exp_basis", "tex_basis"):
            if getattr(self, name).ndim != 2 or getattr(self, name).shape[0] != n3:
                raise ValueError("%s: %s must be [3N=%d, K], got %s"
                                 % (path, name, n3, getattr(self, name).shape))
        self.triangles = arrays["triangles"].astype(np.int32)
        if self.triangles.min() < 0 or self.triangles.max() >= self.num_vertices:
            raise ValueError("%s: triangle indices out of range [0, %d)" % (path, self.num_vertices))
        self.uv = arrays["uv"].astype(np.float32)
        self.uv_mask = arrays["uv_mask"].astype(np.uint8)
        if self.uv_mask.ndim != 2 or self.uv_mask.shape[0] != self.uv_mask.shape[1]:
            raise ValueError("%s: uv_mask must be square [S, S], got %s" % (path, self.uv_mask.shape))
        self.landmarks68 = arrays["landmarks68"].astype(np.int32)
        if self.landmarks68.shape != (landmarks68.NUM_LANDMARKS,):
            raise ValueError("%s: landmarks68 must be [%d], got %s"
                             % (path, landmarks68.NUM_LANDMARKS, self.landmarks68.shape))
        self.mirror = arrays["mirror"].astype(np.int32)
        self.regions = {k[len("region_"):]: arrays[k].astype(bool)
                        for k in arrays if k.startswith("region_")}
        self.meta = json.loads(str(arrays["meta"]))
        self.k_id = self.id_basis.shape[1]
        self.k_exp = self.exp_basis.shape[1]
        self.k_tex = self.tex_basis.shape[1]
        self.coeff_size = self.k_id + self.k_exp + self.k_tex + NUM_POSE + NUM_LIGHT
        self._sha256 = None
        self._graph_constants = weakref.WeakKeyDictionary()
        self.frame_scale, self.frame_centre = crop_frame(self.mean_shape[self.landmarks68])
        self.camera = CropCamera(self.frame_scale, self.frame_centre)
        self.contour_candidates = contour.contour_candidates(self.mean_shape, self.landmarks68,
                                                             self.regions.get("skin"))

    @property
    def sha256(self):
        """Hex SHA-256 of the model file (computed once)."""
        if self._sha256 is None:
            self._sha256 = file_format.file_sha256(self.path)
        return self._sha256

    # ------------------------------------------------------------------ coefficients

    def coefficient_slices(self):
        """OrderedDict part name (COEFFICIENT_PARTS) -> slice of the coefficient vector."""
        sizes = (self.k_id, self.k_exp, self.k_tex, NUM_POSE, NUM_LIGHT)
        ends = np.cumsum(sizes)
        return collections.OrderedDict(
            (name, slice(int(end - size), int(end))) for name, size, end in zip(COEFFICIENT_PARTS, sizes, ends))

    def split_coefficients(self, coeffs):
        """Splits [..., coeff_size] (tensor or array) into identity, expression, albedo, pose, light."""
        if coeffs.shape[-1] is not None and int(coeffs.shape[-1]) != self.coeff_size:
            raise ValueError("coefficients must have %d entries, got %s" % (self.coeff_size, coeffs.shape))
        return {name: coeffs[..., part] for name, part in self.coefficient_slices().items()}

    # ------------------------------------------------------------------ graph ops

    def _constant(self, name):
        """The model array `name` as a tf.constant, created once per graph (the bases are large)."""
        import tensorflow.compat.v1 as tf
        graph = tf.get_default_graph()
        cache = self._graph_constants.setdefault(graph, {})
        if name not in cache:
            with tf.name_scope(None):
                cache[name] = tf.constant(getattr(self, name), name="face_model_" + name)
        return cache[name]

    def shape(self, identity, expression):
        """Vertices [B, N, 3] mm (model frame) from identity [B, k_id] and expression [B, k_exp]."""
        import tensorflow.compat.v1 as tf
        offsets = (tf.matmul(identity, self._constant("id_basis"), transpose_b=True)
                   + tf.matmul(expression, self._constant("exp_basis"), transpose_b=True))
        return self._constant("mean_shape")[tf.newaxis] + tf.reshape(offsets, [-1, self.num_vertices, 3])

    def albedo(self, albedo_coeffs):
        """Albedo [B, N, 3] in [0, 1] (clipped) from [B, k_tex]."""
        import tensorflow.compat.v1 as tf
        offsets = tf.reshape(tf.matmul(albedo_coeffs, self._constant("tex_basis"), transpose_b=True),
                             [-1, self.num_vertices, 3])
        return clip_to_unit(self._constant("mean_albedo")[tf.newaxis] + offsets)

    def landmarks(self, points_px, sliding=True):
        """[B, 68, 2] (u, v) of the 68 landmarks from points_px [B, N, 3].

        sliding=True: the jaw points (0-16) slide along the face's outline as annotators place them
        (model/face/contour.py: on the far side of a turned face, the cheek's silhouette); every
        other point is its fixed vertex. False: all 68 at their fixed vertices (landmarks68).
        """
        import tensorflow.compat.v1 as tf
        uv = points_px[..., :2]
        fixed = tf.gather(uv, self.landmarks68, axis=1)
        if not sliding:
            return fixed
        candidates = tf.gather(uv, self.contour_candidates, axis=1)            # [B, 17, M, 2]
        lateral = fixed[:, landmarks68.JAW[-1]] - fixed[:, landmarks68.JAW[0]]  # [B, 2]
        score = tf.reduce_sum(candidates * lateral[:, tf.newaxis, tf.newaxis, :], axis=-1) \
            * tf.constant(contour.JAW_SIDES)[tf.newaxis, :, tf.newaxis]
        best = tf.argmax(score, axis=-1, output_type=tf.int32)                  # [B, 17]
        jaw = tf.gather(candidates, best, axis=2, batch_dims=2)                 # [B, 17, 2]
        return tf.concat([jaw, fixed[:, len(landmarks68.JAW):]], axis=1)

    def landmarks_numpy(self, points_2d, sliding=True):
        """NumPy twin of `landmarks`: points_2d [..., N, 2] -> [..., 68, 2]."""
        points_2d = np.asarray(points_2d)
        result = points_2d[..., self.landmarks68, :].copy()
        if sliding:
            result[..., landmarks68.JAW, :] = contour.sliding_jaw_numpy(points_2d, self.contour_candidates)
        return result

    def normals(self, vertices):
        """Unit vertex normals [B, N, 3] of vertices [B, N, 3] (outward)."""
        from renderer import shading
        return shading.vertex_normals(vertices, self.triangles)
