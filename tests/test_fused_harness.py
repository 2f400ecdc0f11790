"""The fused ops' CUDA twins, checked where this machine allows: the standalone harness
(renderer/kernels/fused_harness.cc, no TensorFlow) builds CPU only and runs the twins' thread
functions serially on the host against the CPU cores (bit for bit here); with nvcc it compiles for
the device too, and with a GPU it compares the device itself."""
import os
import re
import shutil
import subprocess

import pytest

KERNEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "renderer", "kernels")
CORE_SOURCES = ["fused_harness.cc", "rasterize_core.cc", "interpolate_core.cc", "normals_core.cc",
                "shading_core.cc", "group_norm_core.cc", "photometric_core.cc"]
CUDA_SOURCES = ["rasterize_cuda.cu", "interpolate_cuda.cu", "normals_cuda.cu", "shading_cuda.cu",
                "group_norm_cuda.cu", "photometric_cuda.cu"]
# Outputs compared per run: interpolation 3 x 3 inputs, normals and shading 6, triangle normals 2,
# group norm 6 x 3, photometric loss 4 x 3.
EMULATED_CHECKS = 3 * 3 + 6 + 2 + 6 * 3 + 4 * 3


def paths(names):
    return [os.path.join(KERNEL_DIR, name) for name in names]


@pytest.fixture(scope="module")
def cpu_harness(tmp_path_factory):
    """The harness built CPU only with g++ (warnings are errors)."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ not found on PATH")
    binary = str(tmp_path_factory.mktemp("fused_harness") / "fused_harness")
    build = subprocess.run([compiler, "-std=c++17", "-O2", "-ffp-contract=off", "-Wall", "-Werror",
                            "-DFACE3D_HARNESS_CPU_ONLY"] + paths(CORE_SOURCES) + ["-o", binary],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return binary


def test_fused_harness_builds_cpu_only_and_its_emulated_twins_match_the_cpu_cores(cpu_harness):
    result = subprocess.run([cpu_harness, "--repeats", "1"], capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "built CPU only" in out and "emulated on the host agree" in out
    checks = re.findall(r"on host +(OK|FAILED): max \|diff\| (\S+), rel (\S+)( \(bit-identical\))?", out)
    assert len(checks) == EMULATED_CHECKS, out
    # Serially, the twins add in the CPU's order: every output is bit-identical here (on a GPU
    # only those without atomics or reordered sums are).
    assert all(ok == "OK" and identical for ok, _, _, identical in checks), out


def test_fused_harness_rejects_an_unreadable_mesh_file(cpu_harness, tmp_path):
    bad = tmp_path / "mesh.bin"
    bad.write_bytes(b"F3DMESH1" + b"\0" * 10)
    result = subprocess.run([cpu_harness, "--mesh", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "cannot read mesh file" in result.stdout, result.stdout


@pytest.mark.slow
def test_fused_cuda_twins_and_harness_compile_with_nvcc(tmp_path):
    # Compiles the device code (one architecture, to keep it short); running it needs a GPU.
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found on PATH")
    binary = str(tmp_path / "fused_harness")
    build = subprocess.run([nvcc, "-std=c++17", "-O2", "-fmad=false", "-Xcompiler", "-ffp-contract=off,-Wall",
                            "-Werror", "all-warnings", "-gencode=arch=compute_75,code=sm_75"]
                           + paths(CORE_SOURCES + CUDA_SOURCES) + ["-o", binary],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    result = subprocess.run([binary, "--repeats", "1"], capture_output=True, text=True, timeout=300)
    if "no CUDA device" in result.stdout:
        assert result.returncode == 0 and "emulated on the host agree" in result.stdout, result.stdout
    else:  # a GPU: the device twins must agree with the CPU cores
        assert result.returncode == 0 and "all fused ops agree" in result.stdout, result.stdout


@pytest.mark.slow
def test_gpu_op_kernels_compile_against_the_tensorflow_headers(tmp_path):
    # The GOOGLE_CUDA branches of the op files are built only where TensorFlow is a CUDA build;
    # compiling them here (syntax and types, against the installed TensorFlow's headers) keeps
    # them from rotting unseen. One translation unit including every op file: TensorFlow's
    # headers are parsed once (14 s, against 72 s for five compiles), and it also checks that
    # the op files define no helper twice.
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ not found on PATH")
    import tensorflow as tf
    flags = tf.sysconfig.get_compile_flags()
    names = ("interpolate_op.cc", "normals_op.cc", "shading_op.cc", "group_norm_op.cc", "photometric_op.cc",
             "rasterize_op.cc")
    unit = tmp_path / "all_ops.cc"
    unit.write_text("".join('#include "%s"\n' % os.path.join(KERNEL_DIR, name) for name in names))
    result = subprocess.run([compiler, "-fsyntax-only", "-DGOOGLE_CUDA=1", "-Wno-deprecated-declarations",
                             "-I", KERNEL_DIR] + flags + [str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, " + ".join(names) + ":\n" + result.stderr[-3000:]
