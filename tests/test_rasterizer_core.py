"""The plain C++ rasterization core compiles and passes its own tests without TensorFlow."""
import os
import shutil
import subprocess

import pytest

KERNEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "renderer", "kernels")


def test_core_compiles_without_tensorflow_and_passes_its_checks(tmp_path):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ not found on PATH")
    binary = str(tmp_path / "rasterize_core_test")
    build = subprocess.run(
        [compiler, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Werror",
         os.path.join(KERNEL_DIR, "rasterize_core_test.cc"), os.path.join(KERNEL_DIR, "rasterize_core.cc"),
         "-o", binary], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    result = subprocess.run([binary], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert "0 failure(s)" in result.stdout
