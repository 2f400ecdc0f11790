"""Does a fine checkpoint's displacement correlate with the synthetic ground truth, and how much
non-DC SH light does its coarse network predict? (A quick check, not evaluate.py's fine metrics.)

    python bench/fine_detail_check.py FINE_CHECKPOINT 'HELD_OUT/*.tfrecord' [N] [gt]

FINE_CHECKPOINT: a fine export (or training) folder with stage.json, or a checkpoint prefix in one
(a training checkpoint holds no frozen coarse network: use it with `gt`). `gt`: unwrap through the
ground-truth coarse faces (gt/coefficients) instead of the coarse network's. Prints JSON: Pearson
correlation of predicted and ground-truth maps over the detail mask (4 texels in from its edge),
all texels and visible ones, raw, both blurred (sigma 2 texels) and high-passed (minus a sigma-4
blur); RMS of both, of the error and of the error of the leave-one-out mean map
(`rms_error_template`, the guess that ignores the photo); the predicted and ground-truth light's DC and non-DC energy.
"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np
from scipy import ndimage
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
from model import coarse, fine, training
from model.data import make_dataset
from model.face import FaceModel
from model.face.uv_layout import UVLayout

export, pattern = sys.argv[1], sys.argv[2]
num = int(sys.argv[3]) if len(sys.argv) > 3 else 48
config = training.read_stage_config(export)
face_model = FaceModel()
layout = UVLayout(face_model, config["uv_size"])
batch_size = 8
with tf.Graph().as_default(), tf.Session() as session:
    batch = tf.data.make_one_shot_iterator(make_dataset(pattern, batch_size, augment=False, shuffle=False,
                                                        repeat=False)).get_next()
    net = coarse.network(face_model, config["backbone"])
    coeffs = net(coarse.resize_for_encoder(batch["image"]))
    cm = coarse.CoarseModel(face_model, net, render_size=config.get("render_size", 224))
    use_gt = len(sys.argv) > 4 and sys.argv[4] == "gt"
    co = cm.decode(batch["gt/coefficients"] if use_gt else coeffs, batch["image"])
    fm = fine.FineModel(face_model, layout, fine.FineNet(config["uv_size"], config["max_channels"],
                                                         config["max_displacement"],
                                                         config.get("displacement_highpass", 0.0)), config["displacement_direction"],
                         shading_cue=bool(config.get("shading_cue", False)),
                         ratio_input=bool(config.get("ratio_input", False)))
    fo = fm.forward(co, co["input"])
    prefix = tf.train.latest_checkpoint(export) if os.path.isdir(export) else export
    stored = dict(tf.train.list_variables(prefix))
    # A training checkpoint leaves the frozen coarse network out: enough with `gt`.
    tf.train.Saver([v for v in tf.global_variables() if v.op.name in stored]).restore(session, prefix)
    preds, gts, vis, lights, gt_lights = [], [], [], [], []
    while sum(len(p) for p in preds) < num:
        try:
            out = session.run(dict(d=fo["displacement"], v=fo["visibility"], gt=batch["gt/displacement"],
                                   c=coeffs, gc=batch["gt/coefficients"]))
        except tf.errors.OutOfRangeError:
            break
        preds.append(out["d"][..., 0]); vis.append(out["v"][..., 0]); gts.append(out["gt"])
        lights.append(out["c"][:, -27:]); gt_lights.append(out["gc"][:, -27:])
pred, gt, vis = np.concatenate(preds), np.concatenate(gts), np.concatenate(vis)
if os.environ.get("FINE_CHECK_PICTURE"):     # predicted over ground-truth maps of the first 4 faces
    from PIL import Image
    rows = [np.concatenate([pred[i], gt[i]], axis=0) for i in range(min(4, len(pred)))]
    grey = np.clip(0.5 + np.concatenate(rows, axis=1) / 0.5, 0, 1)
    Image.fromarray((grey * 255).astype(np.uint8)).save(os.environ["FINE_CHECK_PICTURE"])
mask = layout.mask & (layout.taper > 0.99)
def corr(a, b):
    a = a - a.mean(); b = b - b.mean(); return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-30))
template = (gt.sum(0, keepdims=True) - gt) / max(len(gt) - 1, 1)
res = {}
for name, sel in (("detail mask", np.broadcast_to(mask, pred.shape)), ("visible", np.broadcast_to(mask, pred.shape) & (vis > 0.5))):
    res[name] = dict(pearson=corr(pred[sel], gt[sel]),
                     pearson_blur2=corr(np.stack([ndimage.gaussian_filter(p, 2) for p in pred])[sel],
                                        np.stack([ndimage.gaussian_filter(g, 2) for g in gt])[sel]),
                     pearson_highpass4=corr(np.stack([p - ndimage.gaussian_filter(p, 4) for p in pred])[sel],
                                            np.stack([g - ndimage.gaussian_filter(g, 4) for g in gt])[sel]),
                     per_image=float(np.mean([corr(p[m], g[m]) for p, g, m in zip(pred, gt, sel)])),
                     rms_gt=float(np.sqrt((gt[sel] ** 2).mean())), rms_pred=float(np.sqrt((pred[sel] ** 2).mean())),
                     rms_error=float(np.sqrt(((pred[sel] - gt[sel]) ** 2).mean())),
                     # the best guess that ignores the photo: each face's map is the mean of the others'
                     rms_error_template=float(np.sqrt(((template[sel] - gt[sel]) ** 2).mean())))
def sh_energy(l):
    l = l.reshape(-1, 9, 3); return dict(dc=float(np.abs(l[:, 0]).mean()), non_dc_rms=float(np.sqrt((l[:, 1:] ** 2).sum((1, 2))).mean()),
                                         band1_3=float(np.sqrt((l[:, 1:4] ** 2).sum((1, 2))).mean()))
res["light_predicted"] = sh_energy(np.concatenate(lights)); res["light_gt"] = sh_energy(np.concatenate(gt_lights))
res["count"] = int(len(pred))
print(json.dumps(res, indent=1))
