"""One preprocessing run split into shards that a job array writes independently, and resumed.

    python preprocess/synthesize.py --num 100000 --out data/synthetic --num_shards 8 --shard_index 3

--num_shards N --shard_index i: the run's work items (the synthetic sample indices 0..num-1, or
the sorted photo list) are split into N contiguous blocks of sizes differing by at most one
(`shard_range`); shard i processes block i only, with everything else unchanged (a synthetic
sample keeps its seed pair (seed, index)), so the N shards together hold exactly the records of
the single run, in the same order when read shard by shard. Shard i writes under the file prefix
`<prefix>-shardIIIII-of-NNNNN` (`file_prefix`): its tfrecord files, its summary and its manifest
never collide with another shard's. N = 1 (the default) is the single run, under `<prefix>`.

Resuming. Every run (sharded or not) keeps a manifest `<file prefix>-manifest.json` beside its
files: written before the first record with the run's settings and "complete": false, and
replaced (atomically, model/output_files.py) after the last tfrecord file and the summary with
"complete": true and each file's name, record count and size in bytes. Run again, a shard is
  - skipped when its manifest is complete, has the same settings, and every file it lists is
    there at its recorded size;
  - redone (its files deleted first) when its manifest has the same settings but is incomplete
    (the job was killed) or a file is missing or has another size (truncated, damaged);
  - refused (FileExistsError naming a setting that differs) when its manifest, or the manifest of
    another shard of the same prefix in the folder, has other settings: a job array whose jobs
    were started with different flags would be read as one data set. `overwrite` replaces the
    shard instead (and does not look at the other shards);
  - refused by the writer (preprocess/tfrecord_writer.py) when files of this prefix are there
    with no manifest at all (another program's, or an older version's output), unless `overwrite`.
Settings are what determines the records (not --workers); the writers pass them in.
"""
import glob
import json
import os

from model import output_files

MANIFEST_SUFFIX = "-manifest.json"
_MANIFEST_VERSION = 1


def define_flags(flags):
    """--num_shards and --shard_index (and their check) on an absl `flags` module."""
    flags.DEFINE_integer("num_shards", 1, "Split the run into this many shards (a job array writes "
                         "one each, see preprocess/sharding.py).", lower_bound=1)
    flags.DEFINE_integer("shard_index", 0, "The shard this run writes, 0 .. --num_shards - 1.",
                         lower_bound=0)
    flags.register_multi_flags_validator(
        ["num_shards", "shard_index"], lambda v: v["shard_index"] < v["num_shards"],
        message="--shard_index must be less than --num_shards (shards are numbered from 0)")


def check_shard(num_shards, shard_index):
    """Raises ValueError naming the flags unless 0 <= shard_index < num_shards."""
    if num_shards < 1:
        raise ValueError("--num_shards must be >= 1, got %d" % num_shards)
    if not 0 <= shard_index < num_shards:
        raise ValueError("--shard_index must be in 0 .. %d (--num_shards %d), got %d"
                         % (num_shards - 1, num_shards, shard_index))


def shard_range(num_items, num_shards, shard_index):
    """range of the item indices of shard `shard_index`: block i of `num_shards` contiguous blocks
    covering 0 .. num_items - 1, sizes differing by at most one (empty when num_items < num_shards)."""
    check_shard(num_shards, shard_index)
    return range(num_items * shard_index // num_shards, num_items * (shard_index + 1) // num_shards)


def file_prefix(prefix, num_shards, shard_index):
    """The prefix of a shard's files: `prefix` itself for a single run."""
    if num_shards == 1:
        return prefix
    return "%s-shard%05d-of-%05d" % (prefix, shard_index, num_shards)


def _read_manifest(path):
    """The manifest dict, or None when the file is missing or not a manifest (a damaged one
    counts as none: the shard is then redone or refused as if it had none)."""
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        return None
    return manifest


def _difference(ours, theirs, ignore=()):
    """'key: ours here, theirs there' for the first setting that differs, or None."""
    for key in sorted(set(ours) | set(theirs)):
        if key not in ignore and ours.get(key) != theirs.get(key):
            return "%s: %r in this run, %r there" % (key, ours.get(key), theirs.get(key))
    return None


class Shard:
    """One shard of a run: decides whether to skip, redo or refuse it, and writes its manifest.

        shard = Shard(out_dir, prefix, num_shards, shard_index, settings, overwrite)
        if shard.complete is not None:          # nothing to do: shard.complete is the manifest
            ...
        with ShardedWriter(out_dir, shard.prefix, ..., overwrite=shard.redo) as writer:
            shard.begin()
            ...
        (summary)
        shard.finish(writer, extra)

    Args:
      out_dir: the output folder (need not exist yet).
      prefix: the run's --prefix (checked by the writer).
      num_shards, shard_index: as the flags (ValueError when out of range).
      settings: JSON-serialisable dict of what determines the records.
      overwrite: replace this shard whatever its state.
    Attributes:
      prefix: the shard's file prefix.
      complete: the manifest of a complete shard with these settings (skip it), or None.
      redo: whether files of this prefix are to be deleted before writing (pass it to the
        writer as `overwrite`).
    Raises:
      FileExistsError: a manifest of this shard or of another shard of `prefix` in out_dir has
        other settings (unless overwrite).
    """

    def __init__(self, out_dir, prefix, num_shards, shard_index, settings, overwrite=False):
        check_shard(num_shards, shard_index)
        self.out_dir = out_dir
        self.prefix = file_prefix(prefix, num_shards, shard_index)
        self.settings = dict(settings, num_shards=num_shards, shard_index=shard_index)
        self.manifest_path = os.path.join(out_dir, self.prefix + MANIFEST_SUFFIX)
        self.complete = None
        self.redo = overwrite
        if overwrite:
            return
        manifest = _read_manifest(self.manifest_path)
        if manifest is not None:
            difference = _difference(self.settings, manifest["settings"])
            if difference is not None:
                raise FileExistsError(
                    "%s holds %s, written with other settings (%s); choose another --out or pass "
                    "--overwrite" % (out_dir, self.manifest_path, difference))
            if manifest.get("complete") and self._files_intact(manifest):
                self.complete = manifest
                return
            self.redo = True    # killed or damaged: redo it
        self._check_other_shards(prefix)

    def _files_intact(self, manifest):
        for entry in manifest.get("files", []):
            path = os.path.join(self.out_dir, entry["name"])
            if not os.path.isfile(path) or os.path.getsize(path) != entry["bytes"]:
                return False
        return True

    def _check_other_shards(self, prefix):
        pattern = glob.escape(prefix) + "-shard*-of-*" + MANIFEST_SUFFIX
        paths = glob.glob(os.path.join(glob.escape(self.out_dir), pattern))
        paths.append(os.path.join(self.out_dir, prefix + MANIFEST_SUFFIX))
        for path in sorted(paths):
            if os.path.abspath(path) == os.path.abspath(self.manifest_path):
                continue
            manifest = _read_manifest(path)
            if manifest is None:
                continue
            difference = _difference(self.settings, manifest["settings"], ignore=("shard_index",))
            if difference is not None:
                raise FileExistsError(
                    "%s holds another shard of prefix %r written with other settings (%s: %s); the "
                    "shards of one run must share them: choose another --out or --prefix, or pass "
                    "--overwrite" % (self.out_dir, prefix, os.path.basename(path), difference))

    @property
    def paths(self):
        """The tfrecord files of a complete shard (from its manifest)."""
        return [os.path.join(self.out_dir, entry["name"]) for entry in self.complete["files"]]

    def _write(self, manifest):
        with output_files.replacing(self.manifest_path, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.write("\n")

    def begin(self):
        """Marks the shard as in progress (call once the writer has made the folder)."""
        self._write(dict(version=_MANIFEST_VERSION, settings=self.settings, complete=False))

    def finish(self, paths, counts, extra=None):
        """Marks the shard complete: `paths` its tfrecord files, `counts` their record counts,
        `extra` more JSON-serialisable facts for the manifest (e.g. skipped photos by reason)."""
        files = [dict(name=os.path.basename(path), records=int(count), bytes=os.path.getsize(path))
                 for path, count in zip(paths, counts)]
        self._write(dict(version=_MANIFEST_VERSION, settings=self.settings, complete=True,
                         files=files, records=sum(entry["records"] for entry in files),
                         **(extra or {})))
