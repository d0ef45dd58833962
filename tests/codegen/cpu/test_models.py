"""Each test model through target cpu against the reference interpreter, and many concurrent
requests through one loaded model, every answer checked."""
from __future__ import annotations


import numpy as np
import pytest

import flowc
from flowc.errors import InputError

from models import model_inputs, run_in_threads

MODELS = ["mlp", "resnet", "vit", "bert", "gpt2", "tinycnn"]
RTOL, ATOL = 1e-4, 1e-5   # f32


@pytest.mark.parametrize("name", MODELS)
def test_model_matches_reference(compiled, name, report_section):
    graph, model = compiled(name)
    inputs = model_inputs(name, seed=1)
    got = model.run(inputs)
    want = flowc.ir.run(graph, inputs)
    assert list(got) == [v.name for v in graph.outputs]
    worst = 0.0
    for key, expected in want.items():
        assert got[key].dtype == expected.dtype and got[key].shape == expected.shape
        np.testing.assert_allclose(got[key], expected, rtol=RTOL, atol=ATOL, err_msg=f"{name}: output {key}")
        worst = max(worst, float(np.max(np.abs(got[key].astype(np.float64) - expected))))
    report_section(f"cpu target: {name}", f"max abs error against flowc.ir.run: {worst:.3g}")


def test_concurrent_requests_each_get_their_answer(compiled):
    graph, model = compiled("resnet")
    requests = [model_inputs("resnet", seed=100 + i) for i in range(8)]
    answers = [flowc.ir.run(graph, r)["y"] for r in requests]
    failures = []

    def caller(t: int):
        for i in range(20):
            k = (t * 20 + i) % len(requests)
            got = model.run(requests[k])["y"]
            if not np.allclose(got, answers[k], rtol=RTOL, atol=ATOL):
                failures.append((t, i, k))

    run_in_threads(caller)
    assert not failures


def test_inputs_are_checked_naming_the_input(compiled):
    _, model = compiled("mlp")
    with pytest.raises(InputError, match='input "x": expected shape'):
        model.run({"x": np.zeros((3, 16), np.float32)})
    with pytest.raises(InputError, match='input "x": expected dtype f32'):
        model.run({"x": np.zeros((2, 16), np.float64)})
    with pytest.raises(InputError, match='missing input "x"'):
        model.run({})


def test_threads_can_change_between_runs(compiled):
    graph, model = compiled("mlp")
    inputs = model_inputs("mlp", seed=3)
    want = flowc.ir.run(graph, inputs)["y"]
    model.set_threads(1)
    assert model.threads == 1
    np.testing.assert_allclose(model.run(inputs)["y"], want, rtol=RTOL, atol=ATOL)
    model.set_threads(2)
    np.testing.assert_allclose(model.run(inputs)["y"], want, rtol=RTOL, atol=ATOL)
