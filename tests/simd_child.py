"""Shared by the AVX2-against-baseline tests (test_rasterizer_simd.py, test_simd_loops.py): whether
the CPU has AVX2, and a child process that runs a script with the AVX2 code on or off
(FACE3D_RASTERIZER_NO_AVX2, read once per process by renderer/kernels/simd_dispatch.h)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def avx2_cpu():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


def run_child(child, path, disable_avx2):
    """Runs the script `child` (it reads ROOT and OUT and writes OUT) in a fresh Python."""
    env = dict(os.environ)
    env.pop("FACE3D_RASTERIZER_NO_AVX2", None)
    if disable_avx2:
        env["FACE3D_RASTERIZER_NO_AVX2"] = "1"
    code = "ROOT = %r\nOUT = %r\n" % (ROOT, path) + child
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
