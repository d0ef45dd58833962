"""Builds the C++ runtime and its tests with CMake and runs them with ctest: once plainly,
once with AddressSanitizer and UBSan, and once with the CUDA device (FLOWC_CUDA=ON) where the
CUDA toolkit and cuBLASLt are found. Build folders are cached under .cache/ and reused."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BUILDS = {
    "plain": ("build-runtime", ["-DCMAKE_BUILD_TYPE=Release"]),
    # Debug keeps the sanitized build quick to compile and its stack traces exact.
    "asan+ubsan": ("build-runtime-asan", ["-DCMAKE_BUILD_TYPE=Debug", "-DFLOWC_SANITIZE=ON"]),
}


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return result


def _build(build: str) -> tuple[Path, float]:
    """The build folder of `build`, configured once and brought up to date; seconds it took."""
    folder, options = BUILDS[build]
    build_dir = REPO / ".cache" / folder
    start = time.monotonic()
    if not (build_dir / "CMakeCache.txt").exists():
        # The generator is fixed when a build folder is made; later runs reuse it.
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        _run(["cmake", "-S", ".", "-B", str(build_dir), *generator, *options], timeout=300)
    _run(["cmake", "--build", str(build_dir), "-j2"], timeout=1200)
    return build_dir, time.monotonic() - start


@pytest.mark.parametrize("build", list(BUILDS))
def test_runtime_builds_and_passes_ctest(build, report_section, toolchain):
    build_dir, built = _build(build)
    env = dict(os.environ,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    result = subprocess.run(["ctest", "--output-on-failure", "-j2", "--timeout", "300"], cwd=build_dir,
                            capture_output=True, text=True, env=env, timeout=900)
    output = result.stdout + result.stderr
    summary = "\n".join(line for line in output.splitlines()
                        if re.search(r"Test +#|tests passed|Total Test time", line))
    report_section(f"runtime ctest ({build}, built in {built:.1f} s)", summary)
    print(summary)
    assert result.returncode == 0, f"ctest failed in {build_dir}:\n{output[-8000:]}"


def test_communicators_under_mpirun(toolchain):
    """The communicator conformance test as 4 MPI processes (ctest's runtime.comm_mpi, registered
    when CMake finds MPI): it must be there wherever mpirun is."""
    if not shutil.which("mpirun"):
        pytest.skip("mpirun is not installed, so the MPI communicator cannot be tested: "
                    "apt-get install openmpi-bin libopenmpi-dev (install.sh does)")
    build_dir, _ = _build("plain")
    result = subprocess.run(["ctest", "--output-on-failure", "-R", "^runtime\\.comm_mpi$"], cwd=build_dir,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert "1 tests passed" in output or "100% tests passed, 0 tests failed out of 1" in output, (
        "mpirun is installed but ctest ran no passing runtime.comm_mpi (CMake found no MPI? install "
        f"libopenmpi-dev and delete {build_dir}):\n{output[-6000:]}")


CUDA_BUILD = REPO / ".cache" / "build-runtime-cuda"
CUDA_TARGETS = ["test_cuda_device", "test_model_device", "test_nccl_communicator",
                "test_nccl_communicator_without_mpi"]


def _cuda_build() -> Path:
    """The FLOWC_CUDA=ON build of the CUDA tests; skips the test where nvcc or cuBLASLt is missing."""
    if not shutil.which("nvcc"):
        pytest.skip("nvcc is not on PATH, so the CUDA device cannot be built: install the CUDA toolkit")
    if not (CUDA_BUILD / "CMakeCache.txt").exists():
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        # This Python's wheels (pip install "flowc[cuda]") provide cuBLASLt where the toolkit has none.
        result = subprocess.run(["cmake", "-S", ".", "-B", str(CUDA_BUILD), *generator, "-DCMAKE_BUILD_TYPE=Release",
                                 "-DFLOWC_CUDA=ON", f"-DPython3_EXECUTABLE={sys.executable}"],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        if result.returncode and 'pip install "flowc[cuda]"' in output:
            shutil.rmtree(CUDA_BUILD)  # configure again once they are installed
            # CMake wraps the message over lines, up to its call stack.
            found = re.search(r"FLOWC_CUDA:.*?(?=\nCall Stack|\n\s*\n|$)", output, re.S)
            reason = " ".join(found.group(0).split()) if found else output[-2000:]
            pytest.skip(f"the CUDA device cannot be built here: {reason}")
        assert result.returncode == 0, f"configuring {CUDA_BUILD} failed:\n{output[-6000:]}"
    _run(["cmake", "--build", str(CUDA_BUILD), "-j2", "--target", *CUDA_TARGETS], timeout=1200)
    return CUDA_BUILD


def _ctest_cuda(build_dir: Path, labels: list[str], report_section, title: str) -> str:
    result = subprocess.run(["ctest", "--output-on-failure", "-V", *labels], cwd=build_dir,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    summary = "\n".join(line for line in output.splitlines()
                        if re.search(r"Test +#|tests passed|Skipped|no usable GPU|: ok$", line))
    report_section(title, summary)
    print(summary)
    assert result.returncode == 0, f"ctest failed in {build_dir}:\n{output[-8000:]}"
    return output


def test_cuda_device_without_gpu_parts(report_section, toolchain):
    """The CUDA device, the NCCL communicator and the cuda model path built with FLOWC_CUDA=ON; what
    needs no GPU runs (with none, CudaDevice::create and flowc_model_load must fail with the clear
    UNAVAILABLE error; the NCCL communicator reads its launch, and bootstraps under mpirun)."""
    build_dir = _cuda_build()
    _ctest_cuda(build_dir, ["-L", "cuda", "-LE", "gpu"], report_section, "runtime ctest (cuda, no GPU needed)")


@pytest.mark.gpu
def test_cuda_device_on_gpu(report_section, toolchain):
    """Device memory, copies, staging, workspaces, events across streams, and a cuda model's steps
    through flowc_model_load and flowc_model_run, on a GPU."""
    build_dir = _cuda_build()
    output = _ctest_cuda(build_dir, ["-L", "gpu"], report_section, "runtime ctest (cuda, on a GPU)")
    assert "Skipped" not in output, f"a GPU test skipped itself on a machine with a GPU:\n{output[-6000:]}"
