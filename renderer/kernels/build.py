"""Compiles the custom ops in renderer/kernels/ (and, on request, the standalone harness).

Usage: python renderer/kernels/build.py [--force] [--harness] [--cuda-archs 75,80,...]

Each entry of OPS is one library, renderer/kernels/<name>.so: its C++ sources are compiled with
g++ and the flags TensorFlow reports through tf.sysconfig (include path, C++ standard, ABI), so
the library matches the installed TensorFlow. Where the entry has CUDA sources, nvcc is on PATH
and this TensorFlow is a CUDA build, the CUDA sources are compiled with nvcc and linked in (with
GOOGLE_CUDA=1, which registers the ops' GPU kernels); otherwise the script says which of the two
is missing and builds the CPU kernels alone. A library is rebuilt only when one of its inputs is
newer than it, or with --force. Exits non-zero with the compiler's message when a build fails.

--harness also builds the standalone harnesses (no TensorFlow), cache/rasterize_harness (the
rasterizer) and cache/fused_harness (interpolation, normals, shading, group norm, photometric
loss): with nvcc where it is on PATH (CPU and CUDA cores), else with g++ (CPU cores only); see
rasterize_harness.cc and fused_harness.cc. --cuda-archs limits the machine code to the given
architectures (e.g. 90, to iterate faster; the default is all of CUDA_ARCHS, plus PTX of the last
given).
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(KERNEL_DIR))

Op = collections.namedtuple("Op", ["name", "sources", "headers", "cuda_sources", "cuda_headers"])
OPS = [
    Op(name="rasterize_op",
       sources=["rasterize_core.cc", "rasterize_op.cc", "interpolate_core.cc", "interpolate_op.cc",
                "normals_core.cc", "normals_op.cc", "group_norm_core.cc", "group_norm_op.cc",
                "shading_core.cc", "shading_op.cc", "photometric_core.cc", "photometric_op.cc",
                "camera_core.cc", "camera_op.cc", "sample_core.cc", "sample_op.cc"],
       headers=["rasterize_core.h", "rasterize_pixel.h", "interpolate_core.h", "normals_core.h",
                "group_norm_core.h", "shading_core.h", "photometric_core.h", "camera_core.h",
                "sample_core.h", "cpu_op_util.h", "simd_dispatch.h"],
       cuda_sources=["rasterize_cuda.cu", "interpolate_cuda.cu", "normals_cuda.cu",
                     "shading_cuda.cu", "group_norm_cuda.cu", "photometric_cuda.cu"],
       cuda_headers=["rasterize_cuda.h", "interpolate_cuda.h", "normals_cuda.h", "shading_cuda.h",
                     "group_norm_cuda.h", "photometric_cuda.h", "fused_threads.h", "cuda_launch.h",
                     "gpu_op_util.h"]),
]

# -ffp-contract=off keeps a*b+c from becoming fused multiply-adds, which would
# break the exact sign symmetry of shared edges (see rasterize_core.cc);
# -fmad=false is nvcc's equivalent, so that the CUDA twin rounds as the CPU does.
EXTRA_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off"]
NVCC_FLAGS = ["-std=c++17", "-O3", "-fmad=false", "-Xcompiler", "-fPIC,-ffp-contract=off"]
# Turing to Hopper as machine code, and Hopper PTX for newer GPUs to compile at load time.
CUDA_ARCHS = ["75", "80", "86", "89", "90"]


def gencode(archs):
    """nvcc -gencode flags: machine code for each of `archs`, PTX of the last."""
    return ["-gencode=arch=compute_%s,code=sm_%s" % (a, a) for a in archs] + [
        "-gencode=arch=compute_%s,code=compute_%s" % (archs[-1], archs[-1])]


GENCODE = gencode(CUDA_ARCHS)
# Each harness: its binary and sources (C++ and CUDA; the CUDA ones only with nvcc).
Harness = collections.namedtuple("Harness", ["path", "sources", "cuda_sources"])
HARNESSES = [
    Harness(os.path.join(ROOT, "cache", "rasterize_harness"),
            ["rasterize_harness.cc", "rasterize_core.cc"], ["rasterize_cuda.cu"]),
    Harness(os.path.join(ROOT, "cache", "fused_harness"),
            ["fused_harness.cc", "rasterize_core.cc", "interpolate_core.cc", "normals_core.cc",
             "shading_core.cc", "group_norm_core.cc", "photometric_core.cc"],
            ["rasterize_cuda.cu", "interpolate_cuda.cu", "normals_cuda.cu", "shading_cuda.cu",
             "group_norm_cuda.cu", "photometric_cuda.cu"]),
]


def tensorflow_flags():
    """Returns (compile_flags, link_flags, built_with_cuda) from tf.sysconfig."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return (tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(),
            tf.test.is_built_with_cuda())


def library_path(op):
    return os.path.join(KERNEL_DIR, op.name + ".so")


def is_up_to_date(op, with_cuda):
    library = library_path(op)
    if not os.path.exists(library):
        return False
    inputs = op.sources + op.headers + (op.cuda_sources + op.cuda_headers if with_cuda else [])
    paths = [os.path.join(KERNEL_DIR, f) for f in inputs] + [os.path.abspath(__file__)]
    return all(os.path.getmtime(p) <= os.path.getmtime(library) for p in paths)


def run(command, what):
    print("build.py: %s:\n  %s" % (what, " ".join(command)), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit("build.py: %s failed (exit %d) for %s" % (command[0], result.returncode, what))


def cuda_missing(built_with_cuda):
    """None when the CUDA kernels can be built, else what is missing, in words."""
    nvcc = shutil.which("nvcc")
    if not built_with_cuda:
        return ("this TensorFlow is built without CUDA"
                + (" (nvcc is present at %s)" % nvcc if nvcc else " and nvcc is not on PATH"))
    if nvcc is None:
        return "nvcc is not on PATH (this TensorFlow is a CUDA build)"
    return None


def cuda_library_dir():
    """Directory holding libcudart_static.a, next to the nvcc on PATH."""
    nvcc = os.path.realpath(shutil.which("nvcc"))
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                  os.path.dirname(os.path.dirname(nvcc)), "/usr/local/cuda"]
    for root in filter(None, candidates):
        for sub in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib"),
                    os.path.join("targets", "sbsa-linux", "lib")):
            if os.path.exists(os.path.join(root, sub, "libcudart_static.a")):
                return os.path.join(root, sub)
    sys.exit("build.py: nvcc found at %s but not libcudart_static.a beside it; set CUDA_HOME" % nvcc)


def build_op(op, compile_flags, link_flags, with_cuda):
    compiler = shutil.which("g++")
    if compiler is None:
        sys.exit("build.py: g++ not found on PATH; install a C++17 compiler (e.g. apt-get install g++)")
    library = library_path(op)
    temporary = library + ".tmp"
    with tempfile.TemporaryDirectory() as scratch:
        objects, cuda_flags = [], []
        if with_cuda:
            defines = [f for f in compile_flags if f.startswith("-D")]
            for source in op.cuda_sources:
                obj = os.path.join(scratch, os.path.splitext(source)[0] + ".o")
                run([shutil.which("nvcc")] + NVCC_FLAGS + GENCODE + defines
                    + ["-c", os.path.join(KERNEL_DIR, source), "-o", obj], "compiling CUDA %s" % source)
                objects.append(obj)
            cuda_flags = ["-DGOOGLE_CUDA=1", "-L" + cuda_library_dir(), "-l:libcudart_static.a",
                          "-ldl", "-lrt", "-lpthread"]
        command = ([compiler] + [os.path.join(KERNEL_DIR, s) for s in op.sources] + objects
                   + ["-o", temporary] + compile_flags + EXTRA_FLAGS + link_flags + cuda_flags)
        try:
            run(command, "compiling %s (%s)" % (op.name, "CPU and CUDA kernels" if with_cuda else "CPU kernels"))
        except SystemExit:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
    os.replace(temporary, library)
    print("build.py: built %s (%d KiB)" % (os.path.relpath(library), os.path.getsize(library) // 1024))


def build_harness(harness):
    sources = [os.path.join(KERNEL_DIR, s) for s in harness.sources]
    os.makedirs(os.path.dirname(harness.path), exist_ok=True)
    nvcc = shutil.which("nvcc")
    if nvcc:
        command = ([nvcc] + NVCC_FLAGS[:-2] + ["-Xcompiler", "-ffp-contract=off"] + GENCODE + sources
                   + [os.path.join(KERNEL_DIR, s) for s in harness.cuda_sources]
                   + ["-o", harness.path])
    else:
        compiler = shutil.which("g++")
        if compiler is None:
            sys.exit("build.py: neither nvcc nor g++ is on PATH; cannot build the harness")
        command = [compiler, "-std=c++17", "-O3", "-ffp-contract=off", "-DFACE3D_HARNESS_CPU_ONLY"] + sources + [
            "-o", harness.path]
    name = os.path.basename(harness.path)
    run(command, "compiling %s (%s)" % (name, "CPU and CUDA cores" if nvcc else "CPU cores only: no nvcc"))
    print("build.py: built %s" % os.path.relpath(harness.path))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the libraries are up to date")
    parser.add_argument("--harness", action="store_true",
                        help="also build cache/rasterize_harness and cache/fused_harness")
    parser.add_argument("--cuda-archs", default=",".join(CUDA_ARCHS),
                        help="comma-separated CUDA architectures for nvcc (default: %(default)s)")
    args = parser.parse_args()
    archs = [a.strip() for a in args.cuda_archs.split(",") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        parser.error("--cuda-archs takes numbers such as 75,80,86,89,90, got %r" % args.cuda_archs)
    global GENCODE
    GENCODE = gencode(archs)

    compile_flags, link_flags, built_with_cuda = tensorflow_flags()
    missing = cuda_missing(built_with_cuda)
    for op in OPS:
        with_cuda = bool(op.cuda_sources) and missing is None
        if not args.force and is_up_to_date(op, with_cuda):
            print("build.py: %s is up to date" % os.path.relpath(library_path(op)))
        else:
            build_op(op, compile_flags, link_flags, with_cuda)
        if op.cuda_sources and missing is not None:
            print("build.py: %s: CUDA kernels not built: %s; the CPU kernels serve GPU sessions too"
                  % (op.name, missing))
    if args.harness:
        for harness in HARNESSES:
            build_harness(harness)


if __name__ == "__main__":
    main()
