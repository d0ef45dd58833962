"""The test models on one GPU (target cuda) against onnxruntime: f32 at rtol 1e-3, atol 1e-4;
and many concurrent requests through one loaded model, which pipeline through the upload,
compute and download actors, every answer checked."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

import flowc
import models

REPO = Path(__file__).resolve().parents[3]
MODELS = ["mlp", "resnet", "vit", "bert", "gpt2", "tinycnn"]
RTOL, ATOL = 1e-3, 1e-4
BATCH = 2


def _inputs(name: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if name == "tinycnn":
        return {"image": rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)}
    return models.MODELS[name].inputs(BATCH, rng)


@pytest.fixture(scope="module")
def compiled(exported_model, tmp_path_factory, cuda_toolchain):
    """`compiled(name)`: (onnx path, loaded model) of a test model on target cuda, built once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            path = REPO / "examples/models/tinycnn.onnx" if name == "tinycnn" else exported_model(name, 18)
            shapes = {k: list(v.shape) for k, v in _inputs(name, 0).items()}
            artifact = flowc.compile(str(path), target="cuda", arch="sm_80,sm_90",
                                     out_dir=tmp_path_factory.mktemp(f"cuda-{name}"), input_shapes=shapes)
            cache[name] = (path, flowc.load(artifact.path))
        return cache[name]
    return get


@pytest.mark.gpu
@pytest.mark.parametrize("name", MODELS)
def test_model_matches_onnxruntime(compiled, name, report_section):
    path, model = compiled(name)
    inputs = _inputs(name, seed=1)
    got = model.run(inputs)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    worst = 0.0
    for key, expected in want.items():
        assert got[key].shape == expected.shape, key
        np.testing.assert_allclose(got[key], expected, rtol=RTOL, atol=ATOL, err_msg=f"{name}: output {key}")
        worst = max(worst, float(np.max(np.abs(got[key].astype(np.float64) - expected))))
    report_section(f"cuda target: {name}", f"max abs error against onnxruntime: {worst:.3g}")


@pytest.mark.gpu
def test_concurrent_requests_each_get_their_answer(compiled):
    _, model = compiled("resnet")
    requests = [_inputs("resnet", seed=100 + i) for i in range(8)]
    answers = [model.run(r) for r in requests]
    failures = []

    def caller(t: int):
        for i in range(20):
            k = (t * 20 + i) % len(requests)
            got = model.run(requests[k])
            if any(not np.array_equal(got[key], answers[k][key]) for key in got):
                failures.append((t, i, k))

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
