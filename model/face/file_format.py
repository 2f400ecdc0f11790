"""The face model file (`resources/*.npz`): its keys, storage types, the one writer and the reader.

One format for every model, the embedded default and a converted Basel Face Model alike
(shared/DESIGN.md, resources/README.md):
  mean_shape [N, 3] mm, id_basis / exp_basis / tex_basis [3N, K] (coefficients in standard
  deviations), mean_albedo [N, 3] in [0, 1], triangles [T, 3] int32 0-based, uv [N, 2] in [0, 1],
  uv_mask uint8 [S, S] (1 inside the face chart, row 0 at v = 1), landmarks68 [68] vertex ids,
  mirror [N] vertex ids, region_<name> bool [N] for REGION_NAMES (other region_* allowed),
  meta (a JSON string: source, licence, build parameters).
The writer and the reader check the same REQUIRED_KEYS, so a file missing one is never written.
"""
import hashlib
import os

import numpy as np

from model import output_files

REGION_NAMES = ("skin", "eyes", "brows", "nose", "lips")
REQUIRED_KEYS = ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "tex_basis", "triangles",
                 "uv", "uv_mask", "landmarks68", "mirror", "meta") + tuple("region_" + r for r in REGION_NAMES)
# Storage types of the file format; other keys are stored as given.
FILE_DTYPES = dict(mean_shape=np.float32, id_basis=np.float32, exp_basis=np.float32,
                   mean_albedo=np.float32, tex_basis=np.float32, uv=np.float32, uv_mask=np.uint8,
                   triangles=np.int32, landmarks68=np.int32, mirror=np.int32)


def missing_keys(names):
    """The REQUIRED_KEYS that are not among `names`, in REQUIRED_KEYS order."""
    names = set(names)
    return [key for key in REQUIRED_KEYS if key not in names]


def save_face_model(path, arrays):
    """Writes a face model file: `arrays` (name -> array, `meta` a JSON string array) with the
    keys of FILE_DTYPES cast to their storage types.

    Raises ValueError naming the missing keys (nothing is written) when a required key is absent.
    Written through model.output_files: a reader (a training run loading the model during a
    rebuild) sees the old file or the new one, never a half-written zip, and on an error the old
    file is left as it was.
    """
    missing = missing_keys(arrays)
    if missing:
        raise ValueError("face model for %s misses %s; nothing written" % (path, ", ".join(missing)))
    arrays = {name: (np.asarray(value, FILE_DTYPES[name]) if name in FILE_DTYPES else value)
              for name, value in arrays.items()}
    with output_files.replacing(path) as f:
        np.savez_compressed(f, **arrays)


def load_face_model_arrays(path):
    """All arrays of a face model file: dict name -> array.

    Raises FileNotFoundError when there is no file, ValueError naming the file and the keys it misses.
    """
    if not os.path.exists(path):
        raise FileNotFoundError("face model file %s does not exist" % path)
    with np.load(path) as data:
        missing = missing_keys(data.files)
        if missing:
            raise ValueError("face model file %s misses %s" % (path, ", ".join(missing)))
        return {k: data[k] for k in data.files}


def file_sha256(path):
    """Hex SHA-256 of a file's bytes: how a checkpoint names the face model it was trained with."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
