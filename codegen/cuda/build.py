"""Build an emitted CUDA project: CMake with nvcc, no GPU needed.

The project builds the way a CPU one does (codegen/cpu/build.py: cached by a hash of its sources,
progress reported the same way), with its runtime and kernel objects in a runtime cache of their
own ($FLOWC_CACHE_DIR/cuda-runtime, keyed also by nvcc and the GPU architectures), so that a
model's build compiles only its model.cu once the kernel library has been built for its arch.
"""
from __future__ import annotations

import ctypes.util
import os
import shutil
from pathlib import Path

from flowc.errors import CompileError

from ..cpu.build import BuildProgress, RuntimeParts
from ..cpu.build import build as build_project


def nvcc() -> str | None:
    """The nvcc CMake will use: $CUDACXX, else the one on PATH."""
    return os.environ.get("CUDACXX") or shutil.which("nvcc")


def nccl_library() -> str:
    """Which NCCL runtime/cmake/FlowcCuda.cmake will link, as far as Python can tell (a system
    one, else the wheel's with its nccl.h), as a tool path for the runtime cache's key, or
    "no-nccl": the runtime compiles its NCCL communicator only where NCCL is, so installing or
    removing NCCL must not reuse objects built the other way."""
    found = ctypes.util.find_library("nccl")   # a soname: stands for the system's NCCL
    if found:
        return found
    try:
        import nvidia.nccl as wheel
    except ImportError:
        return "no-nccl"
    root = Path(list(wheel.__path__)[0])
    library = root / "lib" / "libnccl.so.2"
    return str(library) if library.is_file() and (root / "include" / "nccl.h").is_file() else "no-nccl"


def build(out_dir, *, jobs: int | None = None, progress: BuildProgress | None = None,
          runtime_cache: bool = True) -> Path:
    """Build the CUDA project in `out_dir` with `jobs` parallel jobs (None: one per core: nvcc
    builds for several architectures are slow); returns its shared library."""
    if not nvcc():
        raise CompileError("target cuda builds with nvcc, which is neither $CUDACXX nor on PATH: install the CUDA "
                           "toolkit (12.x or 13.x), and cuBLAS with it or through pip install \"flowc[cuda]\"")
    parts = RuntimeParts(("flowc_runtime", "flowc_runtime_cuda", "flowc_kernels_cuda"), "cuda-runtime",
                         b"flowc cuda runtime objects 1", (nvcc(), nccl_library()))   # as in templates/CMakeLists.txt
    return build_project(out_dir, jobs=jobs or os.cpu_count() or 2, progress=progress, runtime_cache=runtime_cache,
                         parts=parts)
