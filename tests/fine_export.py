"""A tiny fine export (the format train.py --stage=fine exports) for tests and benchmarks, made
without training: a CoarseNet (random, or restored from a coarse checkpoint) and a FineNet of a
small map size and width, saved in one checkpoint with a fine stage config beside it."""
import os

import numpy as np
import tensorflow.compat.v1 as tf

from model import coarse, fine, training


def make_fine_export(folder, face_model, uv_size=32, max_channels=8, max_displacement=1.0,
                     displacement_direction="normal", coarse_checkpoint=None, output_std=0.0, seed=0, shading_cue=False, ratio_input=False):
    """Writes folder/model.ckpt-0 and folder/stage.json; returns folder.

    Args:
      coarse_checkpoint: None (a freshly initialised coarse network: it predicts the mean face,
        frontal) or a coarse checkpoint (folder or prefix) whose variables are restored.
      output_std: standard deviation of the fine network's last kernel; 0 keeps its zero
        initialisation (the displacement is then exactly 0).
      shading_cue: the fine network reads fine.shading_cue's channels too; ratio_input: it reads
        network_input's ratio form.
    """
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    backbone = "compact"
    if coarse_checkpoint is not None:
        backbone = training.read_stage_config(coarse_checkpoint)["backbone"]
    with tf.Graph().as_default(), tf.Session() as session:
        tf.set_random_seed(seed)
        net = coarse.CoarseNet(face_model.k_id, face_model.k_exp, face_model.k_tex, backbone)
        net(tf.zeros([1, coarse.ENCODER_SIZE, coarse.ENCODER_SIZE, 3]))
        fine_net = fine.FineNet(uv_size, max_channels, max_displacement)
        fine_net(tf.zeros([1, uv_size, uv_size, fine.input_channels(shading_cue)]))
        session.run(tf.global_variables_initializer())
        if coarse_checkpoint is not None:
            prefix = (tf.train.latest_checkpoint(coarse_checkpoint) if os.path.isdir(coarse_checkpoint)
                      else coarse_checkpoint)
            tf.train.Saver(net.variables()).restore(session, prefix)
        if output_std > 0:
            kernel = [v for v in fine_net.variables() if v.op.name == fine.SCOPE + "/output/kernel"][0]
            rng = np.random.default_rng(seed)
            session.run(kernel.assign(rng.normal(0.0, output_std, kernel.shape.as_list()).astype(np.float32)))
        tf.train.Saver(list(net.variables()) + fine_net.variables(), save_relative_paths=True).save(
            session, os.path.join(folder, "model.ckpt"), global_step=0, write_meta_graph=False)
    config = coarse.stage_config(face_model, backbone)
    config.update(stage="fine", uv_size=uv_size, max_channels=max_channels, max_displacement=max_displacement,
                  displacement_direction=displacement_direction,
                  coarse_checkpoint=str(coarse_checkpoint or "fresh initialisation"), train_coarse=False, shading_cue=bool(shading_cue),
                  ratio_input=bool(ratio_input))
    training.write_stage_config(folder, config)
    return folder
