"""Training-data throughput: records per second of preprocess/synthesize.py and make_tfrecords.py.

    python bench/bench_data.py [--workers 2] [--num_synthetic 40] [--num_photos 24]

Both run with --workers processes (default 2, the CI machine's cores) into a temporary folder.
Printed per tool: records/s over the whole run (worker start-up included, which is what a user
waits for) and records/s after the first record (steady state). The photos are the astronaut of
scikit-image, rescaled, shifted and mirrored so that each is a different detection problem.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image  # noqa: E402

from preprocess import make_tfrecords, synthesize  # noqa: E402


class _Clock:
    """Counts records as a writer receives them, keeping the time of the first."""

    def __init__(self):
        self.start = time.perf_counter()
        self.first = None

    def tick(self):
        if self.first is None:
            self.first = time.perf_counter()


def _report(name, count, clock):
    total = time.perf_counter() - clock.start
    steady = time.perf_counter() - clock.first if clock.first else float("nan")
    print("%-15s %4d records  %6.2f s  %6.2f records/s overall  %6.2f records/s after the first"
          % (name, count, total, count / total, (count - 1) / steady if count > 1 else float("nan")))


def _timed_writer(clock):
    """Wraps ShardedWriter.write so that the first written record is timed."""
    from preprocess import tfrecord_writer
    original = tfrecord_writer.ShardedWriter.write

    def write(self, record):
        clock.tick()
        return original(self, record)

    tfrecord_writer.ShardedWriter.write = write
    return lambda: setattr(tfrecord_writer.ShardedWriter, "write", original)


def make_photos(folder, count):
    import skimage.data
    astronaut = Image.fromarray(skimage.data.astronaut())
    rng = np.random.default_rng(0)
    for index in range(count):
        side = int(rng.uniform(400, 1200))
        photo = astronaut.resize((side, side), Image.BILINEAR)
        if index % 2:
            photo = photo.transpose(Image.FLIP_LEFT_RIGHT)
        canvas = Image.new("RGB", (side + 200, side + 100), tuple(rng.integers(0, 255, 3).tolist()))
        canvas.paste(photo, (int(rng.uniform(0, 200)), int(rng.uniform(0, 100))))
        canvas.save(os.path.join(folder, "photo%03d.jpg" % index), quality=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--num_synthetic", type=int, default=40)
    parser.add_argument("--num_photos", type=int, default=24)
    args = parser.parse_args()
    print("workers: %d (machine has %d cores)" % (args.workers, os.cpu_count()))
    root = tempfile.mkdtemp(prefix="bench_data_")
    try:
        clock = _Clock()
        restore = _timed_writer(clock)
        try:
            synthesize.synthesize(args.num_synthetic, os.path.join(root, "synthetic"),
                                  workers=args.workers, progress=False)
        finally:
            restore()
        _report("synthesize", args.num_synthetic, clock)

        photos = os.path.join(root, "photos")
        os.makedirs(photos)
        make_photos(photos, args.num_photos)
        clock = _Clock()
        restore = _timed_writer(clock)
        try:
            result = make_tfrecords.make_tfrecords(photos, os.path.join(root, "photo_records"),
                                                   workers=args.workers, progress=False)
        finally:
            restore()
        _report("make_tfrecords", result["written"], clock)
        if result["written"] != args.num_photos:
            print("  (%d of %d photos skipped: %s)" % (args.num_photos - result["written"],
                                                      args.num_photos, dict(result["skipped"])))
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
