"""Is the fine stage's self-supervised loss minimised at the true detail? On held-out records with
the GROUND-TRUTH coarse faces, every fine loss term (model/fine.py FineModel.losses, unweighted)
and the weighted totals of the paper's and train.py's weights, at displacement = a x truth.

    python bench/fine_loss_landscape.py 'HELD_OUT/*.tfrecord' [N] [SCALES]

SCALES: comma-separated factors a (default 0,0.5,1,1.5,2). Prints one row per term, one column per
a (means over N records, default 32, batch 8).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
from model import coarse, fine, losses
from model.data import make_dataset
from model.face import FaceModel
from model.face.uv_layout import UVLayout

pattern = sys.argv[1]
num = int(sys.argv[2]) if len(sys.argv) > 2 else 32
scales = [float(a) for a in (sys.argv[3] if len(sys.argv) > 3 else "0,0.5,1,1.5,2").split(",")]
size = fine.DEFAULT_RENDER_SIZE
face_model = FaceModel()
layout = UVLayout(face_model, fine.DEFAULT_UV_SIZE)
weight_sets = dict(paper=fine.PAPER_WEIGHTS, default=fine.DEFAULT_WEIGHTS)
with tf.Graph().as_default(), tf.Session() as session:
    batch = tf.data.make_one_shot_iterator(make_dataset(pattern, 8, augment=False, shuffle=False,
                                                        repeat=False)).get_next()
    cm = coarse.CoarseModel(face_model, None, render_size=size)
    co = cm.decode(batch["gt/coefficients"], batch["image"])
    fm = fine.FineModel(face_model, layout, None)
    seg = tf.image.resize(batch["segmentation"][..., None], [size, size], method="nearest")[..., 0]
    skin = losses.region_mask(seg, fine.PHOTO_REGION_LABELS)
    uv = fm.unwrap(co, co["input"])
    fetches = {}
    for a in scales:
        fo = fm.decode(co, a * batch["gt/displacement"][..., None], size)
        fo.update(uv)
        terms = fm.losses(co["input"], skin, co, fo, fine.PAPER_WEIGHTS._replace(photo_gain=1.0))
        for name, w in weight_sets.items():
            terms["total_" + name] = (w.photo * terms["photometric"] + sum(getattr(w, k) * terms[k] for k in (
                "disp", "render_disp", "disp_eyebrow_nose", "disp_normal", "smooth", "smooth_uv"))
                + w.smooth_normal * (terms["smooth_normal"] + terms["smooth_triangle_normal"])
                + w.photo_gain * terms["photo_gain"])
        terms.pop("total")
        fetches[a] = terms
    rows = []
    while len(rows) * 8 < num:
        try:
            rows.append(session.run(fetches))
        except tf.errors.OutOfRangeError:
            break
names = list(rows[0][scales[0]].keys())
print("%-24s" % "term" + "".join("%12s" % ("a=%g" % a) for a in scales))
for name in names:
    print("%-24s" % name + "".join("%12.5g" % np.mean([r[a][name] for r in rows]) for a in scales))
print("records: %d" % (len(rows) * 8))
