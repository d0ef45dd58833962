"""Every SBP signature an op declares computes what the op computes on one device.

For each op with an `sbp` rule, at shapes where splits divide and at odd ones where they do
not: every valid signature on the meshes 2 and 2x2 is forced in turn, the node's operands are
laid out as it asks (the first, a graph input, boxed from whole; the others constants cut for
each rank; partial sums shared out at random), the physical graph runs on every rank in the
simulator and the outputs, gathered back whole, are compared with the reference interpreter's.
A signature the op cannot compute fails here.
"""
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir.ops.elementwise import FLOAT_UNARY, UNARY
from flowc.ir.ops.reduce import REDUCE
from flowc.ir.passes.parallel import candidates_for, make_mesh
from flowc.ir.sbp import B, P, S, Signature, linear_signatures, replicated

from plan_check import assert_ranks_match, forced_plan

MESHES = [(2,), (2, 2)]
OPEN = 2 ** 31 - 1

rng = np.random.default_rng(6)


def f32(*shape, low=None):
    x = rng.standard_normal(shape).astype(np.float32)
    return x if low is None else (np.abs(x) + low).astype(np.float32)


def ints(*shape, lo=-20, hi=20, dtype=np.int64):
    return rng.integers(lo, hi, shape).astype(dtype)


def i64(*values):
    return np.array(values, np.int64)


def bools(*shape):
    return rng.random(shape) < 0.5


class Case:
    def __init__(self, op, *inputs, attrs=None, outputs=1, tag=""):
        self.op, self.inputs, self.attrs, self.outputs, self.tag = op, inputs, attrs or {}, outputs, tag

    @property
    def id(self):
        shapes = "x".join("-" if a is None else ",".join(map(str, np.shape(a))) or "s" for a in self.inputs)
        return f"{self.op}{'-' + self.tag if self.tag else ''}[{shapes}]"

    def graph(self):
        """The node's graph and its feeds: the first operand is a graph input (it arrives whole and
        is boxed to what the signature reads), the others constants (cut for each rank)."""
        g = ir.Graph(self.op)
        first = np.asarray(self.inputs[0])
        values = [g.add_input("in0", ir.tensor_type(ir.dtype(first.dtype), first.shape))]
        values += [None if a is None else g.add_const(np.asarray(a), f"in{i}") for i, a in enumerate(self.inputs)
                   if i > 0]
        node = g.add_node(self.op, values, attrs=self.attrs, num_outputs=self.outputs, name="n")
        g.outputs = list(node.outputs)
        return g, node, {"in0": first}


# inputs where an op is defined (the rest take standard normal data)
DOMAIN = {"Log": 0.1, "Sqrt": 0.1, "Reciprocal": 0.5, "Acosh": 1.0}
BOUNDED = {"Asin", "Acos", "Atanh"}


def unary_cases():
    for op in FLOAT_UNARY:
        x = f32(4, 6, low=DOMAIN.get(op))
        if op in BOUNDED:
            x = np.tanh(x) * np.float32(0.9)
        yield Case(op, x)
    for op, (_, cls, _, _) in UNARY.items():
        x = bools(4, 6) if cls == "bool" else ints(4, 6) if cls == "int" else f32(4, 6)
        yield Case(op, x)
    yield Case("Relu", f32(3, 8, 5), tag="odd")
    yield Case("Neg", f32(3, 8, 5), tag="odd")
    yield Case("Gelu", f32(8, 6))
    yield Case("Gelu", f32(8, 6), attrs={"approximate": "tanh"})
    yield Case("Identity", f32(4, 6))
    yield Case("IsNaN", np.where(bools(4, 6), np.nan, f32(4, 6)).astype(np.float32))
    yield Case("IsInf", np.where(bools(4, 6), -np.inf, f32(4, 6)).astype(np.float32), attrs={"detect_positive": 0})
    yield Case("Clip", f32(4, 6), np.float32(-0.5), np.float32(0.7))
    yield Case("Clip", f32(4, 6), np.array([-0.5], np.float32), tag="min-only")
    yield Case("Cast", f32(4, 6), attrs={"to": "f64"})
    yield Case("Cast", f32(4, 6) * 10, attrs={"to": "i32"})
    yield Case("CastLike", f32(4, 6), np.zeros(1, np.float16))


BINARY_SHAPES = [((4, 6), (4, 6)), ((4, 1), (1, 6)), ((2, 4, 6), (6,)), ((3, 5), (3, 1))]


def binary_cases():
    for a, b in BINARY_SHAPES:
        for op in ("Add", "Sub", "Mul", "Less", "Equal"):
            yield Case(op, f32(*a), f32(*b))
        yield Case("Div", f32(*a), f32(*b, low=0.5))
        yield Case("Pow", f32(*a, low=0.5), f32(*b))
        yield Case("PRelu", f32(*a), f32(*b))
    for op in ("Greater", "GreaterOrEqual", "LessOrEqual"):
        yield Case(op, f32(4, 6), f32(6))
    for op in ("And", "Or", "Xor"):
        yield Case(op, bools(4, 6), bools(4, 1))
    for op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
        yield Case(op, ints(4, 6), ints(6))
    yield Case("BitShift", ints(4, 6, lo=0, hi=100), ints(4, 1, lo=0, hi=5), attrs={"direction": "LEFT"})
    yield Case("Mod", ints(4, 6), ints(6, lo=1, hi=7))
    yield Case("Mod", f32(4, 6), f32(1, 6, low=0.5), attrs={"fmod": 1})
    yield Case("Div", ints(4, 6), ints(6, lo=1, hi=7), tag="int")
    yield Case("Add", ints(4, 6), ints(4, 6), tag="int")
    for op in ("Max", "Min", "Sum", "Mean"):
        yield Case(op, f32(4, 6), f32(6), f32(4, 1))
    yield Case("Sum", f32(4, 6), tag="one")
    yield Case("Where", bools(4, 6), f32(4, 6), f32(6))
    yield Case("Where", bools(1, 6), f32(4, 1), f32(4, 6), tag="broadcast")


def linalg_cases():
    yield Case("MatMul", f32(4, 6), f32(6, 8))
    yield Case("MatMul", f32(3, 5), f32(5, 7), tag="odd")
    yield Case("MatMul", f32(2, 4, 6), f32(6, 4))
    yield Case("MatMul", f32(4, 6), f32(2, 6, 8))
    yield Case("MatMul", f32(2, 1, 4, 6), f32(4, 6, 2))
    yield Case("MatMul", ints(4, 6, lo=-3, hi=3), ints(6, 8, lo=-3, hi=3), tag="int")
    yield Case("Gemm", f32(4, 6), f32(6, 8), f32(8), attrs={"alpha": 0.5, "beta": 2.0})
    yield Case("Gemm", f32(6, 4), f32(8, 6), f32(4, 1), attrs={"transA": 1, "transB": 1})
    yield Case("Gemm", f32(4, 6), f32(8, 6), f32(4, 8), attrs={"transB": 1})
    yield Case("Gemm", f32(4, 6), f32(6, 8), np.float32(0.25))
    yield Case("Gemm", f32(3, 5), f32(5, 6), tag="no-bias")
    yield Case("Einsum", f32(4, 6), f32(6, 8), attrs={"equation": "ij,jk->ik"})
    yield Case("Einsum", f32(2, 4, 6), f32(2, 6, 4), attrs={"equation": "bij,bjk->bik"})
    yield Case("Einsum", f32(2, 2, 4, 6), f32(2, 2, 8, 6), attrs={"equation": "bhqd,bhkd->bhqk"})
    yield Case("Einsum", f32(4, 6), attrs={"equation": "ij->ji"})
    yield Case("Einsum", f32(8), f32(8), attrs={"equation": "i,i"})
    yield Case("Einsum", f32(4, 4), f32(4, 6), attrs={"equation": "ii,ij->j"})
    yield Case("Einsum", f32(2, 4, 6), f32(6, 2), attrs={"equation": "...ij,jk->...ik"})
    yield Case("Einsum", f32(4, 1), f32(6, 4), attrs={"equation": "ij,kj->ik"})
    yield Case("Einsum", f32(4, 6), f32(6), f32(2, 4), attrs={"equation": "ij,j,ki->k"})


def reduce_cases():
    for op in REDUCE:
        x = f32(4, 6, 8, low=0.1)
        yield Case(op, x, i64(1), attrs={"keepdims": 0})
        yield Case(op, x, i64(0, 2))
    yield Case("ReduceSum", f32(4, 6, 8), tag="all")
    yield Case("ReduceSum", f32(4, 6, 8), i64(-1), attrs={"keepdims": 0})
    yield Case("ReduceSum", f32(3, 5), np.zeros(0, np.int64), attrs={"noop_with_empty_axes": 1}, tag="noop")
    yield Case("ReduceSum", ints(4, 6), i64(1), tag="int")
    yield Case("ReduceMean", f32(4, 6), attrs={"keepdims": 0}, tag="all")
    for op in ("ArgMax", "ArgMin"):
        yield Case(op, f32(4, 6, 8), attrs={"axis": 1})
        yield Case(op, f32(4, 6, 8), attrs={"axis": -1, "keepdims": 0, "select_last_index": 1})
    for op in ("Softmax", "LogSoftmax", "Hardmax"):
        yield Case(op, f32(4, 6, 8))
        yield Case(op, f32(4, 6, 8), attrs={"axis": 1})
    yield Case("CumSum", f32(4, 6, 8), i64(1))
    yield Case("CumSum", f32(4, 6), np.array(0, np.int32), attrs={"exclusive": 1, "reverse": 1})
    yield Case("TopK", f32(4, 6, 8), i64(3), attrs={"axis": 1}, outputs=2)
    yield Case("TopK", f32(4, 6), i64(2), attrs={"largest": 0}, outputs=2)


def nn_cases():
    yield Case("Conv", f32(4, 4, 5, 5), f32(8, 4, 3, 3), f32(8), attrs={"pads": [1, 1, 1, 1]})
    yield Case("Conv", f32(2, 4, 7), f32(6, 4, 3), attrs={"strides": [2]}, tag="1d")
    yield Case("Conv", f32(2, 8, 5, 5), f32(8, 4, 3, 3), f32(8), attrs={"group": 2}, tag="g2")
    yield Case("Conv", f32(2, 4, 6, 6), f32(8, 1, 3, 3), f32(8), attrs={"group": 4}, tag="depthwise")
    yield Case("Conv", f32(2, 6, 5, 5), f32(6, 2, 3, 3), attrs={"group": 3}, tag="g3")
    yield Case("Conv", f32(2, 12, 4, 4), f32(12, 2, 1, 1), f32(12), attrs={"group": 6}, tag="g6")
    yield Case("Conv", f32(3, 3, 5, 5), f32(5, 3, 3, 3), f32(5), tag="odd")
    yield Case("ConvTranspose", f32(2, 4, 3, 3), f32(4, 6, 3, 3), f32(6), attrs={"strides": [2, 2]})
    yield Case("ConvTranspose", f32(2, 4, 3, 3), f32(4, 3, 2, 2), attrs={"group": 2}, tag="g2")
    yield Case("ConvTranspose", f32(2, 4, 5), f32(4, 2, 3), f32(8), attrs={"group": 4}, tag="depthwise")
    yield Case("MaxPool", f32(4, 4, 6, 6), attrs={"kernel_shape": [2, 2], "strides": [2, 2]})
    yield Case("MaxPool", f32(4, 4, 5, 5), attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, outputs=2,
               tag="indices")
    yield Case("AveragePool", f32(4, 4, 5, 5), attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})
    yield Case("AveragePool", f32(2, 4, 6), attrs={"kernel_shape": [2], "count_include_pad": 1, "pads": [1, 0]})
    yield Case("LpPool", f32(4, 4, 5, 5), attrs={"kernel_shape": [2, 2], "p": 3})
    for op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"):
        yield Case(op, f32(4, 4, 3, 5))
    yield Case("BatchNormalization", f32(4, 4, 3, 3), f32(4), f32(4), f32(4), f32(4, low=0.5))
    yield Case("BatchNormalization", f32(4, 6), f32(6), f32(6), f32(6), f32(6, low=0.5), tag="2d")
    yield Case("InstanceNormalization", f32(4, 4, 5), f32(4), f32(4))
    yield Case("GroupNormalization", f32(4, 8, 3), f32(8), f32(8), attrs={"num_groups": 4})
    yield Case("GroupNormalization", f32(2, 8, 3), f32(8), f32(8), attrs={"num_groups": 2}, tag="g2")
    yield Case("GroupNormalization", f32(2, 12, 2), f32(12), f32(12), attrs={"num_groups": 6}, tag="g6")
    yield Case("LayerNormalization", f32(4, 6, 8), f32(8), f32(8))
    yield Case("LayerNormalization", f32(4, 6, 8), f32(6, 8), attrs={"axis": 1}, outputs=3, tag="stats")
    yield Case("LRN", f32(4, 4, 3, 3), attrs={"size": 3})
    yield Case("LpNormalization", f32(4, 6), attrs={"axis": 1, "p": 1})
    yield Case("LpNormalization", f32(4, 6, 8), attrs={"axis": 0})
    yield Case("Dropout", f32(4, 6), np.float32(0.3), outputs=2)
    yield Case("Dropout", f32(4, 6), tag="no-mask")
    yield Case("Pad", f32(4, 6, 8), i64(0, 1, 0, 0, 2, 0))
    yield Case("Pad", f32(4, 6, 8), i64(0, 1, 0, 0, 2, 0), np.float32(1.5), tag="value")
    yield Case("Pad", f32(4, 6, 8), i64(0, 1, 0, 0, 2, 0), np.float32(0), tag="zero")
    yield Case("Pad", f32(4, 6, 8), i64(2, 1), None, i64(-1), attrs={"mode": "reflect"})
    yield Case("Pad", f32(4, 6, 8), i64(0, -1, 0, 0, 0, 0), attrs={"mode": "edge"}, tag="crop")
    yield Case("Resize", f32(4, 4, 3, 3), None, np.array([1, 1, 2, 2], np.float32))
    yield Case("Resize", f32(4, 4, 3, 3), None, np.array([1, 1, 2, 1.5], np.float32),
               attrs={"mode": "linear"})
    yield Case("Resize", f32(4, 4, 4, 4), None, np.array([2, 2], np.float32),
               attrs={"mode": "cubic", "axes": [2, 3]})
    yield Case("Resize", f32(4, 4, 3, 3), None, None, i64(4, 4, 5, 6), attrs={"mode": "linear"}, tag="sizes")
    yield Case("Resize", f32(4, 4, 3, 3), np.array([0, 0, 0.2, 0.2, 1, 1, 0.8, 0.8], np.float32),
               np.array([1, 1, 2, 2], np.float32), attrs={"coordinate_transformation_mode": "tf_crop_and_resize",
                                                          "mode": "linear"}, tag="crop")


def tensor_cases():
    x = f32(4, 6, 8)
    for shape in ((4, 48), (24, 8), (2, 2, 6, 8), (8, 6, 4), (4, -1, 2), (0, 3, 16), (192,)):
        yield Case("Reshape", x, i64(*shape))
    yield Case("Reshape", f32(6, 4), i64(3, 8), tag="odd")
    for axis in (0, 1, 2):
        yield Case("Flatten", x, attrs={"axis": axis})
    yield Case("Squeeze", f32(4, 1, 6), i64(1))
    yield Case("Unsqueeze", f32(4, 6), i64(0, 2))
    yield Case("Transpose", x, attrs={"perm": [2, 0, 1]})
    yield Case("Transpose", f32(4, 6))
    yield Case("Concat", f32(4, 6), f32(4, 2), attrs={"axis": 1})
    yield Case("Concat", f32(2, 4), f32(4, 4), f32(2, 4), attrs={"axis": 0})
    yield Case("Split", x, i64(2, 4), attrs={"axis": 1}, outputs=2)
    yield Case("Split", x, attrs={"axis": 2, "num_outputs": 2}, outputs=2)
    yield Case("Split", f32(5, 4), attrs={"axis": 0}, outputs=3, tag="uneven")
    yield Case("Slice", x, i64(1), i64(5), i64(1))
    yield Case("Slice", x, i64(0, 0), i64(OPEN, 3), i64(0, 2), tag="whole-axis")
    yield Case("Slice", x, i64(-4, -1), i64(-OPEN, -OPEN), i64(0, 1), i64(1, -1), tag="reverse")
    yield Case("Slice", x, i64(0), i64(4), i64(0), i64(2), tag="step")
    yield Case("Slice", f32(4, 6), i64(-4), i64(6), i64(0), tag="negative-start")
    yield Case("Expand", f32(4, 1), i64(3, 4, 6))
    yield Case("Expand", f32(1, 6), i64(4, 1))
    yield Case("Expand", f32(4, 6), i64(2, 1, 1))
    yield Case("Tile", f32(4, 6), i64(1, 2))
    yield Case("Tile", f32(4, 6), i64(2, 1))
    yield Case("Gather", f32(8, 6), rng.integers(-8, 8, (4,)))
    yield Case("Gather", f32(4, 6, 8), rng.integers(0, 6, (2, 4)), attrs={"axis": 1})
    yield Case("Gather", f32(4, 6), np.array(3, np.int64), attrs={"axis": 1}, tag="scalar")
    yield Case("GatherElements", f32(4, 6), rng.integers(-6, 6, (4, 6)), attrs={"axis": 1})
    yield Case("GatherElements", f32(4, 6), rng.integers(0, 4, (2, 6)), tag="fewer")
    yield Case("GatherElements", f32(4, 6), rng.integers(0, 6, (4, 2)), attrs={"axis": 1}, tag="narrow")
    yield Case("GatherND", f32(4, 6, 8), rng.integers(0, 6, (4, 2, 1)), attrs={"batch_dims": 1})
    yield Case("GatherND", f32(6, 8, 4), rng.integers(0, 6, (4, 2, 1)))
    yield Case("GatherND", f32(6, 8, 4), np.stack([rng.integers(0, 6, (4,)), rng.integers(0, 8, (4,))], -1),
               tag="pairs")
    yield Case("OneHot", rng.integers(-5, 5, (4, 6)), i64(5), np.array([0, 1], np.float32))
    yield Case("OneHot", rng.integers(0, 5, (4, 6)), i64(5), np.array([-1, 2], np.float32), attrs={"axis": 0})
    yield Case("Trilu", f32(2, 4, 6), i64(1).reshape(()))
    yield Case("Trilu", f32(4, 4, 6), attrs={"upper": 0})
    yield Case("DepthToSpace", f32(4, 8, 2, 3), attrs={"blocksize": 2})
    yield Case("DepthToSpace", f32(4, 8, 2, 3), attrs={"blocksize": 2, "mode": "CRD"})
    yield Case("SpaceToDepth", f32(4, 2, 4, 6), attrs={"blocksize": 2})


CASES = [*unary_cases(), *binary_cases(), *linalg_cases(), *reduce_cases(), *nn_cases(), *tensor_cases()]


def check_every_signature(case, mesh_shape) -> int:
    """Force each valid signature of the case's node on the mesh; returns how many there were."""
    graph, node, feeds = case.graph()
    mesh = make_mesh(mesh_shape)
    want = ir.run(graph, feeds)
    cands = {node: candidates_for(node, mesh)}
    for j in range(len(cands[node])):
        plan = forced_plan(graph, mesh, {node: j}, cands=cands)
        try:
            assert_ranks_match(plan, feeds, want, seed=j)
        except (AssertionError, flowc.CompileError) as e:   # wrong numbers, or local shapes the op refuses
            raise AssertionError(f"{case.id} on mesh {mesh_shape}, signature {plan.chosen(node).signature()}: "
                                 f"{e}") from None
    return len(cands[node])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_signature_computes_the_op(case):
    counts = [check_every_signature(case, m) for m in MESHES]
    assert counts[0] >= 1


def test_every_op_with_a_rule_is_checked():
    ruled = {name for name, op in ir.all_ops().items() if op.sbp is not None and op.family != "fused"}
    assert ruled - {c.op for c in CASES} == set()


def test_an_op_without_a_rule_runs_replicated():
    g = ir.Graph("scatter")
    data, idx, upd = g.add_const(f32(4, 6), "d"), g.add_const(rng.integers(0, 4, (2, 6)), "i"), \
        g.add_const(f32(2, 6), "u")
    node = g.add_node("ScatterElements", [data, idx, upd])
    assert ir.get_op("ScatterElements").sbp is None
    for mesh in MESHES:
        cands = candidates_for(node, make_mesh(mesh))
        whole = (B,) * len(mesh)
        assert [(c.ins, c.outs) for c in cands] == [((whole, whole, whole), (whole,))]


def test_signatures_are_declared_where_they_divide():
    """An odd axis is never split, 2x2 splits an axis of 4 twice, partial sums only for floats."""
    graph, node, _ = Case("Add", f32(3, 4), f32(3, 4)).graph()
    outs = {c.outs[0] for c in candidates_for(node, make_mesh((2, 2)))}
    assert (S(1), S(1)) in outs and (P, P) in outs and (S(1), P) in outs
    assert not any(s.is_split and s.axis == 0 for nd in outs for s in nd)
    graph, node, _ = Case("Add", ints(4, 4), ints(4, 4)).graph()
    assert not any(s.kind == "P" for c in candidates_for(node, make_mesh((2,))) for s in c.outs[0])


def test_grouped_conv_runs_whole_groups_per_device():
    """Three groups do not split in two: no channel split on 2 devices; six groups split in two but
    not in four."""
    def channel_splits(case, mesh):
        graph, node, _ = case.graph()
        return [c for c in candidates_for(node, make_mesh(mesh)) if any(s == S(1) for s in c.ins[0])]

    g3 = Case("Conv", f32(2, 6, 5, 5), f32(6, 2, 3, 3), attrs={"group": 3})
    assert channel_splits(g3, (2,)) == []
    g6 = Case("Conv", f32(2, 12, 4, 4), f32(12, 2, 1, 1), attrs={"group": 6})
    assert len(channel_splits(g6, (2,))) == 1
    on_2x2 = {c.ins[0] for c in channel_splits(g6, (2, 2))}
    assert (S(1), B) in on_2x2 and (S(0), S(1)) in on_2x2 and (S(1), S(1)) not in on_2x2


WRONG_RULES = [   # (op, a rule declaring too much, a case it fails on, the mesh)
    ("Relu", linear_signatures, Case("Relu", f32(4, 6)), (2,)),
    ("Softmax", linear_signatures, Case("Softmax", f32(4, 6)), (2,)),
    ("ReduceMean", ir.get_op("ReduceSum").sbp, Case("ReduceMean", f32(4, 6), i64(1)), (2,)),
    ("Tile", lambda n: [Signature((S(a), B), (S(a),)) for a in range(2)], Case("Tile", f32(4, 6), i64(1, 2)), (2,)),
    ("Gather", lambda n: [Signature((S(0), B), (S(0),))], Case("Gather", f32(8, 6), rng.integers(0, 8, (4,))), (2,)),
    ("Cast", lambda n: [Signature((P,), (P,))], Case("Cast", f32(4, 6), attrs={"to": "f16"}), (2,)),
    ("Conv", lambda n: [Signature((S(1), S(0), S(0)), (S(1),))],
     Case("Conv", f32(2, 8, 5, 5), f32(8, 8, 3, 3), f32(8)), (2,)),
    ("Reshape", lambda n: [Signature((S(1), B), (S(1),))], Case("Reshape", f32(4, 6), i64(6, 4)), (2,)),
    ("Transpose", lambda n: [Signature((S(0),), (S(0),))], Case("Transpose", f32(4, 4)), (2,)),
    ("GatherElements", lambda n: [Signature((B, S(0)), (S(0),))],
     Case("GatherElements", f32(4, 6), rng.integers(0, 6, (4, 6)), attrs={"axis": 1}), (2,)),
]


@pytest.mark.parametrize("op,rule,case,mesh", WRONG_RULES, ids=[w[0] for w in WRONG_RULES])
def test_a_wrong_signature_fails_the_check(monkeypatch, op, rule, case, mesh):
    """The check catches a rule that declares what the op cannot compute: Relu of partial sums,
    Softmax along a split axis, ReduceMean over a split axis as a partial sum, a tiled split axis,
    the gathered axis split, a cast of partial sums that rounds each piece, a grouped split of an
    ungrouped Conv, a reshape moving a split, a transpose keeping one, positions taken locally."""
    monkeypatch.setattr(ir.get_op(op), "sbp", lambda n: [*replicated(n), *rule(n)])
    with pytest.raises(AssertionError, match="signature"):
        check_every_signature(case, mesh)
