"""Dynamic batch on target cpu: compiled once with max_batch, run at every batch up to it."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

import flowc
import models
from flowc.codegen.cpu import batch
from flowc.errors import CompileError, InputError
from flowc.frontend.builder import GraphBuilder

from models import REPO, run_in_threads

MAX_BATCH = 4


@pytest.fixture(scope="module")
def dynamic(exported_model, tmp_path_factory, toolchain):
    """name -> (onnx path, model compiled with max_batch); compiled on first use."""
    done = {}

    def get(name: str, opset: int):
        if (name, opset) not in done:
            path = exported_model(name, opset)
            out = tmp_path_factory.mktemp(f"{name}{opset}")
            artifact = flowc.compile(path, target="cpu", out_dir=out, max_batch=MAX_BATCH)
            done[name, opset] = (path, artifact, flowc.load(out))
        return done[name, opset]
    return get


@pytest.mark.parametrize("name,opset", [("resnet", 17), ("bert", 18), ("gpt2", 17), ("vit", 18)])
def test_every_batch_up_to_the_bound_matches_onnxruntime(dynamic, name, opset):
    import onnxruntime as ort
    path, artifact, model = dynamic(name, opset)
    assert artifact.emit.max_batch == MAX_BATCH
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    spec = models.MODELS[name]
    for b in range(1, MAX_BATCH + 1):
        feeds = spec.inputs(b, np.random.default_rng(b))
        got = model.run(feeds)
        for out_name, want in zip(spec.output_names, session.run(None, feeds)):
            assert got[out_name].shape == want.shape
            np.testing.assert_allclose(got[out_name], want, rtol=1e-3, atol=1e-4, err_msg=f"batch {b}")


def test_batch_outside_the_bound_is_an_input_error(dynamic):
    _, _, model = dynamic("bert", 18)
    feeds = models.MODELS["bert"].inputs(MAX_BATCH + 1, np.random.default_rng(0))
    with pytest.raises(InputError, match=r'input "input_ids" has shape \[5, 8\]: dim 0 must be 1\.\.4, batch 1\.\.4 \(the bound'):
        model.run(feeds)
    feeds = models.MODELS["bert"].inputs(2, np.random.default_rng(0))
    feeds["attention_mask"] = feeds["attention_mask"][:1]   # the inputs disagree on the batch
    with pytest.raises(InputError, match="attention_mask"):
        model.run(feeds)


def test_concurrent_callers_with_different_batches(dynamic):
    _, _, model = dynamic("resnet", 17)
    spec = models.MODELS["resnet"]
    cases = [spec.inputs(b, np.random.default_rng(10 + b)) for b in range(1, MAX_BATCH + 1)]
    expected = [model.run(feeds)["y"] for feeds in cases]
    failures = []

    def caller(t: int) -> None:
        for i in range(12):
            k = (t + i) % len(cases)
            got = model.run(cases[k])["y"]
            if got.shape != expected[k].shape or not np.array_equal(got, expected[k]):
                failures.append((t, i, k))

    run_in_threads(caller)
    assert not failures


def test_c_example_runs_the_batch_its_inputs_hold(tmp_path, toolchain):
    out = tmp_path / "tinycnn"
    flowc.compile(REPO / "examples" / "models" / "tinycnn.onnx", target="cpu", out_dir=out, max_batch=MAX_BATCH)
    model = flowc.load(out)
    assert "Compiled for any batch from 1 to 4" in (out / "model.h").read_text()
    image = np.random.default_rng(3).standard_normal((3, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "image.npy", image)
    run = subprocess.run([str(out / "build" / "main"), str(out), str(tmp_path / "image.npy"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert '"logits" f32[3,10]:' in run.stdout
    np.testing.assert_array_equal(np.load(tmp_path / "output0.npy"), model.run({"image": image})["logits"])
    np.save(tmp_path / "big.npy", np.zeros((5, 3, 32, 32), np.float32))
    bad = subprocess.run([str(out / "build" / "main"), str(out), str(tmp_path / "big.npy")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "batch 5 is outside 1..4" in bad.stderr


def test_static_model_refuses_run_batch(tmp_path, toolchain):
    b = GraphBuilder("static")
    x = b.input("x", "f32", [2, 3])
    b.output(b.op("Relu", x), "y")
    model = flowc.load(flowc.compile(b.build(), target="cpu", out_dir=tmp_path / "m").path)
    compiled = model._compiled
    assert compiled.max_batch is None
    buf = (ctypes.c_void_p * 1)(np.zeros((2, 3), np.float32).ctypes.data)
    status = compiled._lib.flowc_model_run_batch(compiled._handle, 1, buf, buf)
    with pytest.raises(flowc.FlowcError, match="compiled with fixed shapes"):
        compiled._check(status)


def _batch_graph(name: str, shape_after=None):
    b = GraphBuilder(name)
    x = b.input("x", "f32", ["N", 4])
    return b, x


def test_dims_each_affine_in_the_batch_run(tmp_path, toolchain):
    b, x = _batch_graph("gram")
    b.output(b.op("MatMul", x, b.op("Transpose", x, perm=[1, 0])), "gram")   # [N, N]: each dim is N
    model = flowc.load(flowc.compile(b.build(), target="cpu", out_dir=tmp_path / "gram", max_batch=4).path)
    for n in range(1, 5):
        x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
        np.testing.assert_allclose(model.run({"x": x})["gram"], x @ x.T, rtol=1e-5, atol=1e-5)


def test_a_number_quadratic_in_the_batch_is_refused(tmp_path):
    b, x = _batch_graph("gram")
    gram = b.op("MatMul", x, b.op("Transpose", x, perm=[1, 0]))
    b.output(b.op("Relu", gram), "y")   # one loop over N * N elements
    with pytest.raises(CompileError, match=r"dynamic batch: step .* is not a multiple of the batch plus a constant"):
        flowc.compile(b.build(), target="cpu", out_dir=tmp_path / "gram", max_batch=4)


def test_max_batch_needs_a_symbolic_batch(tmp_path):
    b = GraphBuilder("fixed")
    x = b.input("x", "f32", [2, 4])
    b.output(b.op("Relu", x), "y")
    with pytest.raises(CompileError, match=r"max_batch=4: no input has a symbolic leading \(batch\) dim"):
        flowc.compile(b.build(), target="cpu", out_dir=tmp_path / "a", max_batch=4)
    b, x = _batch_graph("bad")
    b.output(b.op("Relu", x), "y")
    graph = b.build()
    for bad in (0, -1, True, 2.0, "8"):
        with pytest.raises(CompileError, match="max_batch must be a positive int"):
            flowc.compile(graph, target="cpu", out_dir=tmp_path / "b", max_batch=bad)
    assert not (tmp_path / "b").exists()


def test_second_symbol_must_be_pinned(tmp_path):
    b = GraphBuilder("two")
    x = b.input("x", "f32", ["N", "S"])
    b.output(b.op("Relu", x), "y")
    with pytest.raises(CompileError, match=r'input "x" has type f32\[N,S\]: dim 1 \(S\) is symbolic'):
        flowc.compile(b.build(), target="cpu", out_dir=tmp_path / "a", max_batch=4)


def test_reference_target_keeps_the_bound(tmp_path):
    b, x = _batch_graph("ref")
    b.output(b.op("Relu", x), "y")
    model = flowc.load(flowc.compile(b.build(), target="reference", out_dir=tmp_path / "r", max_batch=3).path)
    assert model.max_batch == 3
    assert model.run({"x": np.ones((3, 4), np.float32)})["y"].shape == (3, 4)
    for rows in (0, 4):
        with pytest.raises(InputError, match=rf"batch {rows} is outside 1\.\.3, the bound"):
            model.run({"x": np.ones((rows, 4), np.float32)})


def test_affine_numbers():
    points = batch.sample_points(4)
    assert batch.affine([3 * b + 7 for b in points], points) == (3, 7)
    assert batch.affine([b * b for b in points], points) is None
    assert batch.affine([100 - b for b in points], points) is None       # shrinking with the batch
    assert batch._merge_line(["f(8, 4);", "f(10, 4);", "f(22, 4);"], points, "s") == "f((2 * ctx->batch), 4);"
    assert batch._merge_line(["static const int64_t s[2] = {4, 9};", "static const int64_t s[2] = {5, 9};",
                              "static const int64_t s[2] = {11, 9};"], points, "s") == \
        "const int64_t s[2] = {ctx->batch, 9};"
    with pytest.raises(CompileError, match="is not an integer"):
        batch._merge_line(["g(0.25f);", "g(0.2f);", "g(0.1f);"], points, "s")


def test_bound_of_one(tmp_path, toolchain):
    b, x = _batch_graph("one")
    b.output(b.op("Relu", x), "y")
    model = flowc.load(flowc.compile(b.build(), target="cpu", out_dir=tmp_path / "one", max_batch=1).path)
    assert model._compiled.max_batch == 1
    np.testing.assert_array_equal(model.run({"x": -np.ones((1, 4), np.float32)})["y"], np.zeros((1, 4)))
    with pytest.raises(InputError, match=r"expected shape \[1, 4\], got \[2, 4\]"):
        model.run({"x": np.ones((2, 4), np.float32)})


def _refused(tmp_path, build) -> str:
    b, x = _batch_graph("g")
    b.output(build(b, x), "y")
    with pytest.raises(CompileError) as e:
        flowc.compile(b.build(), target="cpu", out_dir=tmp_path / "g", max_batch=5)
    return str(e.value)


def test_what_three_sample_points_cannot_vouch_for_is_refused(tmp_path):
    """Sizes that stop following the batch, batch 1's special meanings, a graph invalid at small
    batches: each would run wrong below the bound, so each is a CompileError (found in review)."""
    first3 = _refused(tmp_path, lambda b, x: b.op("Slice", x, np.array([0]), np.array([3]), np.array([0])))
    assert 'has type f32[?,4]: dim ? is not a constant or a multiple of the batch N' in first3
    squeezed = _refused(tmp_path, lambda b, x: b.op("Squeeze", b.op("Unsqueeze", x, np.array([1]))))
    assert 'its rank is not known' in squeezed or 'is not a constant or a multiple' in squeezed
    is_one = _refused(tmp_path, lambda b, x: b.op(
        "Where", b.op("Equal", b.op("Shape", x, start=0, end=1), np.array([1])), np.array(100.0, np.float32), x))
    assert "Equal node" in is_one and "computes on the batch size" in is_one
    topk = _refused(tmp_path, lambda b, x: b.op("TopK", x, np.array([3]), outputs=2, axis=0)[0])
    assert topk.startswith("dynamic batch: at batch 1, TopK node")


def test_unsigned_literals_merge_into_valid_cpp():
    points = batch.sample_points(4)
    assert batch._merge_line(["f(4ULL);", "f(5ULL);", "f(11ULL);"], points, "s") == \
        "f(static_cast<uint64_t>(ctx->batch));"
