"""ir/passes/precision.py: f32 graphs stored in f16 or bf16 where target cuda has half kernels.

The numpy reference is the oracle: it computes half tensors in f32 and rounds each op's result,
which is what the CUDA kernels do. Tolerances against the f32 graph, relative to the largest
output magnitude (the errors grow with it): fp16 1e-2, bf16 5e-2 (an 8-bit mantissa)."""
from __future__ import annotations

import numpy as np
import pytest

import flowc
from flowc import CompileError, GraphBuilder
from flowc.api import import_model
from flowc.codegen.cuda import half_code
from flowc.ir.interpreter import run
from flowc.ir.passes import optimize
from flowc.ir.passes.precision import lower_precision
from models import MODELS, model_inputs

HALF = ("fp16", "bf16")
TOLERANCE = {"fp16": 1e-2, "bf16": 5e-2}   # |got - f32| <= tol * max|f32| + tol * |f32|


def _assert_close(got: dict, want: dict, precision: str) -> float:
    """The worst error relative to each output's largest magnitude; asserts the tolerance."""
    worst = 0.0
    for key, expected in want.items():
        assert got[key].dtype == expected.dtype == np.float32, key
        scale = float(np.max(np.abs(expected)))
        tol = TOLERANCE[precision]
        np.testing.assert_allclose(got[key], expected, rtol=tol, atol=tol * scale, err_msg=f"{precision}: {key}")
        worst = max(worst, float(np.max(np.abs(got[key] - expected))) / scale)
    return worst


def _mlp_with_resize() -> flowc.ir.Graph:
    """MatMul (half kernel) -> linear Resize (f32 only) -> MatMul and Mul, the weight and the bias
    read on both sides."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("mixed")
    x = b.input("x", "f32", [1, 1, 4, 8])
    w = rng.standard_normal((8, 8)).astype(np.float32)
    shared = b.const(rng.standard_normal(8).astype(np.float32), name="bias")
    h = b.relu(b.matmul(x, w) + shared)
    scales = b.const(np.array([1, 1, 2, 1], np.float32), name="scales")
    r = b.resize(h, None, scales, mode="linear")
    y = b.matmul(r, w)
    b.output(b.mul(r, shared), name="side")
    b.output(y, name="y")
    return b.build()


@pytest.mark.parametrize("precision", HALF)
def test_interface_and_placement(precision):
    g = lower_precision(optimize(_mlp_with_resize()), precision, half_code)
    half = {"fp16": "f16", "bf16": "bf16"}[precision]
    assert [(v.name, v.type.dtype.name) for v in g.inputs] == [("x", "f32")]
    assert [(v.name, v.type.dtype.name) for v in g.outputs] == [("side", "f32"), ("y", "f32")]
    placed = {}
    for node in g.nodes:
        dts = {v.type.dtype.name for v in (*node.inputs, *node.outputs) if v is not None and v.type.dtype.is_float}
        if node.op == "Cast":
            assert len(dts) == 2, node    # casts only where f32 and half meet
        else:
            placed.setdefault(node.op, set()).update(dts)
    # the products start half, Relu and Add follow them; Resize has no half kernel, and the Mul
    # after it follows its f32 operand
    assert placed == {"MatMul": {half}, "Add": {half}, "Relu": {half}, "Resize": {"f32"}, "Mul": {"f32"}}
    # the weight, read by both products, is converted once; the bias is read in both types
    assert sorted(v.type.dtype.name for v in g.constants if v.type.dtype.is_float and v.name != "scales") == \
        sorted(["f32", half, half])


def test_f32_data_is_not_narrowed_by_ops_that_only_follow():
    """Data movement and comparisons of f32 graph inputs stay f32: 70000 does not become inf,
    1.0002 > 1.0001 stays true."""
    b = GraphBuilder("follow")
    x = b.input("x", "f32", [2, 3])
    values, _ = b.top_k(b.transpose(x, perm=[1, 0]), np.array([1]), outputs=["values", "indices"])
    b.output(values, name="top")
    b.output(b.greater(x, np.float32(1.0001)), name="greater")
    b.output(b.identity(x), name="same")
    g = lower_precision(optimize(b.build()), "fp16", half_code)
    assert not any(v.type.dtype.name == "f16" for n in g.nodes for v in n.outputs)
    x = np.array([[70000, 1.0002, 0], [1, 2, 3]], np.float32)
    got = run(g, {"x": x})
    np.testing.assert_array_equal(got["top"], [[70000], [2], [3]])
    np.testing.assert_array_equal(got["greater"], x > np.float32(1.0001))


@pytest.mark.parametrize("square", ["Pow", "Mul"])
@pytest.mark.parametrize("scale", [300.0, 1e-5])
def test_rms_norm_out_of_fp16_range_keeps_f32(square, scale):
    """x / sqrt(mean(x^2) + 1e-12) after a product (which starts half): x^2 overflows f16 at
    |x| = 300 and vanishes at 1e-5, and f16 has no 1e-12; fp16 must still give 1s."""
    b = GraphBuilder("rms")
    x = b.matmul(b.input("x", "f32", [2, 8]), np.eye(8, dtype=np.float32))
    sq = b.pow(x, np.float32(2)) if square == "Pow" else b.mul(x, x)
    rms = b.sqrt(b.reduce_mean(sq, np.array([-1]), keepdims=1) + np.float32(1e-12))
    b.output(b.div(x, rms), name="y")
    g = lower_precision(optimize(b.build()), "fp16", half_code)
    got = run(g, {"x": np.full((2, 8), scale, np.float32)})["y"]
    np.testing.assert_allclose(got, np.ones((2, 8)), rtol=TOLERANCE["fp16"])


@pytest.mark.parametrize("precision", HALF)
def test_mixed_graph_matches_f32_reference(precision):
    g = optimize(_mlp_with_resize())
    x = {"x": np.random.default_rng(1).standard_normal((1, 1, 4, 8)).astype(np.float32)}
    want = run(g, x)
    got = run(lower_precision(g.copy(), precision, half_code), x)
    _assert_close(got, want, precision)


def test_fp32_leaves_the_graph_alone():
    g = optimize(_mlp_with_resize())
    text = str(g)
    assert lower_precision(g, "fp32", half_code) is g and str(g) == text


def test_out_of_range_constants_saturate():
    """f16's largest finite value is 65504: a mask of -3.4e38 stays finite, infinities stay."""
    b = GraphBuilder("mask")
    x = b.matmul(b.input("x", "f32", [2, 4]), np.eye(4, dtype=np.float32))   # half from here on
    mask = b.const(np.array([0, np.finfo(np.float32).min, -np.inf, 1e6], np.float32), name="mask")
    b.output(b.softmax(x + mask, axis=-1), name="y")
    g = lower_precision(optimize(b.build()), "fp16", half_code)
    (narrowed,) = [v for v in g.constants if v.type.dtype.name == "f16" and v.type.shape == (4,)]
    np.testing.assert_array_equal(narrowed.const.astype(np.float32), [0, -65504, -np.inf, 65504])
    y = run(g, {"x": np.zeros((2, 4), np.float32)})["y"]
    assert np.isfinite(y).all()


def test_an_output_read_twice_and_used_inside():
    b = GraphBuilder("twice")
    x = b.input("x", "f32", [3])
    h = b.relu(x)
    b.output(h, name="h")
    b.output(b.exp(h), name="e")
    g = optimize(b.build())
    g.outputs.append(g.outputs[0])   # one value as two outputs
    g = lower_precision(g, "bf16", half_code)
    assert [v.name for v in g.outputs] == ["h", "e", "h"] and g.outputs[0] is g.outputs[2]
    got = run(g, {"x": np.array([-1, 0.5, 2], np.float32)})
    np.testing.assert_allclose(got["e"], np.exp([0, 0.5, 2]), rtol=1e-2)


def test_compile_takes_the_precision_on_reference_and_refuses_it_on_cpu(tmp_path):
    g = _mlp_with_resize()
    x = {"x": np.ones((1, 1, 4, 8), np.float32)}
    model = flowc.load(flowc.compile(g, target="reference", precision="fp16", out_dir=tmp_path / "ref").path)
    want = flowc.load(flowc.compile(g, target="reference", out_dir=tmp_path / "f32").path).run(x)
    _assert_close(model.run(x), want, "fp16")
    with pytest.raises(CompileError, match="precision 'fp16': target cpu computes in fp32"):
        flowc.compile(g, target="cpu", precision="fp16", out_dir=tmp_path / "cpu")
    with pytest.raises(CompileError, match="precision 'fp8' is not one flowc computes in; use one of fp32, fp16, bf16"):
        flowc.compile(g, target="reference", precision="fp8", out_dir=tmp_path / "bad")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_in_half_match_f32(exported_model, name, report_section):
    inputs = model_inputs(name, seed=1)
    g = optimize(import_model(str(exported_model(name, 18)), {k: list(v.shape) for k, v in inputs.items()}))
    want = run(g, inputs)
    lines = []
    for precision in HALF:
        worst = _assert_close(run(lower_precision(g.copy(), precision, half_code), inputs), want, precision)
        lines.append(f"{precision}: max |error| / max |f32| = {worst:.2g}")
    report_section(f"precision on the reference: {name}", "; ".join(lines))
