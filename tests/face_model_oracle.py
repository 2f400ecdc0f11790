"""NumPy twins of model.face.FaceModel's graph ops: the tests' oracle (float64, no TensorFlow).

Each function takes the FaceModel first and follows the graph op of the same name.
"""
import numpy as np

from model.face.framing import CROP_SIZE


def euler_rotation(angles):
    """Twin of renderer.camera.euler_rotation: [B, 3] (pitch, yaw, roll) -> [B, 3, 3]."""
    cp, cy, cr = np.cos(angles).T
    sp, sy, sr = np.sin(angles).T
    one, zero = np.ones_like(cp), np.zeros_like(cp)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def shape(fm, identity, expression):
    identity, expression = np.atleast_2d(identity), np.atleast_2d(expression)
    offsets = identity @ fm.id_basis.T + expression @ fm.exp_basis.T
    return fm.mean_shape[np.newaxis] + offsets.reshape(-1, fm.num_vertices, 3)


def albedo(fm, albedo_coeffs):
    offsets = (np.atleast_2d(albedo_coeffs) @ fm.tex_basis.T).reshape(-1, fm.num_vertices, 3)
    return np.clip(fm.mean_albedo[np.newaxis] + offsets, 0.0, 1.0)


def project(fm, vertices, pose, image_size=CROP_SIZE):
    pose = np.atleast_2d(pose)
    p = (vertices - fm.frame_centre) @ np.swapaxes(euler_rotation(pose[:, :3]), 1, 2)
    w = float(image_size)
    s = (fm.frame_scale * w / CROP_SIZE) * np.exp(pose[:, 5])[:, None]
    t = pose[:, 3:5] * (w / CROP_SIZE)
    u = 0.5 * w + s * p[..., 0] + t[:, 0:1]
    v = 0.5 * w - s * p[..., 1] + t[:, 1:2]
    return np.stack([u, v, s * p[..., 2]], axis=-1)


def landmarks(fm, points_px):
    """The 68 landmarks with the jaw sliding (model/face/contour.py), point by point in loops."""
    result = np.array(points_px[:, fm.landmarks68, :2], dtype=np.float64)
    for b in range(len(points_px)):
        lateral = points_px[b, fm.landmarks68[16], :2] - points_px[b, fm.landmarks68[0], :2]
        for k in range(17):
            side = -1.0 if k < 8 else (1.0 if k > 8 else 0.0)
            best, best_score = None, -np.inf
            for vertex in fm.contour_candidates[k]:
                score = side * float(np.dot(points_px[b, vertex, :2], lateral))
                if score > best_score:
                    best, best_score = vertex, score
            result[b, k] = points_px[b, best, :2]
    return result


def normals(fm, vertices):
    vertices = np.asarray(vertices, dtype=np.float64)
    t = fm.triangles
    face = np.cross(vertices[:, t[:, 1]] - vertices[:, t[:, 0]],
                    vertices[:, t[:, 2]] - vertices[:, t[:, 0]])
    result = np.zeros_like(vertices)
    for k in range(3):
        for b in range(len(vertices)):
            np.add.at(result[b], t[:, k], face[b])
    return result / np.maximum(np.linalg.norm(result, axis=-1, keepdims=True), 1e-12)
