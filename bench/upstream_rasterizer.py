"""Google's tf_mesh_renderer kernel (PyPI sdist mesh-renderer==1.4), built on demand.

Used only as a test oracle (tests/test_upstream_rasterizer.py) and a benchmark baseline
(bench/bench_rasterizer.py); its sources are never copied into this project. `load()`
fetches the sdist with pip into cache/upstream_rasterizer/ (git-ignored), compiles its C++
op with g++ and the flags from tf.sysconfig (as renderer/kernels/build.py does for ours),
and loads it. Later calls reuse the cached library.

Upstream conventions differ from ours: its op takes one image ([V, 4], no batch), its image
row 0 is the bottom (NDC y = -1), and uncovered pixels have barycentrics 0 (no mask).
"""
import fcntl
import glob
import os
import shutil
import subprocess
import sys
import tarfile

import tensorflow.compat.v1 as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(REPO_ROOT, "cache", "upstream_rasterizer")
REQUIREMENT = "mesh-renderer==1.4"
KERNEL_FILES = ["rasterize_triangles_op.cc", "rasterize_triangles_impl.cc", "rasterize_triangles_grad.cc",
                "rasterize_triangles_impl.h"]
LIBRARY = os.path.join(CACHE_DIR, "upstream_rasterize_triangles.so")

_module = None


class UpstreamUnavailable(RuntimeError):
    """The upstream sdist could not be fetched or built; the message says which step failed."""


def _fetch_sources():
    source_dir = os.path.join(CACHE_DIR, "src")
    if all(os.path.exists(os.path.join(source_dir, f)) for f in KERNEL_FILES):
        return source_dir
    os.makedirs(CACHE_DIR, exist_ok=True)
    archives = glob.glob(os.path.join(CACHE_DIR, "mesh_renderer-1.4.tar.gz"))
    if not archives:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--disable-pip-version-check", "-d", CACHE_DIR, REQUIREMENT]
        result = subprocess.run(command, capture_output=True, text=True)
        archives = glob.glob(os.path.join(CACHE_DIR, "mesh_renderer-1.4.tar.gz"))
        if result.returncode != 0 or not archives:
            raise UpstreamUnavailable("pip download %s failed: %s" % (REQUIREMENT, (result.stderr or result.stdout)[-500:]))
    os.makedirs(source_dir, exist_ok=True)
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            name = os.path.basename(member.name)
            if name in KERNEL_FILES and "/kernels/" in member.name:
                with archive.extractfile(member) as src, open(os.path.join(source_dir, name), "wb") as dst:
                    dst.write(src.read())
    missing = [f for f in KERNEL_FILES if not os.path.exists(os.path.join(source_dir, f))]
    if missing:
        raise UpstreamUnavailable("sdist %s lacks %s" % (archives[0], ", ".join(missing)))
    return source_dir


def _build(source_dir):
    if os.path.exists(LIBRARY):
        return
    compiler = shutil.which("g++")
    if compiler is None:
        raise UpstreamUnavailable("g++ not found on PATH")
    sources = [os.path.join(source_dir, f) for f in KERNEL_FILES if f.endswith(".cc")]
    command = ([compiler] + sources + ["-o", LIBRARY + ".tmp"] + tf.sysconfig.get_compile_flags()
               + ["-O3", "-fPIC", "-shared"] + tf.sysconfig.get_link_flags())
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise UpstreamUnavailable("compiling the upstream kernel failed: %s" % (result.stderr[-1000:],))
    os.replace(LIBRARY + ".tmp", LIBRARY)


def load():
    """Fetches, builds (once) and loads the upstream op module; raises UpstreamUnavailable."""
    global _module
    if _module is None:
        # Processes that load at once (parallel test workers, a benchmark beside the tests) take
        # turns: the first fetches and compiles, the others then find the cached library.
        os.makedirs(CACHE_DIR, exist_ok=True)
        with open(os.path.join(CACHE_DIR, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _build(_fetch_sources())
        _module = tf.load_op_library(LIBRARY)
        tf.RegisterGradient("RasterizeTriangles")(_upstream_gradient)
    return _module


def _upstream_gradient(op, d_barycentrics, d_triangle_ids, d_z):
    del d_triangle_ids, d_z  # upstream differentiates its barycentrics only
    return [_module.rasterize_triangles_grad(op.inputs[0], op.inputs[1], op.outputs[0], op.outputs[1],
                                             d_barycentrics, op.get_attr("image_width"),
                                             op.get_attr("image_height")),
            None]


def rasterize(clip_vertices, triangles, image_size):
    """Upstream rasterization of a batch, one op per image, as upstream's own wrapper does.

    Args:
      clip_vertices: [B, V, 4] float32 with a static batch size B.
      triangles: [T, 3] int32.
      image_size: (H, W).
    Returns:
      (barycentrics [B, H, W, 3], triangle_ids [B, H, W], z [B, H, W]) in upstream's row
      order: row 0 is the bottom of the image (NDC y = -1).
    """
    module = load()
    height, width = image_size
    outputs = [module.rasterize_triangles(clip_vertices[b], triangles, image_width=width, image_height=height)
               for b in range(clip_vertices.shape[0])]
    return tuple(tf.stack(list(parts)) for parts in zip(*outputs))
