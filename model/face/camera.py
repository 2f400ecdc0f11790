"""The face crop's camera: scaled orthographic, framed by a scale and a centre in millimetres.

Pose (NUM_POSE = 6): pitch, yaw, roll (radians, R = Rz(roll) Ry(yaw) Rx(pitch)), tx, ty (pixels
of the 300 crop), log_scale. A model-frame point X (mm; x right, y up, z towards the viewer)
projects into a W x W image to
    p = R (X - centre)
    u = W/2 + s p_x + tx W/300,  v = H/2 - s p_y + ty H/300,  depth = s p_z
    s = scale exp(log_scale) W/300
(u right, v down from the top-left corner, depth larger = closer: renderer.camera.pixels_to_clip).
A FaceModel's camera has scale and centre from the crop rule (model/face/framing.crop_frame), so
that at pose 0 its mean face lands where the rule frames a detected face.
"""
import collections

from model.face.framing import CROP_SIZE

# Depths are crop pixels (s p_z); a face is a few hundred pixels deep at most in a crop of side W,
# so (-DEPTH_RANGE_PER_PIXEL W, DEPTH_RANGE_PER_PIXEL W) holds it with room to spare.
DEPTH_RANGE_PER_PIXEL = 4.0


class CropCamera(collections.namedtuple("CropCamera", ["scale", "centre"])):
    """scale: pixels per mm in a 300 crop at log_scale 0; centre: [3] mm, the model point at the
    crop centre at pose 0."""

    def rotation(self, pose):
        """R [B, 3, 3] of pose [B, 6]."""
        from renderer import camera
        return camera.euler_rotation(pose[:, :3])

    def project(self, vertices, pose, image_size=CROP_SIZE):
        """points_px [B, N, 3] (u, v, depth) of vertices [B, N, 3] mm in an image_size crop."""
        import tensorflow.compat.v1 as tf
        p = tf.matmul(vertices - self.centre, self.rotation(pose), transpose_b=True)
        w = float(image_size)
        s = (self.scale * w / CROP_SIZE) * tf.exp(pose[:, 5])[:, None]
        t = pose[:, 3:5] * (w / CROP_SIZE)
        # u = W/2 + s p_x + t_x, v = W/2 - s p_y + t_y, depth = s p_z, on [B, N, 3] at once: the
        # same float operations in the same order as per channel (negation is exact, a + b = b + a),
        # without the slices and the stack on the last axis and their gradients.
        signed = s[:, :, None] * tf.constant([1.0, -1.0, 1.0])                          # [B, 1, 3]
        shift = tf.concat([t, tf.zeros_like(t[:, :1])], axis=-1)[:, None, :]            # [B, 1, 3]
        return (signed * p + tf.constant([0.5 * w, 0.5 * w, 0.0])) + shift

    def project_to_clip(self, vertices, pose, image_size=CROP_SIZE, rotation=None):
        """(points_px [B, N, 3], clip [B, N, 4]): `project` then `to_clip` in one fused op
        (renderer.camera.crop_project; equal to them to rounding). rotation: None, or
        self.rotation(pose) when the caller has it already."""
        import tensorflow.compat.v1 as tf
        from renderer import camera
        if rotation is None:
            rotation = self.rotation(pose)
        w = float(image_size)
        s = (self.scale * w / CROP_SIZE) * tf.exp(pose[:, 5])
        t = pose[:, 3:5] * (w / CROP_SIZE)
        return camera.crop_project(vertices, rotation, self.centre, s, t, image_size,
                                   DEPTH_RANGE_PER_PIXEL * image_size)

    @staticmethod
    def to_clip(points_px, image_size=CROP_SIZE):
        """Clip-space vertices [B, N, 4] of points_px [B, N, 3] (renderer.camera.pixels_to_clip)."""
        from renderer import camera
        return camera.pixels_to_clip(points_px, image_size, DEPTH_RANGE_PER_PIXEL * image_size)
