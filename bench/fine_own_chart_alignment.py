"""Is the own-chart target where the fine network's input shows the detail? On held-out records.

    python bench/fine_own_chart_alignment.py [--data 'data/synthetic_eval/*.tfrecord'] [--num 16]
        [--checkpoint results/release/coarse/model.ckpt-5000] [--picture OUT.png]

The fine stage unwraps the photo through the coarse NETWORK's face and is supervised, with
train.py --gt_chart=own, by unwrap.own_chart_target: the true detail at the pixel each texel of
that face lands on. If target and input disagree by a texel or two the network cannot learn sharp
furrows and falls back on the template. For each record, with the coarse network's face:

  photo   the photo unwrapped minus the coarse render unwrapped (what the network reads);
  clean   the true face's render WITH its detail minus the same render without it, both unwrapped
          through the coarse network's face (the detail's own shading, no clutter);

each high-passed (minus a 3-texel Gaussian blur, as bench/fine_detail_visibility.py) and fitted by
least squares with the high-passed own-chart target's linear shading features (its derivatives,
Laplacian, itself), with the target shifted by -2..2 texels in u and v. Prints the mean R^2 of each
as a 5 x 5 table (rows: v shift, columns: u shift): aligned means the peak is in the centre.
--picture writes, for the first record: photo | clean (both +-0.06) | target (+-0.5 mm) | the photo
unwrapped.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow.compat.v1 as tf  # noqa: E402

from fine_detail_visibility import highpass, r_squared  # noqa: E402
from model import coarse, fine, inference  # noqa: E402
from model.data import make_dataset  # noqa: E402
from model.face import FaceModel, forward, unwrap  # noqa: E402
from model.face.uv_layout import UVLayout  # noqa: E402
from preprocess import schema  # noqa: E402

tf.disable_eager_execution()
SHIFTS = [(dv, du) for dv in range(-2, 3) for du in range(-2, 3)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synthetic_eval/*.tfrecord")
    parser.add_argument("--num", type=int, default=16)
    parser.add_argument("--checkpoint", default="results/release/coarse/model.ckpt-5000",
                        help="coarse checkpoint prefix (compact backbone)")
    parser.add_argument("--uv_size", type=int, default=fine.DEFAULT_UV_SIZE)
    parser.add_argument("--picture", default="")
    args = parser.parse_args()
    face_model = FaceModel()
    layout = UVLayout(face_model, args.uv_size)
    size = fine.DEFAULT_RENDER_SIZE
    batch = tf.data.make_one_shot_iterator(make_dataset(args.data, 8, augment=False, shuffle=False,
                                                        repeat=False)).get_next()
    model = fine.FineModel(face_model, layout, None)
    net = coarse.network(face_model, "compact")
    net_face = coarse.CoarseModel(face_model, net, render_size=size).decode(
        net(coarse.resize_for_encoder(batch["image"])), batch["image"])
    true_face = coarse.CoarseModel(face_model, None, render_size=size).decode(batch[schema.GT_COEFFICIENTS],
                                                                              batch["image"])
    detailed = forward.render_face(face_model, batch[schema.GT_COEFFICIENTS], size,
                                   displacement_map=batch[schema.GT_DISPLACEMENT], layout=layout)
    photo = model.unwrap(net_face, net_face["input"])
    with_detail = model.unwrap(net_face, tf.clip_by_value(detailed["render"], 0.0, 1.0))
    without = model.unwrap(net_face, tf.clip_by_value(true_face["render"], 0.0, 1.0))
    target, inside = unwrap.own_chart_target(face_model, batch[schema.GT_COEFFICIENTS],
                                             batch[schema.GT_DISPLACEMENT][..., tf.newaxis],
                                             photo["texel_positions"], size)
    fetches = dict(photo=photo["uv_photo"] - photo["uv_coarse"], clean=with_detail["uv_photo"] - without["uv_photo"],
                   unwrapped=photo["uv_photo"], visibility=photo["visibility"][..., 0], target=target[..., 0],
                   inside=inside[..., 0])
    inference.check_checkpoint_matches(args.checkpoint, net.variables(), "compact")
    saver = tf.train.Saver(net.variables())
    rows, first = [], None
    with tf.Session() as session:
        saver.restore(session, args.checkpoint)
        while len(rows) < args.num:
            try:
                values = session.run(fetches)
            except tf.errors.OutOfRangeError:
                break
            if first is None:
                first = {key: value[0] for key, value in values.items()}
            for i in range(len(values["target"])):
                where = (layout.mask & (layout.taper > 0.99) & (values["visibility"][i] > 0.5)
                         & (values["inside"][i] > 0.99))
                where[:2] = where[-2:] = False
                where[:, :2] = where[:, -2:] = False
                detail = highpass(values["target"][i])
                rows.append({name: [r_squared(highpass(values[name][i].mean(-1)), np.roll(detail, shift, axis=(0, 1)),
                                              where) for shift in SHIFTS] for name in ("photo", "clean")})
    rows = rows[:args.num]
    print("%d records; R^2 by target shift (rows: v -2..2, columns: u -2..2)" % len(rows))
    for name in ("photo", "clean"):
        table = np.mean([row[name] for row in rows], axis=0).reshape(5, 5)
        print(name)
        for line in table:
            print("  " + " ".join("%6.3f" % value for value in line))
        peak = np.unravel_index(np.argmax(table), table.shape)
        print("  peak at v %+d, u %+d" % (peak[0] - 2, peak[1] - 2))
    if args.picture:
        from PIL import Image

        def grey(x, scale):
            return np.clip(128 + 127 * x / scale, 0, 255).astype(np.uint8)
        seen = first["visibility"] > 0.5
        panels = [grey(highpass(first["photo"].mean(-1)) * seen, 0.06), grey(highpass(first["clean"].mean(-1)) * seen, 0.06),
                  grey(-highpass(first["target"]) * seen, 0.5), grey(first["unwrapped"].mean(-1) - 0.5, 0.5)]
        Image.fromarray(np.concatenate(panels, axis=1)).save(args.picture)
        print("wrote", args.picture)


if __name__ == "__main__":
    main()
