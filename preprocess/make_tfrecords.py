"""Turns a folder of photos into training tfrecords (schema: preprocess/schema.py).

    python preprocess/make_tfrecords.py --images DIR --out DIR [--detector hog|cnn] [--workers N]

Every regular file under --images (recursively, hidden files excepted, in sorted order) is tried
as a photo: faces are detected (the largest is kept), 68 landmarks found, the 300 x 300 crop made
and segmented (preprocess/photo.py). Photos are processed in parallel by worker processes, each
of which loads the dlib models once; records are written in file order, so the output does not
depend on --workers. A file that cannot be used gets one line naming it and the reason, and is
counted; it never stops the others. Shards and the summary are written under
temporary names and renamed when complete (model/output_files.py). The summary (written, skipped by reason) is printed and saved as
`<out>/<prefix>-summary.txt`.

A job array splits the work with --num_shards N --shard_index i: shard i processes its
contiguous block of the sorted photo list (preprocess/sharding.py), under the file prefix
`<prefix>-shardIIIII-of-NNNNN`; a shard already complete with the same settings is skipped, a
half-written one redone.

Exit status: 0 when at least one record was written (or the shard was already complete with
records), 1 otherwise.
"""
import collections
import hashlib
import os
import sys

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags
from tqdm import tqdm

from model import output_files
from preprocess import images, parallel, photo, sharding

FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags, defined only when this file runs as a program (other programs
    import this module and have flags of their own)."""
    flags.DEFINE_string("images", None, "Folder of photos (searched recursively).")
    flags.DEFINE_string("out", None, "Output folder for the tfrecord shards and the summary.")
    flags.DEFINE_enum("detector", "hog", ["hog", "cnn"], "dlib face detector: HOG (fast) or CNN.")
    flags.DEFINE_integer("workers", os.cpu_count() or 1, "Worker processes (1 = no pool).", lower_bound=1)
    flags.DEFINE_integer("records_per_shard", 1000, "Records per tfrecord shard.", lower_bound=1)
    flags.DEFINE_string("prefix", "photos", "Shard file name prefix (a plain file name).")
    flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of the crops.")
    flags.DEFINE_integer("max_pixels", images.DEFAULT_MAX_PIXELS,
                         "Photos with more pixels are skipped (checked before decoding).", lower_bound=1)
    flags.DEFINE_bool("overwrite", False, "Replace shards with the same prefix already in --out.")
    sharding.define_flags(flags)


def list_photos(folder):
    """Regular, non-hidden files under `folder`, sorted; raises ValueError if there are none."""
    if not os.path.isdir(folder):
        raise ValueError("--images %s is not a folder" % folder)
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths.extend(os.path.join(root, f) for f in sorted(files) if not f.startswith("."))
    if not paths:
        raise ValueError("--images %s holds no files" % folder)
    return paths


def process_photo(args):
    """Worker: one path -> ('ok', path, encoded fields, note) or ('skip', path, reason, message).

    Returns encoded bytes and arrays, never TensorFlow objects, so workers need no TensorFlow.
    Any unexpected exception is reported as a skip ("error"), so one bad file cannot stop a run.
    """
    path, detector, max_pixels, image_format = args
    try:
        result = photo.crop_photo_file(path, detector=detector, max_pixels=max_pixels)
        fields = dict(image_bytes=images.encode_image(result.image, image_format),
                      landmarks=result.landmarks,
                      segmentation_bytes=images.encode_png(result.segmentation),
                      source_filename=path,
                      crop_matrix=result.matrix)
    except photo.SkippedPhoto as skipped:
        return "skip", path, skipped.reason, str(skipped)
    except Exception as error:  # noqa: BLE001 -- reported per file by design
        return "skip", path, "error", "%s: %s: %s" % (path, type(error).__name__, error)
    note = "several faces, kept the largest" if result.num_faces > 1 else None
    return "ok", path, fields, note


def make_tfrecords(image_dir, out_dir, detector="hog", workers=1, records_per_shard=1000,
                   prefix="photos", image_format="png", max_pixels=images.DEFAULT_MAX_PIXELS,
                   overwrite=False, progress=True, num_shards=1, shard_index=0):
    """Preprocesses a folder of photos into tfrecord shards.

    num_shards, shard_index: process only block shard_index of the sorted photo list
    (sharding.shard_range), under the file prefix sharding.file_prefix(prefix, ...); a shard
    already complete with these settings is skipped, a half-written one redone.
    Returns:
      dict(written=int, skipped=Counter reason -> count, notes=Counter, shards=[paths],
      messages=[one line per skipped file], summary=str, already_complete=bool).
    """
    from preprocess import tfrecord_writer

    all_paths = list_photos(image_dir)
    # The photo list is part of the settings: shards of one run must split the same list.
    listing = hashlib.sha256("\n".join(os.path.relpath(p, image_dir) for p in all_paths).encode(
        "utf-8", "surrogateescape")).hexdigest()
    settings = dict(images=os.path.abspath(image_dir), num_files=len(all_paths), file_list_sha256=listing,
                    detector=detector, records_per_shard=records_per_shard, prefix=prefix,
                    image_format=image_format, max_pixels=max_pixels)
    shard = sharding.Shard(out_dir, prefix, num_shards, shard_index, settings, overwrite)
    if shard.complete is not None:
        done = shard.complete
        print("make_tfrecords: %s is complete (%d record(s)): skipped" % (shard.manifest_path,
                                                                           done["records"]),
              file=sys.stderr)
        return dict(written=done["records"], skipped=collections.Counter(done.get("skipped", {})),
                    notes=collections.Counter(done.get("notes", {})), shards=shard.paths,
                    messages=done.get("messages", []), summary=done.get("summary", ""),
                    already_complete=True)
    paths = [all_paths[i] for i in sharding.shard_range(len(all_paths), num_shards, shard_index)]
    prefix = shard.prefix
    tasks = [(p, detector, max_pixels, image_format) for p in paths]
    skipped = collections.Counter()
    notes = collections.Counter()
    messages = []
    with tfrecord_writer.ShardedWriter(out_dir, prefix, records_per_shard, shard.redo) as writer:
        shard.begin()
        bar = tqdm(total=len(tasks), unit="photo", disable=not progress, file=sys.stderr)
        for result in parallel.ordered_map(process_photo, tasks, workers):
            if result[0] == "ok":
                _, path, fields, note = result
                writer.write(tfrecord_writer.make_example(**fields))
                if note:
                    notes[note] += 1
            else:
                _, path, reason, message = result
                skipped[reason] += 1
                messages.append("skipped: " + message)
                bar.write(messages[-1], file=sys.stderr)
            bar.update(1)
        bar.close()
    summary = _summary(len(paths), writer.num_records, skipped, notes, writer.paths)
    if num_shards > 1:
        summary += "\nshard: %d of %d (%d of the %d files)" % (shard_index, num_shards, len(paths),
                                                             len(all_paths))
    with output_files.replacing(os.path.join(out_dir, prefix + "-summary.txt"), "w") as f:
        f.write(summary + "\n")
        f.writelines(m + "\n" for m in messages)
    shard.finish(writer.paths, writer.counts, dict(skipped=dict(skipped), notes=dict(notes),
                                                   messages=messages, summary=summary))
    return dict(written=writer.num_records, skipped=skipped, notes=notes, shards=writer.paths,
                messages=messages, summary=summary, already_complete=False)


def _summary(num_files, written, skipped, notes, shards):
    lines = ["files: %d" % num_files,
             "written: %d record(s) in %d shard(s)" % (written, len(shards)),
             "skipped: %d" % sum(skipped.values())]
    lines += ["  %s: %d" % (reason, count) for reason, count in sorted(skipped.items())]
    lines += ["note: %s: %d" % (note, count) for note, count in sorted(notes.items())]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments: %s" % " ".join(argv[1:]))
    if not FLAGS.images or not FLAGS.out:
        raise app.UsageError("--images and --out are required")
    try:
        result = make_tfrecords(FLAGS.images, FLAGS.out, detector=FLAGS.detector,
                                workers=FLAGS.workers, records_per_shard=FLAGS.records_per_shard,
                                prefix=FLAGS.prefix, image_format=FLAGS.image_format,
                                max_pixels=FLAGS.max_pixels, overwrite=FLAGS.overwrite,
                                num_shards=FLAGS.num_shards, shard_index=FLAGS.shard_index)
    except (ValueError, OSError) as error:
        print("make_tfrecords: %s" % error, file=sys.stderr)
        return 2
    print(result["summary"])
    return 0 if result["written"] else 1


if __name__ == "__main__":
    define_flags()
    app.run(main)
