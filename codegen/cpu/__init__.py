"""The CPU target: emit a plain CMake project for a graph, build it, load it and run it.

    result = emit(graph, out_dir)          # graph optimised, shapes static
    library = build(out_dir)               # cached by a hash of the sources
    model = load(out_dir)                  # builds if needed; model.run({name: array})
"""
from __future__ import annotations

from pathlib import Path

from .build import build
from .emit import EmitResult, check_static, emit
from .loader import CpuModel, RunError


def load(out_dir, *, threads: int | None = None, names=None) -> CpuModel:
    """The model in `out_dir`, built first if its sources changed. `names`, (input names, output
    names) as the graph has them, replaces the C API's, which end at a NUL byte."""
    library = build(out_dir)
    return CpuModel(library, Path(out_dir), threads, names)


__all__ = ["CpuModel", "EmitResult", "RunError", "build", "check_static", "emit", "load"]
