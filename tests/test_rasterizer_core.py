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


HARNESS_SOURCES = [os.path.join(KERNEL_DIR, name) for name in ("rasterize_harness.cc", "rasterize_core.cc")]


def test_harness_cpu_path_builds_without_tensorflow_or_cuda_and_runs(tmp_path):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ not found on PATH")
    binary = str(tmp_path / "rasterize_harness")
    build = subprocess.run([compiler, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Werror",
                            "-DFACE3D_HARNESS_CPU_ONLY"] + HARNESS_SOURCES + ["-o", binary],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    result = subprocess.run([binary, "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "built CPU only" in result.stdout and result.stdout.count("ms of CPU per image") == 4


@pytest.mark.slow
def test_cuda_twin_and_harness_compile_with_nvcc(tmp_path):
    # The shared header must stay compilable for the device; running it needs a GPU.
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found on PATH")
    binary = str(tmp_path / "rasterize_harness")
    build = subprocess.run([nvcc, "-std=c++17", "-O2", "-fmad=false", "-Xcompiler", "-ffp-contract=off,-Wall",
                            "-Werror", "all-warnings"] + HARNESS_SOURCES
                           + [os.path.join(KERNEL_DIR, "rasterize_cuda.cu"), "-o", binary],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    result = subprocess.run([binary, "--repeats", "1"], capture_output=True, text=True, timeout=300)
    if "no CUDA device" in result.stdout:
        assert result.returncode == 0, result.stdout
    else:  # a GPU: the two cores must agree
        assert result.returncode == 0 and "all meshes agree" in result.stdout, result.stdout
