"""Diagnostic: the fine stage trained on the GROUND-TRUTH coarse faces (gt/coefficients) instead of
the coarse network's, on synthetic data (no augmentation), exported as FineStage does, so that
bench/fine_detail_check.py (with `gt`) scores it: what the fine stage learns when the coarse face
is right.

    python bench/fine_gt_coarse_train.py 'DATA/*.tfrecord' OUT_DIR STEPS [paper|default [MAX_DISPLACEMENT [HIGHPASS [NAME=WEIGHT,...]]]]

The fourth argument picks the loss weights: fine.PAPER_WEIGHTS (the default of this script) or
fine.DEFAULT_WEIGHTS (train.py's: the gain-normalised photometric term); the bound (mm) and the
band limit (texels) default to FineStage's; NAME=WEIGHT pairs replace weights (fine.FineWeights
fields, e.g. disp=10; gt_disp=1e5 adds the synthetic detail supervision as run_train.sh does).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
from model import coarse, fine, losses, training
from model.data import make_dataset
from model.face import FaceModel

class GtCoarseStage(fine.FineStage):
    def inputs(self, start_step):
        d = make_dataset(self.data_pattern, self.batch_size, augment=False, shuffle=True, seed=self.seed + start_step)
        return tf.data.make_one_shot_iterator(d).get_next(), None
    def tower(self, batch):
        images = batch["image"]
        net = self._coarse_net(); net(coarse.resize_for_encoder(images))   # built so that the export holds it
        self._coarse_variables = net.variables()
        cm = coarse.CoarseModel(self.face_model, None, render_size=self.render_size)
        co = cm.decode(batch["gt/coefficients"], images)
        fo = self._fine_model.forward(co, co["input"])
        seg = tf.image.resize(batch["segmentation"][..., None], [self.render_size] * 2, method="nearest")[..., 0]
        # Unaugmented records: nothing is flipped, every sample has its ground truth (the gt_disp
        # term uses it when its weight is > 0, e.g. gt_disp=1e5 as run_train.sh).
        count = tf.shape(images)[0]
        ground_truth = (batch["gt/displacement"], tf.zeros([count], tf.bool), tf.ones([count]))
        terms = self._fine_model.losses(co["input"], losses.region_mask(seg, fine.PHOTO_REGION_LABELS), co, fo,
                                        self.weights, ground_truth=ground_truth)
        return terms, None

weights = fine.DEFAULT_WEIGHTS if len(sys.argv) > 4 and sys.argv[4] == "default" else fine.PAPER_WEIGHTS
max_displacement = float(sys.argv[5]) if len(sys.argv) > 5 else fine.DEFAULT_MAX_DISPLACEMENT
highpass = float(sys.argv[6]) if len(sys.argv) > 6 else fine.DEFAULT_DISPLACEMENT_HIGHPASS
if len(sys.argv) > 7:
    weights = weights._replace(**{k: float(v) for k, v in (pair.split("=") for pair in sys.argv[7].split(","))})
print("weights:", weights)
stage = GtCoarseStage(FaceModel(), sys.argv[1], 4, weights, max_displacement=max_displacement,
                      displacement_highpass=highpass)
settings = training.LoopSettings(checkpoint_dir=sys.argv[2], step=int(sys.argv[3]), save_step=100, log_step=20,
                                 image_summary_step=10 ** 6, learning_rate=1e-4, lr_decay_step=1000, lr_decay_rate=0.9,
                                 min_learning_rate=1e-6, gradient_clip=1.0, seed=0)
training.train(stage, settings)
