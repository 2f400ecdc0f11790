"""Seconds per synthetic sample with the appearance options at their defaults against --plain
(the options off), in one process, interleaved so that load on the machine hits both alike.

    .venv/bin/python bench/bench_appearance.py --num 8 --repeats 3
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=8, help="samples per round and setting")
    parser.add_argument("--repeats", type=int, default=3, help="rounds")
    args = parser.parse_args()
    from model.face import FaceModel
    from preprocess import appearance, synthesize
    face_model = FaceModel()
    renderers = {"plain": synthesize.SampleRenderer(face_model, options=appearance.AppearanceOptions.plain()),
                 "default": synthesize.SampleRenderer(face_model)}
    for renderer in renderers.values():  # warm up: every render graph built and run once
        for index in range(8):
            renderer.sample(synthesize.sample_rng(1, index))
    seconds = dict.fromkeys(renderers, 0.0)
    for _ in range(args.repeats):
        for name, renderer in renderers.items():
            start = time.time()
            for index in range(args.num):
                renderer.sample(synthesize.sample_rng(0, index))
            seconds[name] += time.time() - start
    count = args.num * args.repeats
    print("s per sample: plain %.3f, default options %.3f; ratio %.2f (%d samples each)" % (
        seconds["plain"] / count, seconds["default"] / count, seconds["default"] / seconds["plain"], count))


if __name__ == "__main__":
    main()
