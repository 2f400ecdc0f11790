"""preprocess/sharding.py with synthesize.py: shards of a job array = the single run; resuming."""
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from preprocess import sharding, synthesize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(seed=4, map_size=32, records_per_shard=2, progress=False)
NUM = 5


def read_records(paths):
    return [record for path in paths for record in tf.compat.v1.io.tf_record_iterator(path)]


@pytest.mark.parametrize("num_items, num_shards", [(0, 1), (1, 3), (5, 2), (7, 7), (10, 3), (1001, 8)])
def test_shard_ranges_cover_the_items_once_in_order_with_sizes_within_one(num_items, num_shards):
    ranges = [sharding.shard_range(num_items, num_shards, i) for i in range(num_shards)]
    assert [i for r in ranges for i in r] == list(range(num_items))
    sizes = [len(r) for r in ranges]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("num_shards, shard_index", [(2, 2), (2, -1), (0, 0)])
def test_a_shard_out_of_range_is_a_value_error_naming_the_flags(num_shards, shard_index):
    with pytest.raises(ValueError, match="--(shard_index|num_shards)"):
        sharding.shard_range(3, num_shards, shard_index)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One full run, and the same run as shards 0 and 1 of 2 into one folder."""
    root = tmp_path_factory.mktemp("sharding")
    full = synthesize.synthesize(NUM, str(root / "full"), **SETTINGS)
    shards = [synthesize.synthesize(NUM, str(root / "sharded"), num_shards=2, shard_index=i, **SETTINGS)
              for i in range(2)]
    return root, full, shards


def test_two_shards_hold_exactly_the_records_of_the_single_run(runs):
    _, full, shards = runs
    assert read_records(shards[0] + shards[1]) == read_records(full)
    assert [len(read_records(paths)) for paths in shards] == [2, 3]
    assert [os.path.basename(p) for p in shards[1]] == [
        "synthetic-shard00001-of-00002-00000.tfrecord", "synthetic-shard00001-of-00002-00001.tfrecord"]


def test_a_complete_shard_is_skipped_without_rendering(runs, monkeypatch):
    root, _, shards = runs
    before = {p: os.stat(p).st_mtime_ns for p in shards[0]}

    def fail(_):
        raise AssertionError("a complete shard was rendered again")
    monkeypatch.setattr(synthesize, "_make_record", fail)
    again = synthesize.synthesize(NUM, str(root / "sharded"), num_shards=2, shard_index=0, workers=1,
                                  **SETTINGS)
    assert again == shards[0]
    assert {p: os.stat(p).st_mtime_ns for p in shards[0]} == before


def test_a_truncated_shard_is_redone(tmp_path, runs):
    _, _, shards = runs
    out = str(tmp_path)
    paths = synthesize.synthesize(NUM, out, num_shards=2, shard_index=1, **SETTINGS)
    expected = read_records(paths)
    with open(paths[0], "r+b") as f:
        f.truncate(os.path.getsize(paths[0]) // 2)
    again = synthesize.synthesize(NUM, out, num_shards=2, shard_index=1, **SETTINGS)
    assert again == paths and read_records(again) == expected == read_records(shards[1])


def test_a_killed_shard_is_redone(tmp_path):
    out = str(tmp_path)
    paths = synthesize.synthesize(NUM, out, num_shards=2, shard_index=0, **SETTINGS)
    expected = read_records(paths)
    manifest_path = tmp_path / "synthetic-shard00000-of-00002-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["complete"] and manifest["records"] == 2
    # As a job killed after its first file: the in-progress manifest and one finished file.
    manifest_path.write_text(json.dumps(dict(settings=manifest["settings"], complete=False)))
    os.remove(paths[0])
    again = synthesize.synthesize(NUM, out, num_shards=2, shard_index=0, **SETTINGS)
    assert read_records(again) == expected
    assert json.loads(manifest_path.read_text())["complete"]


def test_a_shard_of_other_settings_is_refused_and_overwrite_replaces_it(tmp_path):
    out = str(tmp_path)
    synthesize.synthesize(NUM, out, num_shards=2, shard_index=0, **SETTINGS)
    with pytest.raises(FileExistsError, match="seed: 5 in this run, 4 there.*--overwrite"):
        synthesize.synthesize(NUM, out, num_shards=2, shard_index=0, **dict(SETTINGS, seed=5))
    # Another shard of the same run with other settings would mix two data sets too.
    with pytest.raises(FileExistsError, match="another shard.*seed: 5 in this run, 4 there"):
        synthesize.synthesize(NUM, out, num_shards=2, shard_index=1, **dict(SETTINGS, seed=5))
    paths = synthesize.synthesize(NUM, out, num_shards=2, shard_index=0, overwrite=True,
                                  **dict(SETTINGS, seed=5))
    assert [r.count(b"synthetic/5/") for r in read_records(paths)] == [1, 1]


def run_script(name, *flags):
    return subprocess.run([sys.executable, os.path.join(REPO, "preprocess", name)] + list(flags),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name, flags", [
    ("synthesize.py", ["--num=2"]), ("make_tfrecords.py", ["--images=."])])
def test_a_shard_index_past_the_last_shard_is_a_flag_error(tmp_path, name, flags):
    done = run_script(name, "--out=%s" % (tmp_path / "out"), "--num_shards=2", "--shard_index=2", *flags)
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        "FATAL Flags parsing error: flags num_shards=2, shard_index=2: --shard_index must be less "
        "than --num_shards (shards are numbered from 0)")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_a_shard_of_another_face_model_file_at_the_same_path_is_refused(tmp_path, monkeypatch):
    from model.face import file_format
    out = str(tmp_path)
    synthesize.synthesize(NUM, out, num_shards=2, shard_index=0, **SETTINGS)
    monkeypatch.setattr(file_format, "file_sha256", lambda path: "0" * 64)
    with pytest.raises(FileExistsError, match="face_model_sha256"):
        synthesize.synthesize(NUM, out, num_shards=2, shard_index=0, **SETTINGS)
