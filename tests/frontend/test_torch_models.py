"""Torch-exported models (tests/models.py) through flowc, against onnxruntime.

Each model is exported once per run, at opsets 17 and 18, batch axis dynamic,
and checked at batch 1 and 3 through the importer + reference interpreter and
through `flowc.compile(target="reference")` + `flowc.load`.
"""
from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
import pytest

import flowc
from flowc.frontend.onnx import load
from models import MODELS, OPSETS

RTOL, ATOL = 1e-3, 1e-4
BATCHES = (1, 3)

CASES = [pytest.param(name, opset, id=f"{name}-opset{opset}") for name in MODELS for opset in OPSETS]


def _feeds(name: str, batch: int) -> dict[str, np.ndarray]:
    return MODELS[name].inputs(batch, np.random.default_rng(batch))


@functools.lru_cache(maxsize=None)
def _onnxruntime(path: str, name: str, batch: int) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip((o.name for o in session.get_outputs()), session.run(None, _feeds(name, batch))))


def _assert_matches_onnxruntime(run, path, name: str, what: str) -> None:
    for batch in BATCHES:
        want = _onnxruntime(str(path), name, batch)
        got = run(_feeds(name, batch))
        assert list(got) == list(want), f"{what}: outputs {list(got)}, onnxruntime gives {list(want)}"
        for key, expected in want.items():
            assert got[key].dtype == expected.dtype and got[key].shape == expected.shape, \
                f"{what}, batch {batch}, {key}: {got[key].dtype}{list(got[key].shape)}, " \
                f"onnxruntime gives {expected.dtype}{list(expected.shape)}"
            np.testing.assert_allclose(got[key], expected, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{what}, batch {batch}, output {key}")


@pytest.mark.parametrize("name, opset", CASES)
def test_reference_interpreter_matches_onnxruntime(exported_model, name, opset):
    path = exported_model(name, opset)
    graph = load(path)
    assert [v.type.shape[0] for v in graph.inputs] == ["batch"] * len(graph.inputs), str(graph.inputs)
    _assert_matches_onnxruntime(lambda feeds: flowc.ir.run(graph, feeds), path, name,
                                f"{name} opset {opset}, reference interpreter")


@pytest.mark.parametrize("name, opset", CASES)
def test_reference_target_matches_onnxruntime(exported_model, tmp_path, name, opset):
    path = exported_model(name, opset)
    artifact = flowc.compile(path, target="reference", out_dir=tmp_path / "artifact")
    model = flowc.load(artifact.path)
    _assert_matches_onnxruntime(model.run, path, name, f"{name} opset {opset}, compiled (reference target)")
