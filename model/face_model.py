"""The 3D morphable face model: coefficients -> vertices, albedo, normals, landmarks.

One class for every model file in the format of shared/DESIGN.md (the embedded default
`resources/face_model.npz` and a converted Basel Face Model alike).

Each operation exists twice, with the same name: as TensorFlow graph ops (`FaceModel.shape`, ...)
and as NumPy twins with the suffix `_np` (`FaceModel.shape_np`, ...), for preprocessing and tests.

Frames:
  model frame: millimetres, x right (the viewer's right), y up, z towards the viewer.
  crop pixels: u right, v down, origin at the top-left corner (see renderer.camera.pixels_to_clip);
    depth larger = closer to the camera.
Pose (6): pitch, yaw, roll (radians, R = Rz(roll) Ry(yaw) Rx(pitch)), tx, ty (pixels of the 300
crop), log_scale. A point X projects to
    p = R (X - frame_centre)
    u = W/2 + s p_x + tx W/300,  v = H/2 - s p_y + ty H/300,  depth = s p_z
    s = frame_scale exp(log_scale) W/300
where frame_scale (px per mm at 300) and frame_centre (mm) are computed at load time so that at
pose 0 the mean face's 68 landmarks land where preprocess.crop frames a detected face.
"""
import json
import os
import weakref

import numpy as np

from model import output_files
from preprocess.crop import CROP_SIZE, crop_box_from_landmarks

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "resources", "face_model.npz")
REGION_NAMES = ("skin", "eyes", "brows", "nose", "lips")
NUM_POSE = 6
NUM_LIGHT = 27
REQUIRED_KEYS = ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "tex_basis", "triangles",
                 "uv", "landmarks68", "mirror", "meta") + tuple("region_" + r for r in REGION_NAMES)
# Storage types of the file format (resources/README.md); other keys are stored as given.
FILE_DTYPES = dict(mean_shape=np.float32, id_basis=np.float32, exp_basis=np.float32,
                   mean_albedo=np.float32, tex_basis=np.float32, uv=np.float32,
                   triangles=np.int32, landmarks68=np.int32, mirror=np.int32)


def save_face_model(path, arrays):
    """Writes a face model file: `arrays` (name -> array, `meta` a JSON string array) with the
    keys of FILE_DTYPES cast to their storage types.

    Written through model.output_files: a reader (a training run loading the model during a
    rebuild) sees the old file or the new one, never a half-written zip, and on an error the old
    file is left as it was.
    """
    arrays = {name: (np.asarray(value, FILE_DTYPES[name]) if name in FILE_DTYPES else value)
              for name, value in arrays.items()}
    with output_files.replacing(path) as f:
        np.savez_compressed(f, **arrays)


def _euler_rotation_np(angles):
    """NumPy twin of renderer.camera.euler_rotation: [B, 3] -> [B, 3, 3]."""
    cp, cy, cr = np.cos(angles).T
    sp, sy, sr = np.sin(angles).T
    one, zero = np.ones_like(cp), np.zeros_like(cp)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def crop_frame(landmark_points):
    """The pose-0 framing of a face whose 68 landmarks are at landmark_points [68, 3] (mm).

    Returns (frame_scale, frame_centre): pixels per mm in a 300 crop, and the model point [3]
    (z = 0) at the crop centre, so that the crop rule of preprocess.crop, applied to the
    frontally projected landmarks, gives the whole 300 x 300 crop.
    """
    points = np.asarray(landmark_points, dtype=np.float64)
    # The crop rule works in a y-down frame (1 unit = 1 mm here).
    cx, cy, side = crop_box_from_landmarks(np.stack([points[:, 0], -points[:, 1]], axis=1))
    return float(CROP_SIZE / side), np.array([cx, -cy, 0.0], dtype=np.float32)


class FaceModel:
    """A morphable face model loaded from an npz file.

    Attributes:
      num_vertices: N.
      triangles: int32 [T, 3], counter-clockwise seen from the front (normals point outward).
      uv: float32 [N, 2] in [0, 1]^2 (u right, v up; image row = (1 - v) * size).
      uv_mask: uint8 [S, S] face chart mask in UV image space, or None if the file has none.
      landmarks68: int32 [68] vertex ids, dlib / iBUG order.
      mirror: int32 [N], index of each vertex's mirror twin (x -> -x).
      regions: dict name -> bool [N] for skin, eyes, brows, nose, lips (and any extra
        region_* arrays the file has, e.g. mouth_interior).
      k_id, k_exp, k_tex: basis sizes; coeff_size = k_id + k_exp + k_tex + 6 + 27.
      mean_shape [N, 3] mm, mean_albedo [N, 3] in [0, 1], id_basis [3N, k_id],
      exp_basis [3N, k_exp], tex_basis [3N, k_tex] (coefficients in standard deviations).
      frame_scale: pixels per mm in a 300 crop at log_scale 0; frame_centre: [3] mm.
      meta: dict (source, licence, build parameters).
    """

    def __init__(self, path=None):
        path = DEFAULT_PATH if path is None else path
        if not os.path.exists(path):
            raise FileNotFoundError("face model file %s does not exist" % path)
        with np.load(path) as data:
            missing = [k for k in REQUIRED_KEYS if k not in data.files]
            if missing:
                raise ValueError("face model file %s misses %s" % (path, ", ".join(missing)))
            arrays = {k: data[k] for k in data.files}
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
        self.uv_mask = arrays.get("uv_mask")
        self.landmarks68 = arrays["landmarks68"].astype(np.int32)
        if self.landmarks68.shape != (68,):
            raise ValueError("%s: landmarks68 must be [68], got %s" % (path, self.landmarks68.shape))
        self.mirror = arrays["mirror"].astype(np.int32)
        self.regions = {k[len("region_"):]: arrays[k].astype(bool)
                        for k in arrays if k.startswith("region_")}
        self.meta = json.loads(str(arrays["meta"]))
        self.k_id = self.id_basis.shape[1]
        self.k_exp = self.exp_basis.shape[1]
        self.k_tex = self.tex_basis.shape[1]
        self.coeff_size = self.k_id + self.k_exp + self.k_tex + NUM_POSE + NUM_LIGHT
        self._graph_constants = weakref.WeakKeyDictionary()
        self._set_frame()

    def _set_frame(self):
        """frame_scale and frame_centre from the crop rule applied to the frontal mean face."""
        self.frame_scale, self.frame_centre = crop_frame(self.mean_shape[self.landmarks68])

    # ------------------------------------------------------------------ coefficients

    def split_coefficients(self, coeffs):
        """Splits [B, coeff_size] (tensor or array) into identity, expression, albedo, pose, light."""
        sizes = [self.k_id, self.k_exp, self.k_tex, NUM_POSE, NUM_LIGHT]
        names = ["identity", "expression", "albedo", "pose", "light"]
        if coeffs.shape[-1] is not None and int(coeffs.shape[-1]) != self.coeff_size:
            raise ValueError("coefficients must have %d entries, got %s" % (self.coeff_size, coeffs.shape))
        ends = np.cumsum(sizes)
        return {name: coeffs[..., end - size:end] for name, size, end in zip(names, sizes, ends)}

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
        return tf.clip_by_value(self._constant("mean_albedo")[tf.newaxis] + offsets, 0.0, 1.0)

    def rotate(self, vertices, pose):
        """R (X - frame_centre): [B, N, 3] in the camera frame (x right, y up, z to the viewer)."""
        from renderer import camera
        import tensorflow.compat.v1 as tf
        rotation = camera.euler_rotation(pose[:, :3])
        return tf.matmul(vertices - self.frame_centre, rotation, transpose_b=True)

    def project(self, vertices, pose, image_size=CROP_SIZE):
        """points_px [B, N, 3] (u, v, depth) in an image_size x image_size crop; see module doc."""
        import tensorflow.compat.v1 as tf
        p = self.rotate(vertices, pose)
        w = float(image_size)
        s = (self.frame_scale * w / CROP_SIZE) * tf.exp(pose[:, 5])[:, None]
        t = pose[:, 3:5] * (w / CROP_SIZE)
        u = 0.5 * w + s * p[..., 0] + t[:, 0:1]
        v = 0.5 * w - s * p[..., 1] + t[:, 1:2]
        return tf.stack([u, v, s * p[..., 2]], axis=-1)

    def landmarks(self, points_px):
        """[B, 68, 2] (u, v) of the landmark vertices from points_px [B, N, 3]."""
        import tensorflow.compat.v1 as tf
        return tf.gather(points_px[..., :2], self.landmarks68, axis=1)

    def normals(self, vertices):
        """Unit vertex normals [B, N, 3] of vertices [B, N, 3] (outward)."""
        from renderer import shading
        return shading.vertex_normals(vertices, self.triangles)

    def depth_scale(self, image_size=CROP_SIZE):
        """A depth range for pixels_to_clip that holds any plausible face in the crop."""
        return 4.0 * image_size

    def reconstruct(self, coeffs, image_size=CROP_SIZE):
        """Everything a renderer needs from coefficients [B, coeff_size].

        Returns dict: vertices [B, N, 3] mm (model frame), points_px [B, N, 3], clip [B, N, 4],
        normals [B, N, 3] (camera frame), albedo [B, N, 3], colours [B, N, 3] (SH-shaded),
        landmarks [B, 68, 2] crop pixels.
        """
        from renderer import camera, shading
        import tensorflow.compat.v1 as tf
        c = self.split_coefficients(coeffs)
        vertices = self.shape(c["identity"], c["expression"])
        points_px = self.project(vertices, c["pose"], image_size)
        rotation = camera.euler_rotation(c["pose"][:, :3])
        normals = tf.matmul(self.normals(vertices), rotation, transpose_b=True)
        albedo = self.albedo(c["albedo"])
        return dict(vertices=vertices, points_px=points_px,
                    clip=camera.pixels_to_clip(points_px, image_size, self.depth_scale(image_size)),
                    normals=normals, albedo=albedo,
                    colours=shading.sh_shading(normals, albedo, c["light"]),
                    landmarks=self.landmarks(points_px))

    # ------------------------------------------------------------------ NumPy twins

    def shape_np(self, identity, expression):
        identity, expression = np.atleast_2d(identity), np.atleast_2d(expression)
        offsets = identity @ self.id_basis.T + expression @ self.exp_basis.T
        return self.mean_shape[np.newaxis] + offsets.reshape(-1, self.num_vertices, 3)

    def albedo_np(self, albedo_coeffs):
        offsets = (np.atleast_2d(albedo_coeffs) @ self.tex_basis.T).reshape(-1, self.num_vertices, 3)
        return np.clip(self.mean_albedo[np.newaxis] + offsets, 0.0, 1.0)

    def project_np(self, vertices, pose, image_size=CROP_SIZE):
        pose = np.atleast_2d(pose)
        p = (vertices - self.frame_centre) @ np.swapaxes(_euler_rotation_np(pose[:, :3]), 1, 2)
        w = float(image_size)
        s = (self.frame_scale * w / CROP_SIZE) * np.exp(pose[:, 5])[:, None]
        t = pose[:, 3:5] * (w / CROP_SIZE)
        u = 0.5 * w + s * p[..., 0] + t[:, 0:1]
        v = 0.5 * w - s * p[..., 1] + t[:, 1:2]
        return np.stack([u, v, s * p[..., 2]], axis=-1)

    def landmarks_np(self, points_px):
        return points_px[:, self.landmarks68, :2]

    def normals_np(self, vertices):
        vertices = np.asarray(vertices, dtype=np.float64)
        t = self.triangles
        face = np.cross(vertices[:, t[:, 1]] - vertices[:, t[:, 0]],
                        vertices[:, t[:, 2]] - vertices[:, t[:, 0]])
        normals = np.zeros_like(vertices)
        for k in range(3):
            for b in range(len(vertices)):
                np.add.at(normals[b], t[:, k], face[b])
        return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
