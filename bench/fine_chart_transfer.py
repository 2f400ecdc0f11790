"""Diagnostic: how well could a fine network score in the true UV chart, if it read the photo perfectly,
when its input is unwrapped through the coarse network's face instead of the true one?

    python bench/fine_chart_transfer.py [--checkpoint results/release/coarse] [--data 'data/synthetic_eval/*.tfrecord']
                                        [--num 48] [--uv_size 256] [--render_size 300]

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
  through_net the transfer through the coarse network's face: the best any photo reader can score
              in the true chart with that coarse face

plus the image distance (pixels of the render) between where a texel lands on the true face and on
the coarse network's face. Prints JSON.
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

from model import coarse, fine, training  # noqa: E402
from model.data import make_dataset  # noqa: E402
from model.face import FaceModel, unwrap  # noqa: E402
from model.face.uv_layout import UVLayout  # noqa: E402

tf.disable_eager_execution()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "results", "release", "coarse"))
    parser.add_argument("--data", default=os.path.join(REPO, "data", "synthetic_eval", "*.tfrecord"))
    parser.add_argument("--num", type=int, default=48)
    parser.add_argument("--uv_size", type=int, default=fine.DEFAULT_UV_SIZE)
    parser.add_argument("--render_size", type=int, default=300)
    args = parser.parse_args()
    config = training.read_stage_config(args.checkpoint)
    face_model = FaceModel()
    layout = UVLayout(face_model, args.uv_size)
    with tf.Graph().as_default(), tf.Session() as session:
        batch = tf.data.make_one_shot_iterator(make_dataset(args.data, 8, augment=False, shuffle=False,
                                                            repeat=False)).get_next()
        net = coarse.network(face_model, config["backbone"])
        coeffs = net(coarse.resize_for_encoder(batch["image"]))
        model = coarse.CoarseModel(face_model, net, render_size=args.render_size)
        truth = model.decode(batch["gt/coefficients"], batch["image"])
        predicted = model.decode(coeffs, batch["image"])
        depth_scale = fine.DEPTH_RANGE_PER_PIXEL * args.render_size
        image = unwrap.chart_map_to_image(face_model, layout, batch["gt/displacement"][..., None],
                                          truth["rasterized"])
        maps, where = {}, {}
        for name, outputs in (("through_gt", truth), ("through_net", predicted)):
            positions, visibility = unwrap.texel_visibility(layout, face_model.triangles, outputs["points_px"],
                                                            outputs["rasterized"], depth_scale)
            maps[name] = unwrap.unwrap_to_uv(layout, image, positions, visibility, tf.zeros_like(visibility))[..., 0]
            where[name] = (positions, visibility[..., 0])
        shift = tf.norm(where["through_net"][0] - where["through_gt"][0], axis=-1)
        tf.train.Saver(net.variables()).restore(session, tf.train.latest_checkpoint(args.checkpoint))
        rows = []
        while sum(len(r["gt"]) for r in rows) < args.num:
            try:
                rows.append(session.run(dict(gt=batch["gt/displacement"], shift=shift,
                                             visible_net=where["through_net"][1], visible_gt=where["through_gt"][1],
                                             positions_gt=where["through_gt"][0],
                                             **maps)))
            except tf.errors.OutOfRangeError:
                break
    data = {key: np.concatenate([r[key] for r in rows])[:args.num] for key in rows[0]}
    gt = data["gt"]
    template = (gt.sum(0, keepdims=True) - gt) / max(len(gt) - 1, 1)
    inner = np.broadcast_to(layout.mask & (layout.taper > 0.99), gt.shape)
    both_visible = inner & (data["visible_net"] > 0.5) & (data["visible_gt"] > 0.5)
    result = {"count": int(len(gt)), "checkpoint": args.checkpoint}
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
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
