"""How much of the coarse surface's normal error on the detail grid is the detail itself?

    python bench/fine_detail_normal_share.py 'HELD_OUT/*.tfrecord' [N]

For N records (default 32): the normal-angle error (degrees, mean over the detail mask's texels of
the 256 UV grid, as evaluate.py's normal_error_deg.coarse_detail_grid but over all mask texels)
of the GROUND-TRUTH coarse surface (identity + expression, no displacement) against the
ground-truth detailed one (metrics.dense_surface): what a perfect coarse fit leaves for the fine
stage to remove. Compare with evaluate.py's coarse_detail_grid figure of a coarse network: the
rest of that error is the coarse misfit, which a detail layer that only adds detail cannot remove.
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
from model import metrics
from model.data import make_dataset
from model.face import FaceModel
from model.face.uv_layout import UVLayout

num = int(sys.argv[2]) if len(sys.argv) > 2 else 32
face_model = FaceModel()
layout = UVLayout(face_model, 256)
with tf.Graph().as_default(), tf.Session() as session:
    batch = tf.data.make_one_shot_iterator(make_dataset(sys.argv[1], 8, augment=False, shuffle=False,
                                                        repeat=False)).get_next()
    parts = face_model.split_coefficients(batch["gt/coefficients"])
    shape = face_model.shape(parts["identity"], parts["expression"])
    errors = []
    while len(errors) < num:
        try:
            values = session.run(dict(shape=shape, displacement=batch["gt/displacement"]))
        except tf.errors.OutOfRangeError:
            break
        for vertices, displacement in zip(values["shape"], values["displacement"]):
            _, smooth = metrics.dense_surface(layout, vertices, face_model.triangles)
            _, detailed = metrics.dense_surface(layout, vertices, face_model.triangles, displacement)
            errors.append(metrics.normal_angles(smooth, detailed).mean())
print("ground-truth coarse vs detailed surface, normal error over the detail mask: %.3f deg (%d records)"
      % (np.mean(errors), len(errors)))
