"""Session fixtures for the CPU target: each test model compiled (batch 2) and built once."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import models
from flowc.api import import_model
from flowc.codegen import cpu
from flowc.ir.passes import optimize

REPO = Path(__file__).resolve().parents[3]
BATCH = 2


def model_inputs(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if name == "tinycnn":
        return {"image": rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)}
    return models.MODELS[name].inputs(BATCH, rng)


@pytest.fixture(scope="session")
def compiled(exported_model, tmp_path_factory, toolchain):
    """`compiled(name)`: (optimised graph, loaded CpuModel) of a test model, built once per run."""
    cache = {}

    def get(name: str):
        if name not in cache:
            path = REPO / "examples/models/tinycnn.onnx" if name == "tinycnn" else exported_model(name, 18)
            shapes = {k: v.shape for k, v in model_inputs(name).items()}
            graph = optimize(import_model(str(path), shapes))
            out = tmp_path_factory.mktemp(f"cpu-{name}")
            cpu.emit(graph, out)
            cache[name] = (graph, cpu.load(out))
        return cache[name]

    return get


def run_in_threads(caller, threads: int = 4) -> None:
    """caller(t) on `threads` threads at once, t = 0, 1, ...; returns when all are done."""
    workers = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
