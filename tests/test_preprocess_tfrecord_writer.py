"""preprocess/tfrecord_writer.py: examples in the schema, shards renamed only when complete."""
import os

import numpy as np
import pytest
import tensorflow as tf

from preprocess import schema, tfrecord_writer


def _example(index):
    return tfrecord_writer.make_example(b"img%d" % index, np.zeros((68, 2)), b"seg", "f.jpg",
                                        np.eye(2, 3))


def _count(path):
    return sum(1 for _ in tf.compat.v1.io.tf_record_iterator(path))


def test_records_are_split_into_shards_of_the_given_size(tmp_path):
    with tfrecord_writer.ShardedWriter(str(tmp_path), "x", records_per_shard=3) as writer:
        for index in range(7):
            writer.write(_example(index))
    assert [os.path.basename(p) for p in writer.paths] == [
        "x-00000.tfrecord", "x-00001.tfrecord", "x-00002.tfrecord"]
    assert [_count(p) for p in writer.paths] == [3, 3, 1]


def test_a_shard_in_progress_has_a_temporary_name(tmp_path):
    writer = tfrecord_writer.ShardedWriter(str(tmp_path), "x", records_per_shard=3)
    writer.write(_example(0))
    (name,) = os.listdir(tmp_path)
    assert name.startswith(".x-00000.tfrecord.") and name.endswith(".partial")
    writer.close()
    assert sorted(os.listdir(tmp_path)) == ["x-00000.tfrecord"]


def test_an_error_discards_the_unfinished_shard_and_keeps_finished_ones(tmp_path):
    with pytest.raises(RuntimeError):
        with tfrecord_writer.ShardedWriter(str(tmp_path), "x", records_per_shard=2) as writer:
            for index in range(3):
                writer.write(_example(index))
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["x-00000.tfrecord"]


def test_example_holds_the_schema_keys(tmp_path):
    feature = tf.train.Example.FromString(_example(4)).features.feature
    assert set(feature) == set(schema.REQUIRED_KEYS)
    assert feature[schema.IMAGE].bytes_list.value[0] == b"img4"
    assert len(feature[schema.LANDMARKS].float_list.value) == 136


def test_ground_truth_adds_the_gt_keys():
    truth = dict(coefficients=np.ones(5), displacement=np.zeros((4, 4)), points_px=np.ones((3, 3)))
    record = tfrecord_writer.make_example(b"i", np.zeros((68, 2)), b"s", "f", np.eye(2, 3), truth)
    feature = tf.train.Example.FromString(record).features.feature
    assert set(feature) == set(schema.REQUIRED_KEYS) | set(schema.GROUND_TRUTH_KEYS)
    assert feature[schema.GT_DISPLACEMENT_SIZE].int64_list.value[0] == 4


def test_crop_matrix_of_the_wrong_size_is_an_error():
    with pytest.raises(ValueError, match="crop_matrix must have 6 values"):
        tfrecord_writer.make_example(b"i", np.zeros((68, 2)), b"s", "f", np.zeros(5))


def test_a_killed_run_s_temporary_shard_counts_as_existing_and_overwrite_removes_it(tmp_path):
    killed = tfrecord_writer.ShardedWriter(str(tmp_path), "x", records_per_shard=3)
    killed.write(_example(0))          # never closed: the process "died" here
    with pytest.raises(FileExistsError, match="1 shard"):
        tfrecord_writer.ShardedWriter(str(tmp_path), "x")
    with tfrecord_writer.ShardedWriter(str(tmp_path), "x", overwrite=True) as writer:
        writer.write(_example(1))
    assert sorted(os.listdir(tmp_path)) == ["x-00000.tfrecord"]
