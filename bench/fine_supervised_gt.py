"""Diagnostic: can the fine network predict the detail from its inputs at all? The fine network
trained SUPERVISED on the GROUND-TRUTH coarse faces (FineStage with pretrain=True, what
`train.py --fine_pretrain` runs: mean squared error to gt/displacement over the detail mask), so
no photometric loss and no coarse misfit: if this cannot beat predicting zero, the inputs
(unwrapping, resolution, degradations) or the output bound are what limits the fine stage; if it
can, the self-supervised loss is.

    python bench/fine_supervised_gt.py 'DATA/*.tfrecord' OUT_DIR STEPS [MAX_DISPLACEMENT [HIGHPASS]]

MAX_DISPLACEMENT (mm) and HIGHPASS (texels) default to FineStage's. Environment: SUP_FACES=N trains
on the first N faces only (an overfitting check: can the network fit a few maps at all?),
SUP_LR (default 1e-4), SUP_BATCH (default 4), SUP_CUE=1 adds the shading cue to the input
(fine.shading_cue), SUP_RATIO=1 the ratio form of the input and a relative cue, SUP_PRECISION=bfloat16
the U-Net's bfloat16 arithmetic (fine.PRECISIONS). Exported like FineStage, so
`bench/fine_detail_check.py OUT_DIR/network 'HELD_OUT/*.tfrecord' 48 gt` scores it.
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tensorflow.compat.v1 as tf
tf.disable_eager_execution()
from model import fine, training
from model.data import make_dataset
from model.face import FaceModel


class FewFacesStage(fine.FineStage):
    """The warm start on the first `faces` records only, cycled (SUP_FACES)."""

    def __init__(self, faces, *args, **kwargs):
        super(FewFacesStage, self).__init__(*args, **kwargs)
        self.faces = faces

    def inputs(self, start_step):
        d = make_dataset(self.data_pattern, None, augment=False, shuffle=False, repeat=False).take(self.faces).cache()
        d = d.repeat().shuffle(self.faces, seed=self.seed + start_step).batch(self.batch_size, drop_remainder=True)
        return tf.data.make_one_shot_iterator(d).get_next(), None


if __name__ == "__main__":
    max_displacement = float(sys.argv[4]) if len(sys.argv) > 4 else fine.DEFAULT_MAX_DISPLACEMENT
    highpass = float(sys.argv[5]) if len(sys.argv) > 5 else fine.DEFAULT_DISPLACEMENT_HIGHPASS
    faces = int(os.environ.get("SUP_FACES", "0"))
    arguments = (FaceModel(), sys.argv[1], int(os.environ.get("SUP_BATCH", "4")), fine.DEFAULT_WEIGHTS)
    options = dict(max_displacement=max_displacement, displacement_highpass=highpass, pretrain=True,
                   shading_cue=os.environ.get("SUP_CUE") == "1", ratio_input=os.environ.get("SUP_RATIO") == "1",
                   precision=os.environ.get("SUP_PRECISION", "float32"))
    stage = FewFacesStage(faces, *arguments, **options) if faces else fine.FineStage(*arguments, **options)
    settings = training.LoopSettings(checkpoint_dir=sys.argv[2], step=int(sys.argv[3]), save_step=100, log_step=20,
                                     image_summary_step=10 ** 6, learning_rate=float(os.environ.get("SUP_LR", "1e-4")),
                                     lr_decay_step=1000, lr_decay_rate=0.9, min_learning_rate=1e-6, gradient_clip=1.0,
                                     seed=0)
    training.train(stage, settings)
