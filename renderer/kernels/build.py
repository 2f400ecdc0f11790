"""Compiles the rasterizer op into renderer/kernels/rasterize_op.so.

Usage: python renderer/kernels/build.py [--force]

The CPU kernel is compiled with g++ and the flags TensorFlow reports through
tf.sysconfig (include path, C++ standard, ABI), so the library matches the
installed TensorFlow. It is rebuilt only when a source file is newer than the
library, or with --force. A CUDA kernel would need both nvcc and a CUDA build of
TensorFlow; this version has no CUDA source, so the script says which of the
two is missing (or that the source is) and carries on with the CPU kernel.
Exits non-zero with the compiler's message when the build fails.
"""
import argparse
import os
import shutil
import subprocess
import sys

KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["rasterize_core.cc", "rasterize_op.cc", "interpolate_core.cc", "interpolate_op.cc",
           "normals_core.cc", "normals_op.cc", "group_norm_core.cc", "group_norm_op.cc", "shading_core.cc", "shading_op.cc"]
HEADERS = ["rasterize_core.h", "interpolate_core.h", "normals_core.h", "group_norm_core.h", "shading_core.h"]
LIBRARY = os.path.join(KERNEL_DIR, "rasterize_op.so")

# -ffp-contract=off keeps a*b+c from becoming fused multiply-adds, which would
# break the exact sign symmetry of shared edges (see rasterize_core.cc).
EXTRA_FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off"]


def tensorflow_flags():
    """Returns (compile_flags, link_flags, built_with_cuda) from tf.sysconfig."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return (tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(),
            tf.test.is_built_with_cuda())


def is_up_to_date():
    if not os.path.exists(LIBRARY):
        return False
    built = os.path.getmtime(LIBRARY)
    inputs = SOURCES + HEADERS + [os.path.basename(__file__)]
    return all(os.path.getmtime(os.path.join(KERNEL_DIR, f)) <= built for f in inputs)


def build_cpu(compile_flags, link_flags):
    compiler = shutil.which("g++")
    if compiler is None:
        sys.exit("build.py: g++ not found on PATH; install a C++17 compiler (e.g. apt-get install g++)")
    temporary = LIBRARY + ".tmp"
    command = ([compiler] + [os.path.join(KERNEL_DIR, s) for s in SOURCES] + ["-o", temporary]
               + compile_flags + EXTRA_FLAGS + link_flags)
    print("build.py: compiling the CPU kernel:\n  " + " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        if os.path.exists(temporary):
            os.remove(temporary)
        sys.exit("build.py: g++ failed (exit %d) compiling %s" % (result.returncode, ", ".join(SOURCES)))
    os.replace(temporary, LIBRARY)


def report_cuda(built_with_cuda):
    nvcc = shutil.which("nvcc")
    if not built_with_cuda:
        print("build.py: CUDA kernel not built: this TensorFlow is built without CUDA"
              + (" (nvcc is present at %s)" % nvcc if nvcc else " and nvcc is not on PATH"))
    elif nvcc is None:
        print("build.py: CUDA kernel not built: nvcc is not on PATH")
    else:
        print("build.py: CUDA kernel not built: this version of the renderer has no CUDA source yet; "
              "the CPU kernel serves GPU sessions too")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the library is up to date")
    args = parser.parse_args()

    compile_flags, link_flags, built_with_cuda = tensorflow_flags()
    if not args.force and is_up_to_date():
        print("build.py: %s is up to date" % os.path.relpath(LIBRARY))
    else:
        build_cpu(compile_flags, link_flags)
        print("build.py: built %s (%d KiB)" % (os.path.relpath(LIBRARY), os.path.getsize(LIBRARY) // 1024))
    report_cuda(built_with_cuda)


if __name__ == "__main__":
    main()
