"""Checkpoint folder housekeeping that tf.compat.v1.train.Saver does not do across runs.

A Saver deletes the checkpoints beyond its max_to_keep, but only those it wrote itself: after a
resume the checkpoints of earlier runs are forgotten (the `checkpoint` state file is rewritten
with the new run's list) and stay on disk forever. And a save killed half-way leaves its
temporaries (`<prefix>.<file>.tempstate<random>` data and index files, a `<prefix>_temp/` folder of
shards, `checkpoint.tmp<random>`), which no run ever removes. `tidy_for_resume` does both, once,
before a run's first save.
"""
import glob
import os
import re
import shutil


def checkpoints_on_disk(folder, name):
    """Prefixes `folder/name-<step>` of the complete checkpoints there (an .index file), by step."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(folder), glob.escape(name) + "-*.index")):
        match = re.fullmatch(re.escape(name) + r"-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[:-len(".index")]))
    return [prefix for _, prefix in sorted(found)]


def remove_unfinished_saves(folder):
    """Deletes the temporaries of saves that were killed before they finished; returns their paths."""
    escaped = glob.escape(folder)
    stale = (glob.glob(os.path.join(escaped, "*.tempstate*")) + glob.glob(os.path.join(escaped, "*_temp"))
             + glob.glob(os.path.join(escaped, "checkpoint.tmp*")))
    for path in stale:
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return sorted(stale)


def delete_checkpoint(prefix):
    """Deletes the files of checkpoint `prefix` (.index, .data-*, .meta)."""
    for path in glob.glob(glob.escape(prefix) + ".*"):
        os.remove(path)


def tidy_for_resume(saver, folder, name, max_to_keep):
    """Removes killed saves' temporaries and all but the newest `max_to_keep` checkpoints
    `folder/name-<step>` (earlier runs' included), and hands the kept ones to `saver`, so that
    it deletes them in turn as it saves new ones.

    Returns (removed temporaries, deleted checkpoint prefixes).
    """
    removed = remove_unfinished_saves(folder)
    prefixes = checkpoints_on_disk(folder, name)
    deleted, kept = prefixes[:-max_to_keep], prefixes[-max_to_keep:]
    for prefix in deleted:
        delete_checkpoint(prefix)
    saver.recover_last_checkpoints(kept)
    return removed, deleted


def keep_only_latest(folder, name):
    """Deletes every checkpoint `folder/name-<step>` but the one with the highest step."""
    for prefix in checkpoints_on_disk(folder, name)[:-1]:
        delete_checkpoint(prefix)

