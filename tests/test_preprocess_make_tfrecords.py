"""preprocess/make_tfrecords.py: a folder of good and bad photos -> exactly the good ones, counted."""
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from model.face import framing
from preprocess import faces, images, make_tfrecords, schema
from tests.test_preprocess_faces import two_faces
from tests.test_preprocess_images import write_huge_gray_png, write_png_16bit_rgb

GOOD = ["astronaut.jpg", "gray.png", "rgba.png", "deep16.png", "sub/two_faces.jpg"]
BAD = {"truncated.jpg": "unreadable", "empty.jpg": "unreadable", "notes.jpg": "unreadable",
       "huge.png": "unreadable", "coffee.png": "no face"}


def make_photo_folder(folder):
    """Writes the good and bad inputs of the issue into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    astronaut = skimage.data.astronaut()
    Image.fromarray(astronaut).save(folder / "astronaut.jpg", quality=92)
    Image.fromarray(astronaut).convert("L").save(folder / "gray.png")
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 255, np.uint8)], 2)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    write_png_16bit_rgb(folder / "deep16.png", astronaut.astype(np.uint16) * 257)
    Image.fromarray(two_faces(astronaut)).save(folder / "sub" / "two_faces.jpg", quality=92)
    data = (folder / "astronaut.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo\n")
    write_huge_gray_png(folder / "huge.png", 10000)
    Image.fromarray(skimage.data.coffee()).save(folder / "coffee.png")


def read_examples(paths):
    examples = []
    for path in paths:
        for record in tf.compat.v1.io.tf_record_iterator(path):
            examples.append(tf.train.Example.FromString(record).features.feature)
    return examples


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    make_photo_folder(root / "in")
    result = make_tfrecords.make_tfrecords(str(root / "in"), str(root / "out"), workers=2,
                                           records_per_shard=2, progress=False)
    return root, result


def test_exactly_the_good_photos_are_written(run):
    root, result = run
    examples = read_examples(result["shards"])
    names = sorted(os.path.relpath(e[schema.SOURCE_FILENAME].bytes_list.value[0].decode(),
                                   root / "in") for e in examples)
    assert names == sorted(GOOD)
    assert result["written"] == len(GOOD)


def test_bad_files_are_counted_by_reason_with_one_line_each(run):
    _, result = run
    expected = {}
    for reason in BAD.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(result["skipped"]) == expected
    assert len(result["messages"]) == len(BAD)
    for name in BAD:
        assert sum(name in m for m in result["messages"]) == 1
    assert all("\n" not in m for m in result["messages"])


def test_shards_are_complete_and_no_temporary_file_remains(run):
    root, result = run
    assert [os.path.basename(p) for p in result["shards"]] == [
        "photos-00000.tfrecord", "photos-00001.tfrecord", "photos-00002.tfrecord"]
    assert not [f for f in os.listdir(root / "out") if f.endswith(".partial")]
    summary = (root / "out" / "photos-summary.txt").read_text()
    assert "written: 5 record(s) in 3 shard(s)" in summary and "no face: 1" in summary


def test_crop_matrix_maps_the_photo_landmarks_onto_the_record_landmarks(run):
    root, result = run
    example = read_examples(result["shards"][:1])[0]
    path = example[schema.SOURCE_FILENAME].bytes_list.value[0].decode()
    assert path.endswith("astronaut.jpg")
    image = images.load_image(path)
    photo_landmarks = faces.predict_landmarks(image, faces.detect_largest_face(image))
    matrix = np.array(example[schema.CROP_MATRIX].float_list.value).reshape(2, 3)
    landmarks = np.array(example[schema.LANDMARKS].float_list.value).reshape(68, 2)
    np.testing.assert_allclose(framing.apply_affine(matrix, photo_landmarks), landmarks, atol=1e-3)


def test_existing_shards_are_not_silently_mixed(run):
    root, _ = run
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_tfrecords.make_tfrecords(str(root / "in"), str(root / "out"), progress=False)


def test_command_line_exits_nonzero_when_nothing_is_written(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.jpg").write_bytes(b"")
    script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "preprocess",
                          "make_tfrecords.py")
    done = subprocess.run([sys.executable, script, "--images", str(tmp_path / "in"),
                           "--out", str(tmp_path / "out"), "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "empty.jpg: empty file" in done.stderr
    assert "written: 0" in done.stdout


def test_max_pixels_below_one_is_refused_as_a_flag(tmp_path):
    script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "preprocess", "make_tfrecords.py")
    done = subprocess.run([sys.executable, script, "--images", str(tmp_path), "--out", str(tmp_path / "out"),
                           "--max_pixels=0"], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "FATAL Flags parsing error: flag --max_pixels=0: 0 is not a positive integer" in done.stderr
    assert not (tmp_path / "out").exists()



@pytest.fixture(scope="module")
def sharded(run):
    """The run of `run` as shards 0 and 1 of 2 into one folder."""
    root, _ = run
    out = str(root / "sharded")
    return out, [make_tfrecords.make_tfrecords(str(root / "in"), out, workers=1, records_per_shard=2,
                                               progress=False, num_shards=2, shard_index=i)
                 for i in range(2)]


def test_two_shards_hold_exactly_the_records_of_the_single_run(run, sharded):
    _, result = run
    _, shards = sharded
    records = lambda paths: [r for p in paths for r in tf.compat.v1.io.tf_record_iterator(p)]  # noqa: E731
    assert records(shards[0]["shards"] + shards[1]["shards"]) == records(result["shards"])
    assert shards[0]["skipped"] + shards[1]["skipped"] == result["skipped"]
    assert [s["written"] for s in shards] == [3, 2]   # astronaut, deep16, gray | rgba, two_faces


def test_a_complete_shard_is_skipped_with_its_summary(run, sharded):
    root, _ = run
    out, shards = sharded
    before = [os.stat(p).st_mtime_ns for p in shards[1]["shards"]]
    again = make_tfrecords.make_tfrecords(str(root / "in"), out, records_per_shard=2, progress=False,
                                          num_shards=2, shard_index=1)
    assert again["already_complete"] and again["shards"] == shards[1]["shards"]
    assert [os.stat(p).st_mtime_ns for p in again["shards"]] == before
    assert (again["written"], again["skipped"], again["summary"]) == (
        shards[1]["written"], shards[1]["skipped"], shards[1]["summary"])


def test_shards_of_another_photo_list_are_not_taken_as_complete(run, sharded):
    root, _ = run
    out, _ = sharded
    # A photo added to the folder changes the split.
    Image.fromarray(skimage.data.astronaut()).save(root / "in" / "zz_new.png")
    try:
        with pytest.raises(FileExistsError, match="file_list_sha256"):
            make_tfrecords.make_tfrecords(str(root / "in"), out, records_per_shard=2, progress=False,
                                          num_shards=2, shard_index=1)
    finally:
        os.remove(root / "in" / "zz_new.png")
