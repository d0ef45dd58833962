"""canonicalize keeps values: decomposed LayerNorm / GELU and Gemm in every spelling the rules
accept, run by the reference interpreter before and after the pass on random data."""
from __future__ import annotations

import math

import numpy as np
import pytest

from flowc import ir
from flowc.ir import tensor_type
from flowc.ir.passes import get_pass, run_passes

RTOL = {"f32": 1e-5, "f64": 1e-12}


class Build:
    """A graph under construction: `b.op("Add", x, y, attr=...)` adds a node, numpy arrays
    become constants."""

    def __init__(self, dt: str):
        self.g = ir.Graph("g")
        self.dt = dt

    def input(self, name: str, shape) -> ir.Value:
        return self.g.add_input(name, tensor_type(self.dt, shape))

    def const(self, value, dt: str | None = None) -> ir.Value:
        return self.g.add_const(np.array(value, ir.dtype(dt or self.dt).np))

    def op(self, op: str, *inputs, **attrs) -> ir.Value:
        ins = [self.const(v) if isinstance(v, (float, np.ndarray)) else v for v in inputs]
        return self.g.add_node(op, ins, attrs=attrs).outputs[0]

    def finish(self, *outputs: ir.Value) -> ir.Graph:
        self.g.outputs = list(outputs)
        return ir.verify(self.g)


def check_canonicalize(graph: ir.Graph, expect_ops: set[str], seed: int = 0) -> None:
    """canonicalize leaves exactly `expect_ops` (beside constants), a graph that round-trips
    through its text, and the same values."""
    rng = np.random.default_rng(seed)
    feeds = {v.name: rng.standard_normal([d if isinstance(d, int) else 3 for d in v.type.shape])
             .astype(v.type.dtype.np) for v in graph.inputs}
    want = ir.run(graph, feeds)
    out = run_passes(graph, [get_pass("canonicalize")], verify_each=True)
    assert {n.op for n in out.nodes} == expect_ops, ir.print_graph(out)
    text = ir.print_graph(out)
    assert ir.print_graph(ir.parse(text, ir.graph_resources(out))) == text
    got = ir.run(out, feeds)
    for name, w in want.items():
        rtol = RTOL[out.value(name).type.dtype.name]
        np.testing.assert_allclose(got[name], w, rtol=rtol, atol=rtol, err_msg=name)


# -- LayerNorm -------------------------------------------------------------------

def decomposed_layer_norm(dt: str, shape, axes, *, square: str = "Pow", affine: bool = True,
                          eps: float = 1e-5, eps_left: bool = False, swap_affine: bool = False):
    b = Build(dt)
    rng = np.random.default_rng(1)
    x = b.input("x", shape)
    axes_c = b.const(axes, "i64")
    mean = b.op("ReduceMean", x, axes_c)
    d = b.op("Sub", x, mean)
    sq = b.op("Pow", d, np.array(2.0, ir.dtype(dt).np)) if square == "Pow" else b.op("Mul", d, d)
    var = b.op("ReduceMean", sq, axes_c)
    ve = b.op("Add", b.const(eps), var) if eps_left else b.op("Add", var, b.const(eps))
    y = b.op("Div", d, b.op("Sqrt", ve))
    if affine:
        normalized = [shape[a] for a in sorted(a % len(shape) for a in axes)]
        gamma = rng.standard_normal(normalized).astype(ir.dtype(dt).np)
        beta = rng.standard_normal(normalized).astype(ir.dtype(dt).np)
        y = b.op("Mul", gamma, y) if swap_affine else b.op("Mul", y, gamma)
        y = b.op("Add", beta, y) if swap_affine else b.op("Add", y, beta)
    return b.finish(y)


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("shape, axes", [(["B", 64], [-1]), ([2, 5, 32], [2]), (["B", 4, 6], [-2, -1]),
                                         ([3, 4, 5, 6], [1, 2, 3])])
def test_layer_norm(dt, shape, axes):
    check_canonicalize(decomposed_layer_norm(dt, shape, axes), {"LayerNormalization"})


@pytest.mark.parametrize("variant", [dict(square="Mul"), dict(eps_left=True), dict(swap_affine=True),
                                     dict(affine=False), dict(eps=1e-12), dict(eps=0.5)])
def test_layer_norm_spellings(variant):
    check_canonicalize(decomposed_layer_norm("f32", ["B", 16], [-1], **variant), {"LayerNormalization"})


# -- GELU ------------------------------------------------------------------------

def decomposed_gelu(dt: str, form: str):
    b = Build(dt)
    x = b.input("x", ["B", 7, 16])
    if form in ("erf", "erf_half_first", "erf_mul"):
        arg = b.op("Mul", x, 1 / math.sqrt(2)) if form == "erf_mul" else b.op("Div", x, math.sqrt(2))
        h = b.op("Add", b.op("Erf", arg), 1.0)
    else:
        cube = b.op("Pow", x, 3.0) if form == "tanh_pow" else b.op("Mul", x, b.op("Mul", x, x))
        inner = b.op("Add", x, b.op("Mul", 0.044715, cube))
        h = b.op("Add", 1.0, b.op("Tanh", b.op("Mul", math.sqrt(2 / math.pi), inner)))
    if form == "erf_half_first":
        y = b.op("Mul", b.op("Mul", x, 0.5), h)
    else:
        y = b.op("Mul", b.op("Mul", x, h), 0.5)
    return b.finish(y)


@pytest.mark.parametrize("dt", ["f32", "f64"])
@pytest.mark.parametrize("form", ["erf", "erf_half_first", "erf_mul", "tanh_mul", "tanh_pow"])
def test_gelu(dt, form):
    check_canonicalize(decomposed_gelu(dt, form), {"Gelu"})


# -- Gemm ------------------------------------------------------------------------

@pytest.mark.parametrize("trans_a, trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("alpha, beta, c_shape", [(1.0, 1.0, [5]), (0.5, 2.0, [1, 5]), (2.0, 1.0, [4, 5]),
                                                  (1.0, -1.5, []), (3.0, 1.0, None)])
@pytest.mark.parametrize("constant_b", [False, True])
def test_gemm(trans_a, trans_b, alpha, beta, c_shape, constant_b):
    rng = np.random.default_rng(2)
    b = Build("f32")
    a = b.input("a", [3, 4] if trans_a else [4, 3])
    w = rng.standard_normal([5, 3] if trans_b else [3, 5]).astype(np.float32)
    w = b.const(w) if constant_b else b.input("w", w.shape)
    ins = [a, w] + ([] if c_shape is None else [b.input("bias", c_shape)])
    y = b.op("Gemm", *ins, alpha=alpha, beta=beta, transA=trans_a, transB=trans_b)
    scaled = alpha != 1 or (beta != 1 and c_shape is not None)
    transposed = trans_a or (trans_b and not constant_b)     # a constant B is stored transposed
    expect = {"MatMul"} | ({"Mul"} if scaled else set()) | ({"Add"} if c_shape is not None else set()) \
        | ({"Transpose"} if transposed else set())
    check_canonicalize(b.finish(y), expect)
