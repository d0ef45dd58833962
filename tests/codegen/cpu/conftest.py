"""Session fixtures for the CPU target: each test model compiled (batch 2) and built once."""
from __future__ import annotations

import pytest

from flowc.api import import_model
from flowc.codegen import cpu
from flowc.ir.passes import optimize
from models import TINYCNN, model_inputs


@pytest.fixture(scope="session")
def compiled(exported_model, tmp_path_factory, toolchain):
    """`compiled(name)`: (optimised graph, loaded CpuModel) of a test model, built once per run."""
    cache = {}

    def get(name: str):
        if name not in cache:
            path = TINYCNN if name == "tinycnn" else exported_model(name, 18)
            shapes = {k: v.shape for k, v in model_inputs(name).items()}
            graph = optimize(import_model(str(path), shapes))
            out = tmp_path_factory.mktemp(f"cpu-{name}")
            cpu.emit(graph, out)
            cache[name] = (graph, cpu.load(out))
        return cache[name]

    return get
