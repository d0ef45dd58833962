"""The CUDA target: emit a plain CMake project for a graph (one NVIDIA GPU), build it with nvcc,
load it and run it.

    result = emit(graph, out_dir, arch="sm_90")   # graph optimised, shapes static
    library = build(out_dir)                      # nvcc and cuBLAS; no GPU needed
    model = load(out_dir)                         # needs a GPU and its driver
"""
from __future__ import annotations

from pathlib import Path

from ..cpu.loader import CpuModel, RunError
from .build import build, nvcc
from .emit import arch_list, emit, half_code


def load(out_dir, *, names=None, device: int = 0, comm: str | None = None) -> CpuModel:
    """The model in `out_dir` on GPU number `device`, built first if its sources changed. Where
    there is no GPU or no driver, the CompileError says so (flowc_model_load's message). A model
    compiled for a mesh runs its ranks on GPUs `device`, `device` + 1, ... round the GPUs there
    are; `comm` is "local" (every rank in this process, collectives staged through host memory),
    "mpi" (one process per rank, staged too), "nccl" (one process per GPU) or None (FLOWC_COMM or
    the launcher decides)."""
    return CpuModel(build(out_dir), Path(out_dir), None, names, comm, device)


__all__ = ["RunError", "arch_list", "build", "emit", "load", "nvcc", "half_code"]
