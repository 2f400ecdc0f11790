"""Inference seconds per photo, coarse and fine, with and without test-time fitting, in one run.

    python bench/bench_inference.py [--checkpoint FINE_EXPORT] [--uv_size 256] [--max_channels 128]
                                    [--repeats 5]

For each photo of the repository's examples (resources/examples) and each fit_steps in (0,
model.fitting.DEFAULT_STEPS), prints the seconds per photo of
  reconstruct   the reconstructor on the photo's crop (coarse network, fitting, and for the fine
                stage the unwrapping, the fine network and the detailed mesh: FineReconstructor),
  test.py       test.py's whole per-photo work (detection, landmarks, crop, reconstruction, the
                detail picture's renders, writing every file),
for the coarse stage and the fine stage of the same fine export (--stage=coarse: its coarse
network alone), and the difference fine - coarse. The two stages are timed alternately, call by
call, so that a busy machine slows both alike (the difference is the figure to read; the absolute
times vary with the load).

Without --checkpoint: results/release/fine when it exists, else an UNTRAINED fine export made here
(tests/fine_export.py: the coarse weights of results/release/coarse, a FineNet of --uv_size and
--max_channels with random weights), since the time does not depend on the weights.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402

from model import fine, fitting, inference, training  # noqa: E402
from model.face import FaceModel  # noqa: E402
from preprocess.photo import crop_photo_file  # noqa: E402

tf.disable_eager_execution()

EXAMPLES = os.path.join(REPO, "resources", "examples")


def fine_export(args, folder):
    if args.checkpoint:
        return args.checkpoint
    released = os.path.join(REPO, inference.RELEASED["fine"])
    if os.path.isdir(released):
        return released
    from tests.fine_export import make_fine_export
    print("bench_inference.py: no fine release: timing an untrained fine export (UV %d, max_channels %d, "
          "the coarse weights of results/release/coarse)" % (args.uv_size, args.max_channels))
    return make_fine_export(folder, FaceModel(), uv_size=args.uv_size, max_channels=args.max_channels,
                            coarse_checkpoint=os.path.join(REPO, inference.RELEASED["coarse"]), output_std=0.1)


def alternate(calls, repeats):
    """{name: seconds per call} of callables timed in turn, after one warm-up call each."""
    for call in calls.values():
        call()
    totals = dict.fromkeys(calls, 0.0)
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            totals[name] += time.perf_counter() - start
    return {name: total / repeats for name, total in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="a fine export (default: see above)")
    parser.add_argument("--uv_size", type=int, default=256)
    parser.add_argument("--max_channels", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import test  # the repository's test.py: the whole per-photo work, writing included

    photos = inference.list_photos(EXAMPLES)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = fine_export(args, os.path.join(folder, "export"))
        config = training.read_stage_config(checkpoint)
        print("fine export %s: UV %d, max_channels %d (%.1f M parameters), %d CPU threads available"
              % (checkpoint, config["uv_size"], config["max_channels"],
                 fine.parameter_count(config["uv_size"], config["max_channels"]) / 1e6, os.cpu_count()))
        print("%-16s %9s | %-24s | %-24s" % ("photo", "fit_steps", "reconstruct s/photo", "test.py s/photo"))
        print("%-16s %9s | %7s %7s %8s | %7s %7s %8s" % ("", "", "coarse", "fine", "fine-c", "coarse", "fine", "fine-c"))
        for fit_steps in (0, fitting.DEFAULT_STEPS):
            stages = {stage: inference.load_reconstructor(checkpoint, fit_steps=fit_steps, stage=stage)
                      for stage in ("coarse", "fine")}
            for path in photos:
                face = crop_photo_file(path)
                out = os.path.join(folder, "out")
                os.makedirs(out, exist_ok=True)
                times = alternate({
                    ("reconstruct", stage): (lambda r=r: r(face.image, face.landmarks, face.segmentation))
                    for stage, r in stages.items()}, args.repeats)
                times.update(alternate({
                    ("test.py", stage): (lambda r=r: test.reconstruct_photo(r, path, out, "hog"))
                    for stage, r in stages.items()}, args.repeats))
                row = []
                for part in ("reconstruct", "test.py"):
                    c, f = times[(part, "coarse")], times[(part, "fine")]
                    row += [c, f, f - c]
                print("%-16s %9d | %7.3f %7.3f %+8.3f | %7.3f %7.3f %+8.3f"
                      % ((os.path.basename(path)[:16], fit_steps) + tuple(row)), flush=True)
            for reconstructor in stages.values():
                reconstructor.session.close()


if __name__ == "__main__":
    main()
