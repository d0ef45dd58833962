"""The SBP search: hints hold in the plan it returns, bad hints are refused naming the tensor, and a
per-device memory limit splits the weights (or says which weights do not fit)."""
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir.passes.parallel import make_mesh, search
from flowc.ir.sbp import B, S, parse_sbp

from plan_check import assert_ranks_match

rng = np.random.default_rng(7)


def mlp(batch=8, d=16, h=64):
    """x -> MatMul w1 -> Add b1 -> Relu (h) -> MatMul w2 (y), plus an i64 position output."""
    g = ir.Graph("mlp")
    x = g.add_input("x", ir.tensor_type("f32", [batch, d]))
    ids = g.add_input("ids", ir.tensor_type("i64", [batch, 6]))
    w1 = g.add_const(rng.standard_normal((d, h)).astype(np.float32), "w1")
    b1 = g.add_const(rng.standard_normal((h,)).astype(np.float32), "b1")
    w2 = g.add_const(rng.standard_normal((h, d)).astype(np.float32), "w2")
    a = g.add_node("MatMul", [x, w1], output_names=["a"]).outputs[0]
    b = g.add_node("Add", [a, b1], output_names=["b"]).outputs[0]
    h_ = g.add_node("Relu", [b], output_names=["h"]).outputs[0]
    y = g.add_node("MatMul", [h_, w2], output_names=["y"]).outputs[0]
    pos = g.add_node("Add", [ids, g.add_const(np.int64(1), "one")], output_names=["pos"]).outputs[0]
    g.outputs = [y, pos]
    return g


def feeds(batch=8, d=16):
    return {"x": rng.standard_normal((batch, d)).astype(np.float32), "ids": rng.integers(0, 9, (batch, 6))}


@pytest.mark.parametrize("mesh_shape,hints", [
    ((2,), {"x": "S(1)"}),
    ((2,), {"h": "S(1)", "y": "P"}),
    ((4,), {"a": "P", "ids": "S(0)"}),
    ((4,), {"b": "S(0)", "h": "B", "pos": "S(0)"}),
    ((2, 2), {"x": "(S(0), S(1))", "h": "(P, S(1))"}),
    ((2, 2), {"y": "(S(1), P)", "a": "S(0)"}),
    ((2, 2), {"ids": "(B, S(0))", "pos": "(S(0), S(1))"}),
])
def test_hints_hold_in_the_plan(mesh_shape, hints):
    g = mlp()
    plan = search(g, make_mesh(mesh_shape), hints=hints)
    values = {v.name: v for v in list(g.inputs) + [o for n in g.nodes for o in n.outputs]}
    for name, text in hints.items():
        assert plan.seen(values[name]) == parse_sbp(text, len(mesh_shape)), name
    assert_ranks_match(plan, feeds())


def test_hints_as_tuples():
    g = mlp()
    plan = search(g, make_mesh((2, 2)), hints={"h": (S(1), B)})
    assert plan.seen(next(o for n in g.nodes for o in n.outputs if o.name == "h")) == (S(1), B)


@pytest.mark.parametrize("mesh_shape,hints,message", [
    ((2,), {"nope": "S(0)"},
     'SBP hint for "nope": it is not a tensor of the optimised graph; hint a graph input or an op\'s output'),
    ((2,), {"w1": "S(0)"},
     'SBP hint for "w1": it is a constant (the compiler cuts weights itself); hint a graph input or an op\'s output'),
    ((4,), {"ids": "S(1)"}, 'SBP hint "ids"=S(1): i64[8,6] does not split evenly on mesh 4'),
    ((2,), {"h": "S(2)"}, 'SBP hint "h"=S(2): f32[8,64] does not split evenly on mesh 2'),
    ((2, 2), {"x": "(S(0), S(0))", "h": "(S(0), S(0), S(0))"},
     "SBP '(S(0), S(0), S(0))' has 3 parts for a mesh of 2 axes"),
    ((2,), {"pos": "P"}, 'SBP hint "pos"=P: i64[8,6] is not a float tensor, so it cannot be held as partial sums'),
    ((2,), {"x": "Split(0)"}, "SBP 'Split(0)': 'Split(0)' is not S(axis), B or P"),
    ((2,), {"x": (S(0), B)}, 'SBP hint "x"=(S(0), B): 2 parts for mesh 2'),
])
def test_bad_hints_name_the_tensor(mesh_shape, hints, message):
    with pytest.raises(flowc.CompileError) as e:
        search(mlp(), make_mesh(mesh_shape), hints=hints)
    assert str(e.value) == message


def test_symbolic_shapes_are_refused():
    g = ir.Graph("dyn")
    x = g.add_input("x", ir.tensor_type("f32", ["N", 4]))
    g.outputs = g.add_node("Relu", [x], output_names=["y"]).outputs
    with pytest.raises(flowc.CompileError, match='tensor "x" has type f32\\[N,4\\]: a plan over several devices '
                                                 'needs static shapes'):
        search(g, make_mesh((2,)))


def test_a_memory_limit_splits_the_weights():
    """Batch 64 on four CPU processes: data parallel, every weight on every device; under a limit of
    the activations plus half the weights, the search splits the weights and fits."""
    g = mlp(batch=64, d=64, h=256)
    mesh = make_mesh((4,))
    free = search(g, mesh)
    whole = sum(c.const.nbytes for c in g.constants)
    assert free.weight_bytes() == whole
    limit = free.activation_bytes() + whole // 2
    assert free.memory_bytes() > limit
    plan = search(g, mesh, memory_limit=limit)
    assert plan.memory_bytes() <= limit and plan.weight_bytes() < whole // 2
    for name in ("w1", "w2"):   # each device keeps a piece of each matrix, never the whole
        c = next(c for c in g.constants if c.name == name)
        assert all(nd != (B,) for nd in plan.required(c)), (name, plan.required(c))
    assert_ranks_match(plan, feeds(64, 64))


def test_an_impossible_memory_limit_names_the_largest_weights():
    with pytest.raises(flowc.CompileError) as e:
        search(mlp(batch=64, d=64, h=256), make_mesh((4,)), memory_limit=4096)
    message = str(e.value)
    assert message.startswith("no plan on mesh 4 fits the memory limit of 0.0 MiB per device: the best needs ")
    assert message.endswith('largest weights: "w1" f32[64,256], "w2" f32[256,64], "b1" f32[256]; '
                            "use more devices or raise the limit")
