"""Diagnostic: how well could a fine network score in the true UV chart, if it read the photo perfectly,
when its input is unwrapped through the coarse network's face instead of the true one?

    python bench/fine_chart_transfer.py [--checkpoint results/release/coarse] [--data 'data/synthetic_eval/*.tfrecord']
                                        [--num 48] [--uv_size 256] [--render_size 300] [--fit_steps 0]

The synthetic ground-truth displacement map lives in the chart of the TRUE face (gt/coefficients).
The fine network sees the photo unwrapped through the COARSE face it is given; where that face is
off by a few millimetres, a wrinkle the photo shows lands on other texels of its chart than in the
true one. This script builds the map that a perfect reader of the photo would predict in the coarse
face's chart: the true displacement carried into the image (each pixel the true face covers takes
the map at the chart position the true surface has there), then unwrapped through the coarse face
exactly as the fine stage unwraps the photo (model/face/unwrap.py: bilinear at each texel's projected
position; hidden texels from their visible mirror, else 0). Scored against the ground-truth map over
the detail mask (4 texels in from its edge), all texels and the coarse face's visible ones:

  zero        predicting no detail (the RMS of the ground truth)
  template    each face's map the mean of the other faces' maps (ignores the photo)
  through_gt  the transfer through the TRUE face: the resampling floor (should be near 0)
  through_net the transfer through the coarse network's face (after --fit_steps of fitting): the best any photo reader can score
              in the true chart with that coarse face

plus the image distance (pixels of the render) between where a texel lands on the true face and on
the coarse network's face. Prints JSON; --picture PATH also writes the maps of the first 4 faces.
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from model import coarse, fine, inference, training  # noqa: E402
from model.data import make_dataset  # noqa: E402
from model.face import FaceModel, unwrap  # noqa: E402
from model.face.uv_layout import UVLayout  # noqa: E402

tf.disable_eager_execution()


def read_records(pattern, num):
    """The first `num` held-out records (unaugmented) as numpy arrays."""
    with tf.Graph().as_default(), tf.Session() as session:
        batch = tf.data.make_one_shot_iterator(make_dataset(pattern, 8, augment=False, shuffle=False,
                                                            repeat=False)).get_next()
        keys = ("image", "landmarks", "segmentation", "gt/coefficients", "gt/displacement")
        rows = []
        while sum(len(r["image"]) for r in rows) < num:
            try:
                rows.append(session.run({key: batch[key] for key in keys}))
            except tf.errors.OutOfRangeError:
                break
    return {key: np.concatenate([r[key] for r in rows])[:num] for key in rows[0]}


def coarse_coefficients(checkpoint, face_model, backbone, records, fit_steps):
    """The coarse reconstruction's coefficients of each record, as test.py makes them (the network,
    then fit_steps of test-time fitting against the records' landmarks and segmentation)."""
    reconstructor = inference.CoarseReconstructor(inference.resolve_checkpoint(checkpoint), face_model, backbone,
                                                  fit_steps)
    crops = np.round(records["image"] * 255.0).astype(np.uint8)
    return np.stack([reconstructor(crop, landmarks, segmentation)["coeffs"] for crop, landmarks, segmentation
                     in zip(crops, records["landmarks"], records["segmentation"])])


def transfer(face_model, layout, records, coeffs, render_size):
    """Per record: the ground-truth map carried through the true face into the image and unwrapped
    through the true face (through_gt) and through the face of `coeffs` (through_net), visibilities,
    the shift between the two faces' texel positions (render pixels), the true face's positions."""
    with tf.Graph().as_default(), tf.Session() as session:
        images = tf.constant(records["image"])
        model = coarse.CoarseModel(face_model, None, render_size=render_size)
        faces = dict(through_gt=model.decode(tf.constant(records["gt/coefficients"]), images),
                     through_net=model.decode(tf.constant(coeffs.astype(np.float32)), images))
        image = unwrap.chart_map_to_image(face_model, tf.constant(records["gt/displacement"][..., None]),
                                          faces["through_gt"]["rasterized"])
        depth_scale = fine.DEPTH_RANGE_PER_PIXEL * render_size
        fetches, positions = {}, {}
        for name, outputs in faces.items():
            positions[name], visibility = unwrap.texel_visibility(
                layout, face_model.triangles, outputs["points_px"], outputs["rasterized"], depth_scale)
            fetches[name] = unwrap.unwrap_to_uv(layout, image, positions[name], visibility,
                                                tf.zeros_like(visibility))[..., 0]
            fetches["visible_" + name] = visibility[..., 0]
        fetches["shift"] = tf.norm(positions["through_net"] - positions["through_gt"], axis=-1)
        fetches["positions_gt"] = positions["through_gt"]
        return session.run(fetches)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "results", "release", "coarse"))
    parser.add_argument("--data", default=os.path.join(REPO, "data", "synthetic_eval", "*.tfrecord"))
    parser.add_argument("--num", type=int, default=48)
    parser.add_argument("--uv_size", type=int, default=fine.DEFAULT_UV_SIZE)
    parser.add_argument("--render_size", type=int, default=300)
    parser.add_argument("--picture", default="",
                        help="also write a PNG: per face (rows), the true map | through the true face | through the coarse face")
    parser.add_argument("--fit_steps", type=int, default=0,
                        help="test-time fitting steps after the network (model/fitting.py; 0: the network alone)")
    args = parser.parse_args()
    if args.num <= 0 or args.fit_steps < 0:
        sys.exit("fine_chart_transfer.py: --num must be positive and --fit_steps >= 0")
    config = training.read_stage_config(args.checkpoint)
    face_model = FaceModel()
    layout = UVLayout(face_model, args.uv_size)
    records = read_records(args.data, args.num)
    coeffs = coarse_coefficients(args.checkpoint, face_model, config["backbone"], records, args.fit_steps)
    data = {}
    for start in range(0, len(coeffs), 8):
        part = transfer(face_model, layout, {k: v[start:start + 8] for k, v in records.items()},
                        coeffs[start:start + 8], args.render_size)
        for key, value in part.items():
            data.setdefault(key, []).append(value)
    data = {key: np.concatenate(value) for key, value in data.items()}
    gt = records["gt/displacement"]
    template = (gt.sum(0, keepdims=True) - gt) / max(len(gt) - 1, 1)
    inner = np.broadcast_to(layout.mask & (layout.taper > 0.99), gt.shape)
    both_visible = inner & (data["visible_through_net"] > 0.5) & (data["visible_through_gt"] > 0.5)
    result = {"count": int(len(gt)), "checkpoint": args.checkpoint, "fit_steps": args.fit_steps}
    for region, sel in (("detail mask", inner), ("visible on both faces", both_visible)):
        def rms(x):
            return float(np.sqrt(np.mean(x[sel] ** 2)))
        result[region] = dict(zero=rms(gt), template=rms(template - gt), through_gt=rms(data["through_gt"] - gt),
                              through_net=rms(data["through_net"] - gt))
    shift_px = data["shift"][both_visible]
    result["texel_shift_px"] = dict(mean=float(shift_px.mean()), median=float(np.median(shift_px)),
                                    p90=float(np.percentile(shift_px, 90)))
    # The scale: render pixels between horizontally adjacent texels of the true face.
    step = np.linalg.norm(np.diff(data["positions_gt"], axis=2), axis=-1)
    result["texel_spacing_px"] = float(np.median(step[inner[:, :, 1:] & inner[:, :, :-1]]))
    if args.picture:
        from PIL import Image
        rows = [np.concatenate([gt[i], data["through_gt"][i], data["through_net"][i]], axis=1) for i in range(min(4, len(gt)))]
        grey = np.clip(0.5 + np.concatenate(rows, axis=0) / 0.3, 0.0, 1.0)      # +-0.15 mm to black / white
        Image.fromarray((grey * 255).astype(np.uint8)).save(args.picture)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
