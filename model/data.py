"""tf.data reader of the training tfrecords (schema: preprocess/schema.py), with the paper's augmentation.

    dataset = make_dataset("data/synthetic/*.tfrecord", batch_size=8)
    batch = tf.data.make_one_shot_iterator(dataset).get_next()   # graph mode

Bad input is named, never silent and never a hang:
  - a file that can't be read to its end (truncated, corrupted framing or CRC, unreadable) is an
    `InvalidArgumentError` naming the file and the record after which it breaks (the reader's own
    error names no file: each file is read with its errors caught, and the bytes read are compared
    with the file's size);
  - a record is validated (a tf.train.Example at all, keys present, value counts, image signature,
    decodable images and their size) before it is used; a failure is an `InvalidArgumentError`
    "malformed record K in FILE: <what is wrong>" (K counts from 0 within the file);
  - tfrecords that hold no usable record at all are an error at the first batch (with repeat=True;
    with repeat=False the dataset is simply empty), instead of a reader that cycles forever;
  - with skipped=SkippedCounter() such files and records are skipped instead: each skip prints one
    line naming the file, the record and the reason to stderr, and is counted in a SkippedCounter
    (a bad record or file is met, and counted, again in every pass over the data).
With augment=False, whether ground truth (gt/*) is expected is read from the first readable record;
then every record must carry it, with the same sizes.

Augmentation (augment=True), as in the paper, in this order:
  - colour: each RGB channel multiplied by its own factor, uniform in [0.8, 1.2], then clipped
    to [0, 1];
  - horizontal flip with probability 1/2: image and segmentation mirrored, landmarks mirrored
    (x -> 300 - x) and re-ordered with the 68-point flip permutation;
  - scale: uniform in [0.9, 1.1] about the crop centre (150, 150); image bilinear, segmentation
    nearest, zero (background) where the scaled-down crop leaves the frame; landmarks scaled.
Ground truth (gt/*) describes the un-augmented sample, so augmented datasets leave it out: read
it with augment=False (evaluation). A supervised training term asks for keep_ground_truth=True: the
ground truth that holds in the face model's frame (coefficients, displacement map) is kept, with
gt/flipped and gt/scale saying how each sample was mirrored and scaled, and gt/present which carry it.

Several folders mixed (train.py --data_dir=a,b --data_ratio=2,1): make_dataset(Mixture([a, b],
[2, 1]), ...) samples each record from folder a with probability 2/3 and from b with 1/3, each
folder its own repeated, shuffled, augmented pipeline (Mixture: weights default to the folders'
record counts). Photo records (make_tfrecords.py: no gt/*) and synthetic ones (with gt/*) mix in
one batch: the self-supervised losses read only image, landmarks and segmentation; with
keep_ground_truth the photos' samples get zero ground truth and gt/present 0; with augment=False a
mixture keeps only the keys all folders have.
"""
import os
import re
import sys
import threading

import numpy as np
import tensorflow.compat.v1 as tf
from google.protobuf.message import DecodeError

from model.face.landmarks68 import FLIP_PERMUTATION
from preprocess import schema

COLOUR_SCALE_RANGE = (0.8, 1.2)
SCALE_RANGE = (0.9, 1.1)
SHUFFLE_BUFFER = 256

# The ground truth an augmented training batch can carry (make_dataset keep_ground_truth=True),
# with gt/flipped, gt/scale and gt/present beside it.
TRAINING_GROUND_TRUTH = (schema.GT_COEFFICIENTS, schema.GT_DISPLACEMENT)
GT_FLIPPED = "gt/flipped"
# The augmentation's magnification about the crop's centre (float32 []), kept beside gt/flipped:
# together they map a point of the augmented crop back to the crop the ground truth describes.
GT_SCALE = "gt/scale"
GT_PRESENT = "gt/present"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
# Bytes a tfrecord file spends on each record besides its data: length (8), length CRC (4),
# data CRC (4).
_RECORD_FRAMING_BYTES = 16


class DataError(ValueError):
    """Training data that can't be used, found while the pipeline is built (the message names the
    file). Errors found while it runs are tf.errors.InvalidArgumentError: see data_error."""


class SkippedCounter:
    """What a dataset made with skip_bad_records=True has skipped so far: `records` and `files`.

    Updated from the tf.data threads; read it from the training loop for the log and summaries.
    """

    def __init__(self):
        self.records = 0
        self.files = 0
        self._lock = threading.Lock()

    def _report(self, kind, count, message):
        with self._lock:
            if kind == "file":
                self.files += count
            else:
                self.records += count
        print("data: skipped %s" % message.numpy().decode("utf-8", "replace"), file=sys.stderr, flush=True)
        return False


_DATA_ERROR = re.compile(r"(unreadable tfrecord file|malformed record|none of the \d+ tfrecord file)[^\]]*")


def data_error(error):
    """The reader's one-line message inside a tf.errors.OpError raised by a make_dataset dataset
    (a bad file or record, or no usable record), or None when the error is about something else."""
    match = _DATA_ERROR.search(error.message)
    return match.group(0) if match else None


def _ground_truth_sizes(files, skip_bad_records):
    """(coefficient count, displacement side, vertex count) from the first readable record of
    `files`, or None when it has no ground truth. Read in Python at graph-build time.

    Raises ValueError naming the file when a file or record is unreadable (unless skipping), and
    when no file holds a readable record.
    """
    for path in files:
        try:
            for record in tf.io.tf_record_iterator(path):
                try:
                    feature = tf.train.Example.FromString(record).features.feature
                except (DecodeError, UnicodeDecodeError) as error:
                    if skip_bad_records:
                        continue
                    raise DataError("malformed record in %s: not a tf.train.Example (%s)"
                                     % (path, type(error).__name__)) from None
                return _sizes_of(path, feature)
        except tf.errors.OpError as error:
            if not skip_bad_records:
                raise DataError("unreadable tfrecord file %s: %s" % (path, error.message)) from None
    raise DataError("none of the %d tfrecord file(s) holds a readable record (%s%s)"
                     % (len(files), files[0], ", ..." if len(files) > 1 else ""))


def _sizes_of(path, feature):
    if schema.GT_POINTS_PX not in feature:
        return None
    num_coefficients = len(feature[schema.GT_COEFFICIENTS].float_list.value)
    side = int(feature[schema.GT_DISPLACEMENT_SIZE].int64_list.value[0])
    num_vertex_values = len(feature[schema.GT_POINTS_PX].float_list.value)
    if num_vertex_values % 3:
        raise DataError("%s: gt/points_px has %d values, not a multiple of 3" % (path, num_vertex_values))
    return num_coefficients, side, num_vertex_values // 3


def _feature_spec(ground_truth_sizes):
    # VarLen for everything, so that a missing key is a count of 0 that we report with the file
    # name, rather than the parser's own error, which names neither file nor record.
    spec = {key: tf.io.VarLenFeature(tf.string)
            for key in (schema.IMAGE, schema.SEGMENTATION, schema.SOURCE_FILENAME)}
    spec[schema.LANDMARKS] = tf.io.VarLenFeature(tf.float32)
    spec[schema.CROP_MATRIX] = tf.io.VarLenFeature(tf.float32)
    if ground_truth_sizes is not None:
        spec[schema.GT_COEFFICIENTS] = tf.io.VarLenFeature(tf.float32)
        spec[schema.GT_DISPLACEMENT] = tf.io.VarLenFeature(tf.float32)
        spec[schema.GT_DISPLACEMENT_SIZE] = tf.io.VarLenFeature(tf.int64)
        if ground_truth_sizes[2] is not None:
            spec[schema.GT_POINTS_PX] = tf.io.VarLenFeature(tf.float32)
    return spec


def _text(*parts):
    """One string tensor from strings and (numeric or string) tensors."""
    return tf.strings.join([part if isinstance(part, str) or part.dtype == tf.string
                            else tf.strings.as_string(part) for part in parts])


def _has_signature(data, allow_jpeg):
    ok = tf.equal(tf.strings.substr(data, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)
    if allow_jpeg:
        ok = tf.logical_or(ok, tf.equal(tf.strings.substr(data, 0, len(_JPEG_SIGNATURE)),
                                        _JPEG_SIGNATURE))
    return ok


def _first(values):
    """values[0] of a 1-D string tensor, or "" when it is empty."""
    return tf.strings.reduce_join(values[:1])


def _decode_when_plausible(values, channels, allow_jpeg):
    """uint8 [H, W, channels]: the decoded image, or [0, 0, channels] when `values` is not one
    value with an image signature (the checks then report it)."""
    data = _first(values)
    plausible = tf.logical_and(tf.equal(tf.size(values), 1), _has_signature(data, allow_jpeg))
    empty = tf.zeros(tf.stack([0 * tf.size(values), 0, channels]), tf.uint8)
    if allow_jpeg:
        decode = lambda: tf.io.decode_image(data, channels=channels, expand_animations=False)
    else:
        decode = lambda: tf.io.decode_png(data, channels=channels)
    return tf.cond(plausible, decode, lambda: empty)


def _parse_and_decode(record, spec):
    """(values {key: 1-D tensor}, image uint8 [H, W, 3], segmentation uint8 [H, W, 1]).

    Fails (TensorFlow's parser or decoder error, which names no file) when the record is not a
    tf.train.Example or an image in it with a PNG/JPEG signature does not decode; _file_samples
    catches that and names the file and the record.
    """
    parsed = tf.io.parse_single_example(record, spec)
    values = {key: feature.values for key, feature in parsed.items()}
    return (values, _decode_when_plausible(values[schema.IMAGE], 3, allow_jpeg=True),
            _decode_when_plausible(values[schema.SEGMENTATION], 1, allow_jpeg=False))


def _nothing_decoded(spec):
    """The structure of _parse_and_decode's result, empty (for the end-of-file marker)."""
    values = {key: tf.fill([0], "") if feature.dtype == tf.string else tf.zeros([0], feature.dtype)
              for key, feature in spec.items()}
    return values, tf.zeros([0, 0, 3], tf.uint8), tf.zeros([0, 0, 1], tf.uint8)


def _skip(skipped, kind, count, message):
    """Reports a skip through the SkippedCounter (from inside the graph); False."""
    return tf.ensure_shape(tf.py_function(lambda n, m: skipped._report(kind, int(n), m),
                                          [count, message], tf.bool), [])


def _verdict(checks, where, skipped):
    """True when every (condition, message) of `checks` holds. Otherwise, the first failing
    message (prefixed with `where`) is an InvalidArgumentError, or, with a SkippedCounter, a
    printed and counted skip (and False)."""
    conditions = tf.stack([condition for condition, _ in checks])
    messages = tf.stack([message for _, message in checks])
    valid = tf.reduce_all(conditions)
    first_failure = tf.strings.join([where, tf.gather(messages, tf.argmin(tf.cast(conditions, tf.int32)))])
    if skipped is None:
        with tf.control_dependencies([tf.Assert(valid, [first_failure])]):
            return tf.identity(valid)
    return tf.cond(valid, lambda: tf.constant(True),
                   lambda: _skip(skipped, "record", tf.constant(1, tf.int64), first_failure))


def _checked_sample(filename, index, decoded, ground_truth_sizes=None, skipped=None):
    """Validates one parsed and decoded record (from _parse_and_decode).

    Returns (sample, valid). sample: image uint8 [300, 300, 3]; landmarks f32 [68, 2];
    segmentation uint8 [300, 300]; source/filename string []; crop/matrix f32 [2, 3]; and with
    ground truth gt/coefficients f32 [C], gt/displacement f32 [S, S] (mm), gt/points_px f32 [N, 3]
    (crop pixels, depth; not when ground_truth_sizes' vertex count is None). valid is False only
    with a SkippedCounter (the sample is then zeros);
    without, a failed check is an InvalidArgumentError "malformed record K in FILE: <what>".
    """
    size = schema.CROP_SIZE
    values, image, segmentation = decoded

    def count(key, expected):
        found = tf.size(values[key])
        return tf.equal(found, expected), _text("key %s has " % key, found,
                                                 " values, expected %d (0 = key missing)" % expected)

    expected_counts = [(key, 1) for key in (schema.IMAGE, schema.SEGMENTATION, schema.SOURCE_FILENAME)]
    expected_counts += [(schema.LANDMARKS, 2 * schema.NUM_LANDMARKS), (schema.CROP_MATRIX, 6)]
    if ground_truth_sizes is not None:
        num_coefficients, side, num_vertices = ground_truth_sizes
        expected_counts += [(schema.GT_COEFFICIENTS, num_coefficients),
                            (schema.GT_DISPLACEMENT, side * side)]
        if num_vertices is not None:
            expected_counts.append((schema.GT_POINTS_PX, 3 * num_vertices))
    # Each stage's checks hold vacuously when an earlier stage failed, so the message reported is
    # the first problem, not a consequence of it.
    stages = [[count(key, expected) for key, expected in expected_counts]
              + [(_has_signature(_first(values[schema.IMAGE]), True),
                  tf.constant("key image is not PNG or JPEG data")),
                 (_has_signature(_first(values[schema.SEGMENTATION]), False),
                  tf.constant("key segmentation is not PNG data"))]]

    def shape_check(key, decoded):
        shape = tf.shape(decoded)[:2]
        return (tf.reduce_all(tf.equal(shape, [size, size])),
                _text("key %s decodes to " % key, shape[0], " x ", shape[1],
                      ", expected %d x %d" % (size, size)))
    stages.append([shape_check(schema.IMAGE, image), shape_check(schema.SEGMENTATION, segmentation)])

    checks, passed = [], tf.constant(True)
    for stage in stages:
        checks += [(tf.logical_or(tf.logical_not(passed), condition), message) for condition, message in stage]
        passed = tf.logical_and(passed, tf.reduce_all(tf.stack([condition for condition, _ in stage])))
    valid = _verdict(checks, _text("malformed record ", index, " in ", filename, ": "), skipped)

    def fixed(tensor, shape, dtype):
        """tensor reshaped to `shape` when valid, zeros otherwise (a skipped record is dropped)."""
        if dtype == tf.string:
            return tf.cond(valid, lambda: tf.reshape(tensor, shape), lambda: tf.fill(shape, ""))
        return tf.cond(valid, lambda: tf.reshape(tensor, shape), lambda: tf.zeros(shape, dtype))

    sample = {
        "image": fixed(image, [size, size, 3], tf.uint8),
        "segmentation": fixed(segmentation, [size, size], tf.uint8),
        "landmarks": fixed(values[schema.LANDMARKS], [schema.NUM_LANDMARKS, 2], tf.float32),
        schema.SOURCE_FILENAME: fixed(_first(values[schema.SOURCE_FILENAME]), [], tf.string),
        schema.CROP_MATRIX: fixed(values[schema.CROP_MATRIX], [2, 3], tf.float32),
    }
    if ground_truth_sizes is not None:
        sample[schema.GT_COEFFICIENTS] = fixed(values[schema.GT_COEFFICIENTS], [num_coefficients], tf.float32)
        sample[schema.GT_DISPLACEMENT] = fixed(values[schema.GT_DISPLACEMENT], [side, side], tf.float32)
        if num_vertices is not None:
            sample[schema.GT_POINTS_PX] = fixed(values[schema.GT_POINTS_PX], [num_vertices, 3], tf.float32)
    return sample, valid


def _training_types(sample):
    """image uint8 -> float32 in [0, 1], segmentation uint8 -> int32 (after the shuffle buffer,
    which holds the compact uint8 images)."""
    out = dict(sample)
    out["image"] = tf.image.convert_image_dtype(sample["image"], tf.float32)
    out["segmentation"] = tf.cast(sample["segmentation"], tf.int32)
    return out


def _file_samples(filename, file_size, ground_truth_sizes, skipped):
    """The checked samples (uint8 images) of one tfrecord file, in file order.

    TensorFlow's reader, parser and decoders fail with messages that name no file. Their errors
    are caught here (ignore_errors) and detected instead: the reader's by comparing the bytes read
    with the file's size at an end-of-file marker, the parser's and decoders' by the gap they leave
    in the record numbers. Either is then an error (or a counted skip) naming the file and record.
    """
    spec = _feature_spec(ground_truth_sizes)
    records = tf.data.TFRecordDataset(filename).ignore_errors().map(lambda r: (r, tf.constant(True)))
    end = tf.data.Dataset.from_tensors((tf.constant(""), tf.constant(False)))

    def number(state, item):
        count, offset = state
        record, is_record = item
        step = tf.cast(is_record, tf.int64)
        length = tf.cast(tf.strings.length(record), tf.int64) + _RECORD_FRAMING_BYTES
        # The end marker's number is the count of records read, its offset the bytes read.
        return (count + step, offset + step * length), (record, is_record, count, offset)

    def check_whole_file(decoded, is_record, index, offset):
        whole = tf.logical_or(is_record, tf.equal(offset, file_size))
        message = _text("unreadable tfrecord file ", filename, ": it breaks after record ", index - 1,
                        " (byte ", offset, " of ", file_size, "): truncated or corrupted")
        if skipped is None:
            check = tf.Assert(whole, [message])
        else:
            check = tf.cond(whole, lambda: tf.constant(True),
                            lambda: _skip(skipped, "file", tf.constant(1, tf.int64), message))
        with tf.control_dependencies([check]):
            return decoded, tf.identity(is_record), index

    def decode(record, is_record, index, offset):
        return tf.cond(is_record, lambda: _parse_and_decode(record, spec),
                       lambda: _nothing_decoded(spec)), is_record, index, offset

    def check_no_gap(expected, item):
        decoded, is_record, index = item
        missing = index - expected
        message = _text("malformed record ", expected, " in ", filename,
                        ": not a tf.train.Example, or an image in it does not decode")
        if skipped is None:
            check = tf.Assert(tf.equal(missing, 0), [message])
        else:
            check = tf.cond(tf.equal(missing, 0), lambda: tf.constant(True),
                            lambda: _skip(skipped, "record", missing, message))
        with tf.control_dependencies([check]):
            return index + 1, (decoded, tf.identity(is_record), index)

    samples = (records.concatenate(end).scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), number)
               # Parallel within the file (one shard can feed a fast trainer); in order, for the gaps.
               .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
               .map(check_whole_file)
               .scan(tf.constant(0, tf.int64), check_no_gap)
               .filter(lambda decoded, is_record, index: is_record)
               .map(lambda decoded, is_record, index: _checked_sample(filename, index, decoded,
                                                                     ground_truth_sizes, skipped)))
    if skipped is not None:
        samples = samples.filter(lambda sample, valid: valid)
    return samples.map(lambda sample, valid: sample)


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


def augment_sample(sample, seed=None, keep_ground_truth=False):
    """The paper's augmentation of one parsed sample (see the module docstring).

    Drops gt/*, or with keep_ground_truth keeps the ground truth that holds in the face model's
    own frame (TRAINING_GROUND_TRUTH: the coefficients and the displacement map, which colour and
    scale leave as they are) and adds gt/flipped (bool []): True when the sample was mirrored, so
    that its ground truth describes the mirror image of what the crop shows (a loss mirrors it:
    vertices x -> -x through the face model's mirror map, the UV map's columns reversed), and
    gt/scale (float32 []): the magnification applied after the mirror (a crop point p came from
    centre + (p - centre) / scale of the possibly mirrored crop: model.face.unwrap.own_chart_target).
    """
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
    if keep_ground_truth and schema.GT_COEFFICIENTS in sample:
        out.update({key: sample[key] for key in TRAINING_GROUND_TRUTH})
        out[GT_FLIPPED] = flip
        out[GT_SCALE] = scale
    return out


def _no_records_error(files, element_spec):
    """A dataset of `element_spec` whose first element is an error saying that `files` hold no
    usable record."""
    message = ("none of the %d tfrecord file(s) (%s%s) holds a usable record: they are empty, or every "
               "record was skipped" % (len(files), files[0], ", ..." if len(files) > 1 else ""))

    def fail(false):
        with tf.control_dependencies([tf.Assert(false, [message])]):
            return tf.identity(false)

    def like_an_element(_):
        return tf.nest.map_structure(
            lambda spec: tf.fill(spec.shape, "") if spec.dtype == tf.string else tf.zeros(spec.shape, spec.dtype),
            element_spec)

    return tf.data.Dataset.from_tensors(tf.constant(False)).map(fail).filter(lambda x: x).map(like_an_element)


def shard_files(files, shard, file_pattern):
    """files[index::count] of shard = (index, count). Raises DataError when that is empty (fewer
    files than shards)."""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError("shard index %d is not in [0, %d)" % (index, count))
    mine = files[index::count]
    if not mine:
        raise DataError("shard %d of %d gets no file: only %d tfrecord file(s) match %r (file-level "
                        "sharding needs at least one file per replica)" % (index, count, len(files), file_pattern))
    return mine


def make_dataset(file_pattern, batch_size, augment=True, shuffle=True, repeat=True, seed=None,
                 skipped=None, shard=None, keep_ground_truth=False):
    """The training (or evaluation) input pipeline.

    Args:
      file_pattern: glob of tfrecord files, or a list of them; or a Mixture (several folders
        sampled with weights: see Mixture).
      batch_size: records per batch. With repeat=True the last partial batch is dropped, so the
        batch dimension is static. None: unbatched samples (no prefetch).
      augment: apply the paper's augmentation (and leave out gt/*).
      shuffle: shuffle file order and records (buffer of SHUFFLE_BUFFER).
      repeat: cycle forever.
      seed: op-level seed for shuffling and augmentation (None = random).
      skipped: None: a bad file or record is an error (see the module docstring). A
        SkippedCounter: bad files and records are skipped, printed and counted in it.
      shard: None, or (index, count): only the files index, index + count, index + 2 count, ...
        of the sorted list are read (file-level sharding: each replica of a cluster its own).
      keep_ground_truth: with augment, keep TRAINING_GROUND_TRUTH of records that carry it, with
        gt/flipped (bool [B]), gt/scale (f32 [B]: see augment_sample) and gt/present (f32 [B], 1).
        In a Mixture, samples of folders without ground truth get zeros there (scale 1) and gt/present 0, so that a
        supervised loss can leave them out. Without ground truth anywhere, nothing is added.
    Returns:
      tf.data.Dataset of dicts: image f32 [B, 300, 300, 3] in [0, 1], landmarks f32 [B, 68, 2]
      crop pixels, segmentation i32 [B, 300, 300], source/filename string [B], crop/matrix
      f32 [B, 2, 3], plus gt/coefficients [B, C], gt/displacement [B, S, S], gt/points_px
      [B, N, 3] when the records carry ground truth and augment=False (keep_ground_truth: see
      there).
    Raises:
      DataError (a ValueError): no file matches, or all are empty; with augment=False, no file
        holds a readable record.
    """
    if isinstance(file_pattern, Mixture):
        return _mixed_dataset(file_pattern, batch_size, augment, shuffle, repeat, seed, skipped, shard,
                              keep_ground_truth)
    patterns = [file_pattern] if isinstance(file_pattern, (str, bytes)) else list(file_pattern)
    files = sorted(set(f for p in patterns for f in tf.io.gfile.glob(p)))
    if not files:
        raise DataError("no tfrecord file matches %r" % (file_pattern,))
    if shard is not None:
        files = shard_files(files, shard, file_pattern)
    # Augmented samples carry no ground truth unless kept, so it is neither parsed nor required then.
    keep_ground_truth = keep_ground_truth and augment
    sizes = None if augment and not keep_ground_truth else _ground_truth_sizes(files, skipped is not None)
    if keep_ground_truth and sizes is not None:
        # The per-vertex points are pose-bound (crop pixels), so augmentation would not keep them:
        # neither parsed nor checked.
        sizes = sizes[:2] + (None,)
    file_sizes = [tf.io.gfile.stat(f).length for f in files]
    if not any(file_sizes):
        raise DataError("all %d tfrecord file(s) matching %r are empty" % (len(files), file_pattern))

    dataset = tf.data.Dataset.from_tensor_slices((np.array(files), np.array(file_sizes, np.int64)))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        lambda f, n: _file_samples(f, n, sizes, skipped),
        cycle_length=min(len(files), 4), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if repeat:
        # Repeated after the files are read, not before: a pass that yields nothing then ends the
        # repetition (tf.data's rule) and the error follows, where repeating the file names would
        # cycle through files without records forever.
        dataset = dataset.repeat().concatenate(_no_records_error(files, dataset.element_spec))
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed)
    dataset = dataset.map(_training_types, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if augment:
        dataset = dataset.map(lambda s: augment_sample(s, seed, keep_ground_truth),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
        if keep_ground_truth and sizes is not None:
            dataset = dataset.map(lambda s: dict(s, **{GT_PRESENT: tf.constant(1.0)}))
    if batch_size is None:
        return dataset
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    return dataset.prefetch(tf.data.AUTOTUNE)


def training_batch(file_pattern, batch_size, seed, skip_bad_records=False, shard=None, keep_ground_truth=False):
    """What a training stage reads: `make_dataset`'s augmented, shuffled, repeated batches as
    tensors, data order seeded by `seed` (a stage passes its seed + the start step, so a resumed
    run does not replay the first batches). keep_ground_truth: see make_dataset (a stage with a
    supervised term on synthetic ground truth asks for it).

    Returns:
      (batch dict of tensors, SkippedCounter when skip_bad_records else None).
    """
    skipped = SkippedCounter() if skip_bad_records else None
    dataset = make_dataset(file_pattern, batch_size, augment=True, seed=seed, skipped=skipped, shard=shard,
                           keep_ground_truth=keep_ground_truth)
    return tf.data.make_one_shot_iterator(dataset).get_next(), skipped


def count_records(path):
    """The number of records in the tfrecord file `path`, read from the record headers alone
    (each record's length, then a seek past its data): fast on large files. A file that ends
    inside a record counts its whole records only."""
    count = 0
    # Python's own file for local paths (a seek and read cost microseconds; through GFile, a
    # hundred), GFile for the file systems only TensorFlow knows (gs://, ...).
    local = "://" not in path
    with (open(path, "rb") if local else tf.io.gfile.GFile(path, "rb")) as f:
        size = os.fstat(f.fileno()).st_size if local else f.size()
        offset = 0
        while offset + 12 <= size:
            f.seek(offset)
            length = int.from_bytes(f.read(8), "little")
            offset += _RECORD_FRAMING_BYTES + length
            if offset > size:
                break
            count += 1
    return count


class Mixture:
    """Training data from several folders, each sampled with its own weight, mixed record by
    record (tf.data's sample_from_datasets): e.g. photos preprocessed by make_tfrecords.py and
    synthetic faces from synthesize.py in one run. Pass it to make_dataset in place of a glob.

    Each folder is its own make_dataset pipeline (its files, shuffle, repeat, augmentation, with
    its own op seeds), so a small folder is repeated as often as its weight needs, whatever the
    size of the others.

    Args:
      folders: folders of *.tfrecord files (schema: preprocess/schema.py).
      weights: one sampling weight per folder (>= 0, not all 0; normalised), or None: each
        folder in proportion to its record count, so every record is as likely as any other, as
        if the folders were one (nothing is repeated more often than the rest unless asked
        for). A folder of weight 0 is not read.
    Attributes:
      folders, patterns (a glob per folder), counts (records per folder: counted only when
      weights is None, else None), weights (normalised, summing to 1).
    Raises:
      DataError naming the folder: a folder without *.tfrecord files; with weights=None, one
        whose files hold no record. ValueError: weights of another length, negative, or all 0.
    """

    def __init__(self, folders, weights=None):
        self.folders = list(folders)
        if not self.folders:
            raise ValueError("a Mixture needs at least one folder")
        if weights is not None:
            weights = [float(w) for w in weights]
            if len(weights) != len(self.folders):
                raise ValueError("%d weight(s) for %d folder(s) (%s)"
                                 % (len(weights), len(self.folders), ", ".join(self.folders)))
            if any(not np.isfinite(w) or w < 0 for w in weights) or not sum(weights) > 0:
                raise ValueError("weights must be finite and >= 0, not all 0: got %s"
                                 % ",".join("%g" % w for w in weights))
        self.patterns = []
        files = []
        for folder in self.folders:
            pattern = tf.io.gfile.join(folder, "*" + schema.SHARD_SUFFIX)
            matched = tf.io.gfile.glob(pattern)
            if not matched:
                raise DataError("data folder %s holds no *%s files" % (folder, schema.SHARD_SUFFIX))
            self.patterns.append(pattern)
            files.append(sorted(matched))
        self.counts = None
        if weights is None:
            self.counts = [sum(count_records(f) for f in folder_files) for folder_files in files]
            for folder, count in zip(self.folders, self.counts):
                if not count:
                    raise DataError("data folder %s: its *%s files hold no record"
                                    % (folder, schema.SHARD_SUFFIX))
            weights = self.counts
        total = float(sum(weights))
        self.weights = [w / total for w in weights]

    def __repr__(self):
        return "Mixture(%s)" % ", ".join("%s: %.3g" % (f, w) for f, w in zip(self.folders, self.weights))


def parse_ratio(text, num_folders):
    """The weights of a --data_ratio flag ("2,1"), or None for ""; ValueError naming the flag."""
    if not text.strip():
        return None
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError("--data_ratio=%s: expected comma-separated numbers, e.g. 2,1" % text) from None
    if len(weights) != num_folders:
        raise ValueError("--data_ratio=%s has %d value(s) for %d --data_dir folder(s)"
                         % (text, len(weights), num_folders))
    if any(not np.isfinite(w) or w < 0 for w in weights) or not sum(weights) > 0:
        raise ValueError("--data_ratio=%s: weights must be >= 0 and not all 0" % text)
    return weights


def split_folders(text):
    """The folders of a comma-separated --data_dir flag."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _common_structure(datasets):
    """The datasets, each reduced to the keys (with the same shapes) that all of them have: a
    folder of photos has no gt/*, so a mixture read with augment=False leaves gt/* out."""
    specs = [dataset.element_spec for dataset in datasets]
    keys = [key for key in specs[0]
            if all(key in spec and spec[key].shape.as_list() == specs[0][key].shape.as_list()
                   for spec in specs)]
    return [dataset if set(spec) == set(keys) else dataset.map(lambda s: {k: s[k] for k in keys})
            for dataset, spec in zip(datasets, specs)]


def _fill_ground_truth(datasets):
    """The datasets, those without ground truth given the others' (zeros of the same shapes,
    gt/flipped False, gt/present 0): a mixture of synthetic and photo folders read with
    keep_ground_truth. Unchanged when none or all of them carry it."""
    specs = [dataset.element_spec for dataset in datasets]
    carrying = [spec for spec in specs if GT_PRESENT in spec]
    if not carrying or len(carrying) == len(specs):
        return datasets
    reference = carrying[0]
    for spec in carrying[1:]:
        for key in TRAINING_GROUND_TRUTH:
            if spec[key].shape.as_list() != reference[key].shape.as_list():
                raise DataError("the data folders' ground truth differs in shape: %s is %s in one, %s in another"
                                % (key, reference[key].shape.as_list(), spec[key].shape.as_list()))

    def filled(sample):
        out = dict(sample)
        for key in TRAINING_GROUND_TRUTH:
            out[key] = tf.zeros(reference[key].shape, reference[key].dtype)
        out[GT_FLIPPED] = tf.constant(False)
        out[GT_SCALE] = tf.constant(1.0)
        out[GT_PRESENT] = tf.constant(0.0)
        return out
    return [dataset if GT_PRESENT in spec else dataset.map(filled) for dataset, spec in zip(datasets, specs)]


def _mixed_dataset(mixture, batch_size, augment, shuffle, repeat, seed, skipped, shard=None,
                   keep_ground_truth=False):
    """make_dataset of a Mixture: each folder's samples (repeated, shuffled unless shuffle=False),
    drawn with the mixture's weights, then batched. With a shard, each folder is sharded alike (a
    cluster replica reads its share of every folder)."""
    if not repeat:
        raise ValueError("a Mixture is sampled for training and needs repeat=True (read its folders "
                         "one by one to go through each once)")
    datasets, weights = [], []
    for k, (pattern, weight) in enumerate(zip(mixture.patterns, mixture.weights)):
        if weight > 0:
            # Distinct op seeds per folder (augment_sample uses seed .. seed + 2), so that the
            # folders are not shuffled and augmented with the same draws.
            folder_seed = None if seed is None else seed + 10 * k
            datasets.append(make_dataset(pattern, None, augment=augment, shuffle=shuffle, repeat=True,
                                         seed=folder_seed, skipped=skipped, shard=shard,
                                         keep_ground_truth=keep_ground_truth))
            weights.append(weight)
    if keep_ground_truth and augment:
        datasets = _fill_ground_truth(datasets)
    datasets = _common_structure(datasets)
    if len(datasets) == 1:
        mixed = datasets[0]
    else:
        mixed = tf.data.Dataset.sample_from_datasets(datasets, weights=weights, seed=seed)
    if batch_size is None:
        return mixed
    return mixed.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
