"""The test models on one GPU (target cuda) against onnxruntime: f32 at rtol 1e-3, atol 1e-4;
and many concurrent requests through one loaded model, which pipeline through the upload,
compute and download actors, every answer checked."""
from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

import flowc
from models import TINYCNN, model_inputs, run_in_threads

MODELS = ["mlp", "resnet", "vit", "bert", "gpt2", "tinycnn"]
RTOL, ATOL = 1e-3, 1e-4


@pytest.fixture(scope="module")
def compiled(exported_model, tmp_path_factory, cuda_toolchain):
    """`compiled(name)`: (onnx path, loaded model) of a test model on target cuda, built once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            path = TINYCNN if name == "tinycnn" else exported_model(name, 18)
            shapes = {k: list(v.shape) for k, v in model_inputs(name, 0).items()}
            artifact = flowc.compile(str(path), target="cuda", arch="sm_80,sm_90",
                                     out_dir=tmp_path_factory.mktemp(f"cuda-{name}"), input_shapes=shapes)
            cache[name] = (path, flowc.load(artifact.path))
        return cache[name]
    return get


@pytest.mark.gpu
@pytest.mark.parametrize("name", MODELS)
def test_model_matches_onnxruntime(compiled, name, report_section):
    path, model = compiled(name)
    inputs = model_inputs(name, seed=1)
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
    requests = [model_inputs("resnet", seed=100 + i) for i in range(8)]
    answers = [model.run(r) for r in requests]
    failures = []

    def caller(t: int):
        for i in range(20):
            k = (t * 20 + i) % len(requests)
            got = model.run(requests[k])
            if any(not np.array_equal(got[key], answers[k][key]) for key in got):
                failures.append((t, i, k))

    run_in_threads(caller)
    assert not failures


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["resnet", "gpt2"])
def test_cuda_graph_replay_matches_the_steps_run_one_by_one(compiled, name, monkeypatch):
    """A model replays its compute steps as a CUDA graph from each arena slot's second request
    on; FLOWC_CUDA_GRAPHS=0 at load runs them one by one. Every request gets the same answer
    both ways: the first of each slot (run plainly), the second (captured), the later (replayed)."""
    _, model = compiled(name)
    monkeypatch.setenv("FLOWC_CUDA_GRAPHS", "0")
    apart = flowc.load(model.path)
    for seed in range(300, 308):
        inputs = model_inputs(name, seed=seed)
        got, want = model.run(inputs), apart.run(inputs)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6, err_msg=f"{name}, seed {seed}: {key}")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["resnet", "bert", "gpt2"])
def test_every_batch_up_to_the_bound_matches_onnxruntime(exported_model, tmp_path, cuda_toolchain, name):
    """Compiled once with max_batch=4, run at batches 1..4 (and twice at each, in turn)."""
    import models
    path = exported_model(name, 18)
    model = flowc.load(flowc.compile(str(path), target="cuda", arch="sm_80,sm_90", out_dir=tmp_path, max_batch=4).path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = models.MODELS[name]
    for b in (1, 2, 3, 4, 1, 4, 2):
        feeds = spec.inputs(b, np.random.default_rng(b))
        got = model.run(feeds)
        for key, want in zip(spec.output_names, session.run(None, feeds)):
            assert got[key].shape == want.shape, (b, key)
            np.testing.assert_allclose(got[key], want, rtol=RTOL, atol=ATOL, err_msg=f"{name}, batch {b}: {key}")
