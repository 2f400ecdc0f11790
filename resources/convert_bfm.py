"""Converts the Basel Face Model 2009 (+ Guo et al.'s expression basis) to the project's npz format.

Inputs, in one folder laid out as Deep3DFaceRecon's `BFM/` folder:
  01_MorphableModel.mat  BFM 2009 (from the University of Basel, under its licence):
                         shapeMU [3M,1], shapePC [3M,K], shapeEV [K,1], texMU, texPC, texEV,
                         coordinates in micrometres, colours in 0..255, xyz interleaved per vertex.
  Exp_Pca.bin            expression basis (Guo et al., as Deep3DFaceRecon ships it): int32 K_e,
                         float32 mean [3E], float32 components [K_e, 3E] (row per component),
                         little endian; E = 53215 for the real file, inferred from the size here.
  std_exp.txt            K_e standard deviations of the expression components.
  BFM_exp_idx.mat        trimIndex [E]: 1-based BFM vertex of each expression-model vertex.
  BFM_front_idx.mat      idx [N]: 1-based expression-model vertex of each front-face vertex.
  facemodel_info.mat     tri [T,3] (1-based, front-face vertices), keypoints [68] (1-based).

The front-face crop (N = 35709 for the real files) becomes the model. Bases are scaled by their
standard deviations (coefficients in standard deviations) and converted to millimetres; the
albedo to [0, 1]. Triangles are flipped if needed so that they are counter-clockwise seen from
the front. UVs come from the same flattening as the default model
(model/face/builder/uv_chart.py), the mirror map from
nearest neighbours of the x-mirrored mean shape (BFM is not exactly symmetric, so the map need
not be an involution), the regions from the landmarks.

Run: python resources/convert_bfm.py --bfm-dir path/to/BFM --out resources/bfm2009_front.npz
"""
import argparse
import json
import os
import sys

import numpy as np
import scipy.io
import scipy.spatial

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from model.face import save_face_model  # noqa: E402
from model.face.builder.regions import nose_and_brows, point_in_polygon  # noqa: E402
from model.face.builder.topology import boundary_loops  # noqa: E402
from model.face.builder.uv_chart import UV_MASK_SIZE, flatten_face, uv_face_mask  # noqa: E402
from model.face.landmarks68 import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE  # noqa: E402

MICROMETRES_PER_MM = 1e3
REQUIRED_FILES = ("01_MorphableModel.mat", "Exp_Pca.bin", "std_exp.txt", "BFM_exp_idx.mat",
                  "BFM_front_idx.mat", "facemodel_info.mat")


def read_expression_basis(path):
    """Reads Exp_Pca.bin: returns (mean [3E], components [3E, K_e]) float32, E from the file size."""
    raw = np.fromfile(path, dtype="<f4")
    if raw.size < 2:
        raise ValueError("%s is too short for an expression basis" % path)
    num_components = int(raw[:1].view("<i4")[0])
    floats = raw.size - 1
    if num_components <= 0 or floats % (3 * (num_components + 1)) != 0:
        raise ValueError("%s: %d floats do not hold a mean and %d components"
                         % (path, floats, num_components))
    n3 = floats // (num_components + 1)
    mean = raw[1:1 + n3]
    components = raw[1 + n3:].reshape(num_components, n3).T
    return mean, components


def load_mat(path, *keys):
    data = scipy.io.loadmat(path)
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError("%s misses %s" % (path, ", ".join(missing)))
    return [data[k] for k in keys]


def per_vertex(flat, index):
    """Rows of an interleaved [3M, ...] array for the vertices `index`: -> [3 len(index), ...]."""
    blocks = flat.reshape(-1, 3, *flat.shape[1:])[index]
    return blocks.reshape(-1, *flat.shape[1:])


def landmark_regions(mean_shape, landmarks68):
    """Region masks of a model without labels (BFM): polygons and bands through the landmarks."""
    xy = mean_shape[:, :2]
    lm = mean_shape[landmarks68, :2]

    def grown(points, factor):
        c = points.mean(axis=0)
        return c + factor * (points - c)

    eyes = (point_in_polygon(xy, grown(lm[RIGHT_EYE], 1.15))
            | point_in_polygon(xy, grown(lm[LEFT_EYE], 1.15)))
    mouth = point_in_polygon(xy, lm[INNER_LIPS])
    lips = point_in_polygon(xy, grown(lm[OUTER_LIPS], 1.05)) & ~mouth
    nose, brows = nose_and_brows(xy, lm)
    nose &= ~lips & ~eyes
    brows &= ~nose & ~eyes
    skin = ~(eyes | mouth | lips | nose | brows)
    return dict(skin=skin, eyes=eyes, brows=brows, nose=nose, lips=lips, mouth_interior=mouth)


def mirror_by_nearest(mean_shape):
    """Index of the nearest vertex to each vertex's x-mirror (about the mean x)."""
    mirrored = mean_shape * np.array([-1.0, 1.0, 1.0])
    mirrored[:, 0] += 2 * mean_shape[:, 0].mean()
    return scipy.spatial.cKDTree(mean_shape).query(mirrored)[1]


def outward_triangles(vertices, triangles):
    """Triangles flipped if needed so (v1-v0)x(v2-v0) points away from the centroid (outward)."""
    face = np.cross(vertices[triangles[:, 1]] - vertices[triangles[:, 0]],
                    vertices[triangles[:, 2]] - vertices[triangles[:, 0]])
    centre = vertices[triangles].mean(axis=1) - vertices.mean(axis=0)
    if np.sum(face * centre) < 0:
        return triangles[:, ::-1].copy()
    return triangles


def convert(bfm_dir, k_id=80, k_exp=64, k_tex=80):
    """Returns the dict of arrays of the npz format (see shared/DESIGN.md) from a BFM folder."""
    missing = [f for f in REQUIRED_FILES if not os.path.exists(os.path.join(bfm_dir, f))]
    if missing:
        raise FileNotFoundError("--bfm-dir %s misses %s" % (bfm_dir, ", ".join(missing)))
    path = lambda name: os.path.join(bfm_dir, name)  # noqa: E731
    shape_mu, shape_pc, shape_ev, tex_mu, tex_pc, tex_ev = load_mat(
        path("01_MorphableModel.mat"), "shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV")
    _, exp_pc = read_expression_basis(path("Exp_Pca.bin"))
    exp_std = np.loadtxt(path("std_exp.txt")).ravel()
    if len(exp_std) != exp_pc.shape[1]:
        raise ValueError("std_exp.txt has %d values, Exp_Pca.bin %d components"
                         % (len(exp_std), exp_pc.shape[1]))
    (trim_index,) = load_mat(path("BFM_exp_idx.mat"), "trimIndex")
    (front_index,) = load_mat(path("BFM_front_idx.mat"), "idx")
    tri, keypoints = load_mat(path("facemodel_info.mat"), "tri", "keypoints")
    front_in_exp = front_index.ravel().astype(np.int64) - 1
    front_in_bfm = trim_index.ravel().astype(np.int64)[front_in_exp] - 1
    k_id, k_exp, k_tex = min(k_id, shape_pc.shape[1]), min(k_exp, exp_pc.shape[1]), min(k_tex, tex_pc.shape[1])

    mean_shape = per_vertex(shape_mu.ravel(), front_in_bfm).reshape(-1, 3) / MICROMETRES_PER_MM
    id_basis = per_vertex(shape_pc[:, :k_id] * shape_ev.ravel()[:k_id], front_in_bfm) / MICROMETRES_PER_MM
    exp_basis = per_vertex(exp_pc[:, :k_exp] * exp_std[:k_exp], front_in_exp) / MICROMETRES_PER_MM
    mean_albedo = per_vertex(tex_mu.ravel(), front_in_bfm).reshape(-1, 3) / 255.0
    tex_basis = per_vertex(tex_pc[:, :k_tex] * tex_ev.ravel()[:k_tex], front_in_bfm) / 255.0

    triangles = outward_triangles(mean_shape, tri.astype(np.int64) - 1)
    landmarks68 = keypoints.ravel().astype(np.int64) - 1
    loops = boundary_loops(triangles)
    outer = max(loops, key=len)
    mirror = mirror_by_nearest(mean_shape)
    uv = flatten_face(mean_shape, triangles, outer, mirror)
    meta = dict(
        name="bfm2009-front",
        source="Basel Face Model 2009 (01_MorphableModel.mat), expression basis of Guo et al. "
               "(Exp_Pca.bin), front-face crop, triangles and landmarks of Deep3DFaceRecon",
        licence="Basel Face Model licence (non-commercial research; do not redistribute)",
        units="millimetres; x right, y up, z towards the viewer; triangles counter-clockwise "
              "seen from the front",
        build=dict(script="resources/convert_bfm.py", k_id=k_id, k_exp=k_exp, k_tex=k_tex),
    )
    arrays = dict(
        mean_shape=mean_shape,
        id_basis=id_basis,
        exp_basis=exp_basis,
        mean_albedo=mean_albedo,
        tex_basis=tex_basis,
        triangles=triangles,
        uv=uv,
        uv_mask=uv_face_mask(uv, outer, UV_MASK_SIZE),
        landmarks68=landmarks68,
        mirror=mirror,
        meta=np.array(json.dumps(meta)),
    )
    for name, mask in landmark_regions(mean_shape, landmarks68).items():
        arrays["region_" + name] = mask
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bfm-dir", required=True, help="folder with the BFM files (see above)")
    parser.add_argument("--out", required=True, help="npz file to write")
    parser.add_argument("--k-id", type=int, default=80, help="identity components kept")
    parser.add_argument("--k-exp", type=int, default=64, help="expression components kept")
    parser.add_argument("--k-tex", type=int, default=80, help="albedo components kept")
    args = parser.parse_args(argv)
    arrays = convert(args.bfm_dir, args.k_id, args.k_exp, args.k_tex)
    save_face_model(args.out, arrays)
    print("wrote %s: %d vertices, %d triangles, k_id %d, k_exp %d, k_tex %d"
          % (args.out, len(arrays["mean_shape"]), len(arrays["triangles"]), arrays["id_basis"].shape[1],
             arrays["exp_basis"].shape[1], arrays["tex_basis"].shape[1]))


if __name__ == "__main__":
    main()
