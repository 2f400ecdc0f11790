"""tf.data reader of the training tfrecords (schema: preprocess/schema.py), with the paper's augmentation.

    dataset = make_dataset("data/synthetic/*.tfrecord", batch_size=8)
    batch = tf.data.make_one_shot_iterator(dataset).get_next()   # graph mode

Malformed records: every record travels with the name of its tfrecord file, and is validated
(keys present, value counts, image signature and size) before it is decoded; a failure is an
`InvalidArgumentError` whose message holds that file name and the key. (Bytes that start like a
PNG or JPEG but are corrupt further in fail inside TensorFlow's decoder, whose message has no
file name.) With augment=False, whether ground truth (gt/*) is expected is read from the first
record of the first file; then every record must carry it, with the same sizes.

Augmentation (augment=True), as in the paper, in this order:
  - colour: each RGB channel multiplied by its own factor, uniform in [0.8, 1.2], then clipped
    to [0, 1];
  - horizontal flip with probability 1/2: image and segmentation mirrored, landmarks mirrored
    (x -> 300 - x) and re-ordered with the 68-point flip permutation;
  - scale: uniform in [0.9, 1.1] about the crop centre (150, 150); image bilinear, segmentation
    nearest, zero (background) where the scaled-down crop leaves the frame; landmarks scaled.
Ground truth (gt/*) describes the un-augmented sample, so augmented datasets leave it out: read
it with augment=False (evaluation).
"""
import numpy as np
import tensorflow.compat.v1 as tf

from preprocess import schema
from model.face.landmarks68 import FLIP_PERMUTATION

COLOUR_SCALE_RANGE = (0.8, 1.2)
SCALE_RANGE = (0.9, 1.1)
SHUFFLE_BUFFER = 256

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"


def _ground_truth_sizes(path):
    """(coefficient count, displacement side, vertex count) from the first record of `path`, or
    None when it has no ground truth. Read in Python at graph-build time."""
    for record in tf.io.tf_record_iterator(path):
        feature = tf.train.Example.FromString(record).features.feature
        if schema.GT_POINTS_PX not in feature:
            return None
        num_coefficients = len(feature[schema.GT_COEFFICIENTS].float_list.value)
        side = int(feature[schema.GT_DISPLACEMENT_SIZE].int64_list.value[0])
        num_vertex_values = len(feature[schema.GT_POINTS_PX].float_list.value)
        if num_vertex_values % 3:
            raise ValueError("%s: gt/points_px has %d values, not a multiple of 3"
                             % (path, num_vertex_values))
        return num_coefficients, side, num_vertex_values // 3
    raise ValueError("%s holds no records" % path)


def _feature_spec(with_ground_truth):
    # VarLen for everything, so that a missing key is a count of 0 that we report with the file
    # name, rather than the parser's own error, which names neither file nor record.
    spec = {key: tf.io.VarLenFeature(tf.string)
            for key in (schema.IMAGE, schema.SEGMENTATION, schema.SOURCE_FILENAME)}
    spec[schema.LANDMARKS] = tf.io.VarLenFeature(tf.float32)
    spec[schema.CROP_MATRIX] = tf.io.VarLenFeature(tf.float32)
    if with_ground_truth:
        spec[schema.GT_COEFFICIENTS] = tf.io.VarLenFeature(tf.float32)
        spec[schema.GT_DISPLACEMENT] = tf.io.VarLenFeature(tf.float32)
        spec[schema.GT_DISPLACEMENT_SIZE] = tf.io.VarLenFeature(tf.int64)
        spec[schema.GT_POINTS_PX] = tf.io.VarLenFeature(tf.float32)
    return spec


def _check(condition, filename, *message):
    """An assert op whose failure message names the tfrecord file."""
    return tf.Assert(condition, ["malformed record in", filename] + list(message), summarize=8)


def _count_check(filename, parsed, key, expected):
    count = tf.size(parsed[key].values)
    return _check(tf.equal(count, expected), filename,
                  "key %s has" % key, count, "values, expected %d (0 = key missing)" % expected)


def _signature_check(filename, data, key, allow_jpeg):
    is_png = tf.equal(tf.strings.substr(data, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)
    ok = is_png
    if allow_jpeg:
        ok = tf.logical_or(ok, tf.equal(tf.strings.substr(data, 0, len(_JPEG_SIGNATURE)),
                                        _JPEG_SIGNATURE))
    kind = "PNG or JPEG" if allow_jpeg else "PNG"
    return _check(ok, filename, "key %s is not %s data" % (key, kind))


def _shape_check(filename, decoded, key, expected_hw):
    shape = tf.shape(decoded)[:2]
    return _check(tf.reduce_all(tf.equal(shape, expected_hw)), filename,
                  "key %s decodes to height, width" % key, shape,
                  "expected %s" % (tuple(expected_hw),))


def parse_record(filename, record, ground_truth_sizes=None):
    """Validates and decodes one serialized record.

    Args:
      filename: scalar string tensor, the tfrecord file the record came from (for errors).
      record: scalar string tensor.
      ground_truth_sizes: None (photos), or (C, S, N): coefficient count, displacement map side,
        vertex count, which every record must then match.
    Returns:
      dict: image f32 [300, 300, 3] in [0, 1]; landmarks f32 [68, 2]; segmentation i32 [300, 300];
      source/filename string []; crop/matrix f32 [2, 3]; and with ground truth gt/coefficients
      f32 [C], gt/displacement f32 [S, S] (mm), gt/points_px f32 [N, 3] (crop pixels, depth).
    """
    size = schema.CROP_SIZE
    parsed = tf.io.parse_single_example(record, _feature_spec(ground_truth_sizes is not None))
    checks = [_count_check(filename, parsed, key, 1)
              for key in (schema.IMAGE, schema.SEGMENTATION, schema.SOURCE_FILENAME)]
    checks.append(_count_check(filename, parsed, schema.LANDMARKS, 2 * schema.NUM_LANDMARKS))
    checks.append(_count_check(filename, parsed, schema.CROP_MATRIX, 6))
    if ground_truth_sizes is not None:
        num_coefficients, side, num_vertices = ground_truth_sizes
        checks.append(_count_check(filename, parsed, schema.GT_COEFFICIENTS, num_coefficients))
        checks.append(_count_check(filename, parsed, schema.GT_DISPLACEMENT, side * side))
        checks.append(_count_check(filename, parsed, schema.GT_POINTS_PX, 3 * num_vertices))
    # Every value is read through the checks, so no reshape or decode runs on a bad record.
    with tf.control_dependencies(checks):
        values = {key: tf.identity(feature.values) for key, feature in parsed.items()}
    image_bytes = values[schema.IMAGE][0]
    segmentation_bytes = values[schema.SEGMENTATION][0]
    with tf.control_dependencies([
            _signature_check(filename, image_bytes, schema.IMAGE, allow_jpeg=True),
            _signature_check(filename, segmentation_bytes, schema.SEGMENTATION, allow_jpeg=False)]):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        segmentation = tf.io.decode_png(segmentation_bytes, channels=1)
    with tf.control_dependencies([
            _shape_check(filename, image, schema.IMAGE, [size, size]),
            _shape_check(filename, segmentation, schema.SEGMENTATION, [size, size])]):
        image = tf.image.convert_image_dtype(image, tf.float32)
        segmentation = tf.cast(segmentation[:, :, 0], tf.int32)
    out = {
        "image": tf.ensure_shape(image, [size, size, 3]),
        "segmentation": tf.ensure_shape(segmentation, [size, size]),
        "landmarks": tf.reshape(values[schema.LANDMARKS], [schema.NUM_LANDMARKS, 2]),
        schema.SOURCE_FILENAME: values[schema.SOURCE_FILENAME][0],
        schema.CROP_MATRIX: tf.reshape(values[schema.CROP_MATRIX], [2, 3]),
    }
    if ground_truth_sizes is not None:
        out[schema.GT_COEFFICIENTS] = tf.reshape(values[schema.GT_COEFFICIENTS],
                                                 [num_coefficients])
        out[schema.GT_DISPLACEMENT] = tf.reshape(values[schema.GT_DISPLACEMENT],
                                                 [side, side])
        out[schema.GT_POINTS_PX] = tf.reshape(values[schema.GT_POINTS_PX], [num_vertices, 3])
    return out


def _scale_about_centre(image, factor, interpolation):
    """image [H, W, C] magnified by `factor` about its centre; outside is 0."""
    height, width = image.shape[0], image.shape[1]
    # The op maps output pixel indices (centres at integers) to input ones:
    # in = out / s + (centre - 0.5) (1 - 1 / s), with the centre in continuous pixels.
    inv = 1.0 / factor
    offset_x = (0.5 * width - 0.5) * (1.0 - inv)
    offset_y = (0.5 * height - 0.5) * (1.0 - inv)
    zero = tf.zeros_like(inv)
    transform = tf.stack([inv, zero, offset_x, zero, inv, offset_y, zero, zero])[None]
    dtype = image.dtype
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=[height, width],
        fill_value=0.0, interpolation=interpolation, fill_mode="CONSTANT")[0]
    return tf.cast(out, dtype)


def augment_sample(sample, seed=None):
    """The paper's augmentation of one parsed sample (see the module docstring); drops gt/*."""
    size = float(schema.CROP_SIZE)
    image, landmarks, segmentation = sample["image"], sample["landmarks"], sample["segmentation"]

    # Distinct op seeds: ops sharing one seed would draw the same numbers.
    seeds = [None] * 3 if seed is None else [seed, seed + 1, seed + 2]
    colour = tf.random.uniform([3], *COLOUR_SCALE_RANGE, seed=seeds[0])
    image = tf.clip_by_value(image * colour, 0.0, 1.0)

    flip = tf.random.uniform([], seed=seeds[1]) < 0.5
    flipped_landmarks = tf.gather(landmarks, FLIP_PERMUTATION)
    flipped_landmarks = tf.stack([size - flipped_landmarks[:, 0], flipped_landmarks[:, 1]], axis=1)
    image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
    segmentation = tf.cond(flip, lambda: segmentation[:, ::-1], lambda: segmentation)
    landmarks = tf.cond(flip, lambda: flipped_landmarks, lambda: landmarks)

    scale = tf.random.uniform([], *SCALE_RANGE, seed=seeds[2])
    image = _scale_about_centre(image, scale, "BILINEAR")
    segmentation = _scale_about_centre(segmentation[:, :, None], scale, "NEAREST")[:, :, 0]
    landmarks = 0.5 * size + scale * (landmarks - 0.5 * size)

    out = {key: value for key, value in sample.items() if not key.startswith("gt/")}
    out.update(image=image, landmarks=landmarks, segmentation=segmentation)
    return out


def make_dataset(file_pattern, batch_size, augment=True, shuffle=True, repeat=True, seed=None):
    """The training (or evaluation) input pipeline.

    Args:
      file_pattern: glob of tfrecord files, or a list of them.
      batch_size: records per batch. With repeat=True the last partial batch is dropped, so the
        batch dimension is static.
      augment: apply the paper's augmentation (and leave out gt/*).
      shuffle: shuffle file order and records (buffer of SHUFFLE_BUFFER).
      repeat: cycle forever.
      seed: op-level seed for shuffling and augmentation (None = random).
    Returns:
      tf.data.Dataset of dicts: image f32 [B, 300, 300, 3] in [0, 1], landmarks f32 [B, 68, 2]
      crop pixels, segmentation i32 [B, 300, 300], source/filename string [B], crop/matrix
      f32 [B, 2, 3], plus gt/coefficients [B, C], gt/displacement [B, S, S], gt/points_px
      [B, N, 3] when the records carry ground truth and augment=False.
    Raises:
      ValueError: no file matches, or the first file is empty.
    """
    patterns = [file_pattern] if isinstance(file_pattern, (str, bytes)) else list(file_pattern)
    files = sorted(set(f for p in patterns for f in tf.io.gfile.glob(p)))
    if not files:
        raise ValueError("no tfrecord file matches %r" % (file_pattern,))
    # Augmented samples carry no ground truth, so it is neither parsed nor required then.
    sizes = None if augment else _ground_truth_sizes(files[0])

    dataset = tf.data.Dataset.from_tensor_slices(np.array(files))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.interleave(
        lambda f: tf.data.TFRecordDataset(f).map(lambda r: (f, r)),
        cycle_length=min(len(files), 4), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed)
    dataset = dataset.map(lambda f, r: parse_record(f, r, sizes),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if augment:
        dataset = dataset.map(lambda s: augment_sample(s, seed),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    return dataset.prefetch(tf.data.AUTOTUNE)
