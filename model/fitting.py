"""Test-time fitting (analysis by synthesis): the coefficients of given crops refined by the coarse losses.

From starting coefficients (the network's prediction; zeros are the mean face, frontal), Adam
minimises, for each crop on its own, the coarse stage's training objective (`CoarseModel.losses`:
photometric over the face region of the segmentation, weighted landmark distance to the detected
landmarks, Gaussian priors on identity, expression and albedo) with the coefficients themselves as
the variables. Graph mode, through the project's rasterizer.

Each crop's objective is its own and Adam's update is element-wise, so fitting a batch of B crops
gives what fitting each one alone would (the batch only shares the graph and the session).

The variable is a step `delta` in "optimiser units": coefficients = initial + delta * unit, where
the unit is 1 except for the pose translations (POSE_OUTPUT_SCALE: ten crop pixels), so that one
learning rate moves every coefficient by a comparable amount per step (at the default: 0.03
standard deviations of the morphable model, 1.7 degrees, 0.3 pixels). Coefficient groups named in
`fixed_parts` keep their starting values (e.g. a known pose).

The render may be smaller than the training's (ENCODER_SIZE); the landmark loss, in squared render
pixels, is then reweighted by (ENCODER_SIZE / render_size)^2 so that the terms keep the training
objective's balance (the photometric term is a mean over pixels and needs nothing).
"""
import numpy as np
import tensorflow.compat.v1 as tf

from model import coarse
from model.face import COEFFICIENT_PARTS, CROP_SIZE, ENCODER_SIZE
from model.face.landmarks68 import NUM_LANDMARKS

# Fast enough that DEFAULT_STEPS bring a head the network left frontal round by tens of degrees,
# small enough to stay stable.
DEFAULT_LEARNING_RATE = 0.03
DEFAULT_STEPS = 50
# The crop is compared with a 128 x 128 render, not the training's 224 x 224 (ENCODER_SIZE): a step
# costs about half as much (bench/bench_fitting.py), which keeps DEFAULT_STEPS within a second per
# photo on 2 cores; the landmark term, which sets pose and expression, does not depend on it.
DEFAULT_RENDER_SIZE = 128
SCOPE = "fitting"


class CoefficientFitter(object):
    """Graph ops that fit a batch of crops' coefficients; built into the current default graph.

    Args:
      face_model: model.face_model.FaceModel.
      batch_size: B, crops fitted together (each independently).
      weights: coarse.LossWeights (perceptual is not used: there is no perceptual network here).
      learning_rate: Adam's step size, in optimiser units (module docstring).
      render_size: side of the render compared with the crop (ENCODER_SIZE: the training objective).
      fixed_parts: names from COEFFICIENT_PARTS whose coefficients stay at their starting values.
    """

    def __init__(self, face_model, batch_size=1, weights=coarse.TRAINING_LOSS_WEIGHTS,
                 learning_rate=DEFAULT_LEARNING_RATE, render_size=DEFAULT_RENDER_SIZE, fixed_parts=()):
        unknown = set(fixed_parts) - set(COEFFICIENT_PARTS)
        if unknown:
            raise ValueError("fixed_parts: unknown part(s) %s (known: %s)"
                             % (", ".join(sorted(unknown)), ", ".join(COEFFICIENT_PARTS)))
        if learning_rate <= 0:
            raise ValueError("learning_rate must be positive, got %g" % learning_rate)
        self.face_model = face_model
        self.batch_size = batch_size
        weights = weights._replace(landmark=weights.landmark * (ENCODER_SIZE / float(render_size)) ** 2)
        size = face_model.coeff_size
        unit = face_model.split_coefficients(np.ones(size, np.float32))
        unit = {name: np.array(value) for name, value in unit.items()}
        unit["pose"] = unit["pose"] * coarse.POSE_OUTPUT_SCALE
        for name in fixed_parts:
            unit[name][:] = 0.0
        unit = np.concatenate([unit[name] for name in COEFFICIENT_PARTS]).astype(np.float32)

        def state(name, shape, dtype=tf.float32):
            return tf.get_variable(name, shape, dtype, initializer=tf.zeros_initializer(), trainable=False)

        with tf.variable_scope(SCOPE, reuse=False):
            # The targets live in variables, set once per fit: the steps then feed nothing.
            self._targets = dict(image=state("image", [batch_size, CROP_SIZE, CROP_SIZE, 3]),
                                 landmarks=state("landmarks", [batch_size, NUM_LANDMARKS, 2]),
                                 segmentation=state("segmentation", [batch_size, CROP_SIZE, CROP_SIZE],
                                                    tf.int32))
            initial = state("initial", [batch_size, size])
            delta = tf.get_variable("delta", [batch_size, size], initializer=tf.zeros_initializer())
        self.coefficients = initial + delta * unit
        model = coarse.CoarseModel(face_model, None, render_size)
        outputs = model.decode(self.coefficients, self._targets["image"])
        per_crop = []
        for b in range(batch_size):
            crop_batch = {key: value[b:b + 1] for key, value in self._targets.items()}
            crop_outputs = {key: outputs[key][b:b + 1] for key in ("input", "render", "mask", "landmarks")}
            crop_outputs["coeffs"] = self.coefficients[b:b + 1]
            per_crop.append(model.losses(crop_batch, crop_outputs, weights))
        self.losses = {name: tf.stack([terms[name] for terms in per_crop]) for name in per_crop[0]}
        optimizer = tf.train.AdamOptimizer(learning_rate)
        self._step = optimizer.minimize(tf.reduce_sum(self.losses["total"]), var_list=[delta])

        self._feeds = dict(
            image=tf.placeholder(tf.uint8, [batch_size, CROP_SIZE, CROP_SIZE, 3]),
            landmarks=tf.placeholder(tf.float32, [batch_size, NUM_LANDMARKS, 2]),
            segmentation=tf.placeholder(tf.int32, [batch_size, CROP_SIZE, CROP_SIZE]),
            initial=tf.placeholder(tf.float32, [batch_size, size]))
        assigns = [self._targets["image"].assign(tf.cast(self._feeds["image"], tf.float32) / 255.0),
                   self._targets["landmarks"].assign(self._feeds["landmarks"]),
                   self._targets["segmentation"].assign(self._feeds["segmentation"]),
                   initial.assign(self._feeds["initial"])]
        with tf.control_dependencies(assigns):
            self._reset = tf.variables_initializer([delta] + optimizer.variables())
        self._all_variables = list(self._targets.values()) + [initial, delta] + optimizer.variables()

    def initializer(self):
        """The op that initialises the fitter's variables (run once after building the graph)."""
        return tf.variables_initializer(self._all_variables)

    def fit(self, session, images, landmarks, segmentation, initial, steps, trace=None):
        """Fits the coefficients of B crops.

        Args:
          session: a tf.Session of the graph the fitter was built in (variables initialised).
          images: [B, 300, 300, 3] uint8 crops.
          landmarks: [B, 68, 2] float, their (detected) landmarks in crop pixels.
          segmentation: [B, 300, 300] int labels (preprocess/schema.py).
          initial: [B, C] float starting coefficients.
          steps: Adam steps (0 returns `initial`).
          trace: None, or a list to which the losses (name -> [B]) before each step and after the
            last are appended.
        Returns:
          [B, C] float32 fitted coefficients.
        """
        if steps < 0:
            raise ValueError("steps must be >= 0, got %d" % steps)
        feed = {self._feeds["image"]: images, self._feeds["landmarks"]: landmarks,
                self._feeds["segmentation"]: segmentation, self._feeds["initial"]: initial}
        session.run(self._reset, feed)
        for _ in range(steps):
            if trace is None:
                session.run(self._step)
            else:
                trace.append(session.run([self._step, self.losses])[1])
        if trace is not None:
            trace.append(session.run(self.losses))
        return session.run(self.coefficients)
