"""Fixtures for target cuda: nvcc and cuBLAS (for the builds, which need no GPU), and the CPU
folder's case helpers (the CUDA op tests run the CPU target's cases)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flowc.codegen import cuda

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cpu"))   # cases.py


def cuda_toolchain_missing() -> str | None:
    if not cuda.nvcc():
        return "nvcc is not installed (the CUDA toolkit)"
    try:
        import nvidia.cu13  # noqa: F401  (the wheels of pip install "flowc[cuda]")
        return None
    except ImportError:
        pass
    for root in (Path(cuda.nvcc()).resolve().parents[1],):
        if any((root / lib).glob("libcublasLt.so*") for lib in ("lib64", "lib")):
            return None
    return "no cuBLASLt (pip install \"flowc[cuda]\", or a CUDA toolkit with cuBLAS)"


@pytest.fixture(scope="session")
def cuda_toolchain(toolchain):
    """Skips a test that builds CUDA where nvcc or cuBLASLt is missing."""
    missing = cuda_toolchain_missing()
    if missing:
        pytest.skip(f"needs the CUDA toolkit and cuBLASLt: {missing}")
