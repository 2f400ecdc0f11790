"""How much photometric signal the ground-truth detail carries, against the coarse network's residual
(the fine photometric loss: 0-255 L2,1 over skin and nose at 224 px), on synthetic records.

    python bench/fine_photo_signal.py 'HELD_OUT/*.tfrecord' [COARSE_CHECKPOINT]

Prints: gt_coarse (the ground-truth coarse face without detail against the photo), gt_detailed
(with the ground-truth detail), net_coarse (the coarse network's render), detail_only (render with
minus render without the detail).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np, tensorflow.compat.v1 as tf
tf.disable_eager_execution()
from model import coarse, fine, losses
from model.data import make_dataset
from model.face import FaceModel, forward
from model.face.uv_layout import UVLayout
fm = FaceModel(); layout = UVLayout(fm, 256); S = 224
with tf.Graph().as_default(), tf.Session() as s:
    b = tf.data.make_one_shot_iterator(make_dataset(sys.argv[1], 8, augment=False, shuffle=False, repeat=False)).get_next()
    photo = tf.image.resize(b["image"], [S, S], method="area")
    seg = tf.image.resize(b["segmentation"][..., None], [S, S], method="nearest")[..., 0]
    skin = losses.region_mask(seg, fine.PHOTO_REGION_LABELS)
    gtc = forward.render_face(fm, b["gt/coefficients"], S)
    gtf = forward.render_face(fm, b["gt/coefficients"], S, displacement_map=b["gt/displacement"], layout=layout)
    net = coarse.network(fm)
    pc = coarse.CoarseModel(fm, net, render_size=S).decode(net(coarse.resize_for_encoder(b["image"])), b["image"])
    def L(r): return losses.fine_photometric_loss(photo, r["render"], r["mask"], skin)
    out = dict(gt_coarse=L(gtc), gt_detailed=L(gtf), net_coarse=L(pc),
               detail_only=losses.fine_photometric_loss(gtf["render"], gtc["render"], gtc["mask"] * gtf["mask"], skin))
    tf.train.Saver(coarse.CoarseNet.variables()).restore(s, tf.train.latest_checkpoint(sys.argv[2] if len(sys.argv) > 2 else "results/release/coarse"))
    vals = [s.run(out) for _ in range(6)]
for k in vals[0]: print("%-12s %.3f" % (k, np.mean([v[k] for v in vals])))
