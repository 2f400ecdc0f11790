"""Writes the rasterizer benchmark's face-sized mesh to a raw file for the standalone harness.

Usage: python bench/export_harness_mesh.py [--out cache/harness_mesh.bin] [--batch 16] [--size 224]

The mesh is bench_rasterizer.face_sized_mesh (35,709 vertices, ~70,000 triangles, one head
rotation per image). File layout, little-endian: the 8 bytes "F3DMESH1", int64 batch, vertex
count and triangle count, int32 height and width, then float32 clip vertices [batch, vertices, 4]
and int32 triangles [triangles, 3]. Read (--mesh) by renderer/kernels/rasterize_harness.cc and
fused_harness.cc, which need no Python or TensorFlow: run this here and carry the file to a machine
with a GPU.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rasterizer import face_sized_mesh  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("cache", "harness_mesh.bin"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224, help="image height and width in pixels")
    args = parser.parse_args()
    if args.batch < 1 or args.size < 1:
        parser.error("--batch and --size must be >= 1")
    clip, triangles = face_sized_mesh(args.batch, args.size)
    clip = np.ascontiguousarray(clip, np.float32)
    triangles = np.ascontiguousarray(triangles, np.int32)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    temporary = args.out + ".tmp"
    with open(temporary, "wb") as f:
        f.write(b"F3DMESH1")
        f.write(np.array([clip.shape[0], clip.shape[1], triangles.shape[0]], "<i8").tobytes())
        f.write(np.array([args.size, args.size], "<i4").tobytes())
        f.write(clip.astype("<f4").tobytes())
        f.write(triangles.astype("<i4").tobytes())
    os.replace(temporary, args.out)
    print("wrote %s: batch %d, %d vertices, %d triangles, %dx%d" % (
        args.out, clip.shape[0], clip.shape[1], triangles.shape[0], args.size, args.size))


if __name__ == "__main__":
    main()
