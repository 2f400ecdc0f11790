"""How visible is the synthetic detail in the synthetic photos? Through the TRUE face, on held-out records.

    python bench/fine_detail_visibility.py [--data 'data/synthetic_eval/*.tfrecord'] [--num 32]

For each record the photo and the ground-truth coarse render (no detail) are unwrapped through the
true face (model/face/unwrap.py, as the fine stage unwraps), their difference high-passed (minus a
Gaussian blur of 3 texels) and fitted, by least squares over the visible detail-mask texels, with
the high-passed ground-truth map's linear shading features (its u and v derivatives, Laplacian, the
map itself). R^2 of that fit is the share of the input's fine-scale content that the detail
explains linearly:

  photo        the record's image (appearance options, degradations): what the fine network reads
  detail_only  the render WITH the ground-truth detail minus the render without it, unwrapped the
               same way (no albedo texture, noise or blur): the ceiling of the same fit

Prints JSON: the mean R^2 of each, and the mean RMS (0-1 colour) of the two high-passed inputs.
"""
import argparse
import json
import os
import sys

import numpy as np
import scipy.ndimage as ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow.compat.v1 as tf  # noqa: E402

from model import coarse, fine  # noqa: E402
from model.data import make_dataset  # noqa: E402
from model.face import FaceModel, forward  # noqa: E402
from model.face.uv_layout import UVLayout  # noqa: E402
from preprocess import schema  # noqa: E402

tf.disable_eager_execution()
HIGHPASS_TEXELS = 3.0


def highpass(x):
    return x - ndimage.gaussian_filter(x, HIGHPASS_TEXELS)


def r_squared(values, detail, where):
    """R^2 of values[where] fitted with detail's derivatives, Laplacian and itself (plus a constant)."""
    gy, gx = np.gradient(detail)
    features = np.stack([gx[where], gy[where], ndimage.laplace(detail)[where], detail[where],
                         np.ones(where.sum())], axis=1)
    coefficients, *_ = np.linalg.lstsq(features, values[where], rcond=None)
    residual = values[where] - features @ coefficients
    return float(1.0 - residual.var() / max(values[where].var(), 1e-20))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synthetic_eval/*.tfrecord")
    parser.add_argument("--num", type=int, default=32)
    parser.add_argument("--uv_size", type=int, default=fine.DEFAULT_UV_SIZE)
    args = parser.parse_args()
    face_model = FaceModel()
    layout = UVLayout(face_model, args.uv_size)
    size = fine.DEFAULT_RENDER_SIZE
    batch = tf.data.make_one_shot_iterator(make_dataset(args.data, 8, augment=False, shuffle=False,
                                                        repeat=False)).get_next()
    model = fine.FineModel(face_model, layout, None)
    true_coarse = coarse.CoarseModel(face_model, None, render_size=size).decode(batch[schema.GT_COEFFICIENTS],
                                                                                 batch["image"])
    detailed = forward.render_face(face_model, batch[schema.GT_COEFFICIENTS], size,
                                   displacement_map=batch[schema.GT_DISPLACEMENT], layout=layout)
    photo = model.unwrap(true_coarse, true_coarse["input"])
    clean = model.unwrap(true_coarse, tf.clip_by_value(detailed["render"], 0.0, 1.0))
    fetches = dict(photo=photo["uv_photo"] - photo["uv_coarse"], clean=clean["uv_photo"] - clean["uv_coarse"],
                   visibility=photo["visibility"], truth=batch[schema.GT_DISPLACEMENT])
    rows = []
    with tf.Session() as session:
        while len(rows) < args.num:
            try:
                values = session.run(fetches)
            except tf.errors.OutOfRangeError:
                break
            for i in range(len(values["truth"])):
                where = layout.mask & (layout.taper > 0.99) & (values["visibility"][i, ..., 0] > 0.5)
                detail = highpass(values["truth"][i])
                photo_hp, clean_hp = highpass(values["photo"][i].mean(-1)), highpass(values["clean"][i].mean(-1))
                rows.append(dict(photo=r_squared(photo_hp, detail, where), detail_only=r_squared(clean_hp, detail, where),
                                 photo_rms=float(np.sqrt(np.mean(photo_hp[where] ** 2))),
                                 detail_only_rms=float(np.sqrt(np.mean(clean_hp[where] ** 2)))))
    rows = rows[:args.num]
    print(json.dumps({"count": len(rows), **{key: float(np.mean([r[key] for r in rows])) for key in rows[0]}}, indent=1))


if __name__ == "__main__":
    main()
