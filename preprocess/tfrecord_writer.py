"""Encoding samples as `tf.train.Example` and writing them into sharded tfrecord files.

A shard is written through model.output_files (a temporary beside it, renamed only when it is
complete), so an interrupted run never leaves a truncated file that looks like a finished shard.
"""
import glob
import os

import numpy as np
import tensorflow as tf

from model import output_files
from preprocess import schema


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(
        value=np.asarray(values, dtype=np.float32).ravel()))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(
        value=np.asarray(values, dtype=np.int64).ravel()))


def make_example(image_bytes, landmarks, segmentation_bytes, source_filename, crop_matrix,
                 ground_truth=None):
    """One serialized `tf.train.Example` in the schema of `preprocess.schema`.

    Args:
      image_bytes: encoded 300 x 300 RGB crop (PNG or JPEG).
      landmarks: [68, 2] crop pixels.
      segmentation_bytes: PNG of the uint8 label image.
      source_filename: str.
      crop_matrix: [2, 3] photo -> crop affine.
      ground_truth: optional dict with `coefficients` [C], `displacement` [S, S] (mm),
        `points_px` [N, 3] crop-space points (u, v, depth) of the coarse vertices.
    Returns:
      bytes.
    """
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.shape != (schema.NUM_LANDMARKS, 2):
        raise ValueError("landmarks must be [68, 2], got %s" % (landmarks.shape,))
    crop_matrix = np.asarray(crop_matrix, dtype=np.float32)
    if crop_matrix.size != 6:
        raise ValueError("crop_matrix must have 6 values, got %s" % (crop_matrix.shape,))
    feature = {
        schema.IMAGE: _bytes(image_bytes),
        schema.LANDMARKS: _floats(landmarks),
        schema.SEGMENTATION: _bytes(segmentation_bytes),
        schema.SOURCE_FILENAME: _bytes(os.fsencode(source_filename)),
        schema.CROP_MATRIX: _floats(crop_matrix),
    }
    if ground_truth is not None:
        displacement = np.asarray(ground_truth["displacement"], dtype=np.float32)
        if displacement.ndim != 2 or displacement.shape[0] != displacement.shape[1]:
            raise ValueError("displacement must be square [S, S], got %s" % (displacement.shape,))
        feature[schema.GT_COEFFICIENTS] = _floats(ground_truth["coefficients"])
        feature[schema.GT_DISPLACEMENT] = _floats(displacement)
        feature[schema.GT_DISPLACEMENT_SIZE] = _ints([displacement.shape[0]])
        feature[schema.GT_POINTS_PX] = _floats(ground_truth["points_px"])
    # Deterministic: protobuf map order otherwise varies between processes, and the same sample
    # written by a worker or by the parent would differ byte for byte.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
        deterministic=True)


class ShardedWriter:
    """Writes records into `<out_dir>/<prefix>-NNNNN.tfrecord`, `records_per_shard` each.

    Refuses to start when shards with this prefix already exist (a mix of two runs would be
    read as one data set) unless `overwrite`, which deletes them first.
    Use as a context manager; `paths` lists the finished shards, `counts` their record counts.
    Raises ValueError for a prefix that is not a plain file name (it would write outside
    out_dir), OSError naming out_dir when it can't be created or written.
    """

    def __init__(self, out_dir, prefix, records_per_shard=1000, overwrite=False):
        if records_per_shard < 1:
            raise ValueError("records_per_shard must be >= 1, got %d" % records_per_shard)
        if not prefix or prefix.startswith(".") or os.path.basename(prefix) != prefix or (
                os.altsep and os.altsep in prefix):
            raise ValueError("prefix %r must be a plain file name (no folder, not starting with '.')"
                             % prefix)
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as error:
            raise OSError("cannot create the output folder %s: %s" % (out_dir, error.strerror)) from None
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise PermissionError("the output folder %s is not writable" % out_dir)
        name_pattern = glob.escape(prefix) + "-*" + schema.SHARD_SUFFIX
        existing = sorted(glob.glob(os.path.join(glob.escape(out_dir), name_pattern))
                          + output_files.leftover_temporaries(out_dir, name_pattern))
        if existing and not overwrite:
            raise FileExistsError("%s already holds %d shard(s) named %s-*%s (e.g. %s); choose "
                                  "another --out or pass --overwrite"
                                  % (out_dir, len(existing), prefix, schema.SHARD_SUFFIX,
                                     existing[0]))
        for path in existing:
            os.remove(path)
        self._out_dir = out_dir
        self._prefix = prefix
        self._records_per_shard = records_per_shard
        self._writer = None
        self._pending = None
        self._count_in_shard = 0
        self.num_records = 0
        self.paths = []
        self.counts = []

    def _shard_path(self):
        return os.path.join(self._out_dir, "%s-%05d%s" % (self._prefix, len(self.paths),
                                                          schema.SHARD_SUFFIX))

    def write(self, record):
        if self._writer is None:
            self._pending = output_files.PendingFile(self._shard_path())
            self._writer = tf.io.TFRecordWriter(self._pending.temporary)
        self._writer.write(record)
        self._count_in_shard += 1
        self.num_records += 1
        if self._count_in_shard == self._records_per_shard:
            self._finish_shard()

    def _finish_shard(self):
        self._writer.close()
        self._pending.commit()
        self.paths.append(self._pending.path)
        self.counts.append(self._count_in_shard)
        self._writer = None
        self._count_in_shard = 0

    def close(self):
        if self._writer is not None:
            self._finish_shard()

    def abandon(self):
        """Closes and deletes the shard in progress (after an error); finished shards stay."""
        if self._writer is not None:
            self._writer.close()
            self._pending.discard()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.close()
        else:
            self.abandon()
        return False
