"""The CPU target: emit a plain CMake project for a graph, build it, load it and run it.

    result = emit(graph, out_dir)          # graph optimised, shapes static
    library = build(out_dir)               # cached by a hash of the sources
    model = load(out_dir)                  # builds if needed; model.run({name: array})
    emit(graph, out_dir, physical=physical)   # a parallel plan's physical graph: every rank of its mesh
"""
from __future__ import annotations

from pathlib import Path

from .build import build
from .emit import EmitResult, check_static, emit
from .loader import CpuModel, RunError


def load(out_dir, *, threads: int | None = None, names=None, comm: str | None = None) -> CpuModel:
    """The model in `out_dir`, built first if its sources changed. `names`, (input names, output
    names) as the graph has them, replaces the C API's, which end at a NUL byte. `comm` picks
    the communicator of a model compiled for a device mesh: "local" (every rank in this
    process), "mpi" (this process's rank, under mpirun) or None (FLOWC_COMM, else MPI when an
    MPI launcher started the process, else local)."""
    library = build(out_dir)
    return CpuModel(library, Path(out_dir), threads, names, comm)


__all__ = ["CpuModel", "EmitResult", "RunError", "build", "check_static", "emit", "load"]
