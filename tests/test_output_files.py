"""model/output_files.py: a failed write leaves the previous file or nothing, never a partial one."""
import os
import stat

import pytest

from model import output_files


def test_a_completed_write_replaces_the_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with output_files.replacing(target, "w") as f:
        f.write("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_an_error_while_writing_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with output_files.replacing(target, "w") as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_an_error_on_a_new_file_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with output_files.replacing(tmp_path / "new.bin") as f:
            f.write(b"x")
            raise RuntimeError
    assert os.listdir(tmp_path) == []


def test_a_folder_in_the_way_is_an_error_naming_it(tmp_path):
    (tmp_path / "out.obj").mkdir()
    with pytest.raises(IsADirectoryError, match="out.obj: it is a folder"):
        with output_files.replacing(tmp_path / "out.obj", "w"):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_an_error_before_anything_is_written(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            with output_files.replacing(tmp_path / "out.txt", "w"):
                pass
    finally:
        tmp_path.chmod(0o700)
    assert (tmp_path / "out.txt").read_text() == "old"


def test_written_files_get_the_permissions_open_would_give(tmp_path):
    mask = os.umask(0o022)
    try:
        with output_files.replacing(tmp_path / "a.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode) == 0o644


def test_files_written_together_are_all_replaced_or_none(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(OSError):
        with output_files.replacing_together([a, b]) as (pa, pb):
            with pa.open("w") as f:
                f.write("new a")
            raise OSError("no space left on device")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    with output_files.replacing_together([a, b]) as (pa, pb):
        for pending, text in ((pa, "new a"), (pb, "new b")):
            with pending.open("w") as f:
                f.write(text)
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_leftover_temporaries_of_a_killed_writer_are_found(tmp_path):
    pending = output_files.PendingFile(tmp_path / "x-00000.tfrecord")   # never committed: "killed"
    output_files.PendingFile(tmp_path / "other.txt")
    assert output_files.leftover_temporaries(str(tmp_path), "x-*.tfrecord") == [pending.temporary]
