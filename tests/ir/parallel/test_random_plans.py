"""Random graphs with random hints: whatever plan the search finds, every rank computes what one
device computes.

Hypothesis draws the graph (a DAG of MatMul, Add, Sub, Mul, Relu, Gelu, Softmax, LayerNorm,
Reshape, Transpose, ReduceSum and Concat over static shapes whose dims are products of 2 and 3),
the mesh (2, 4 or 2x2, with CPU or H100 profiles, which favour different plans) and SBP hints on
any of its tensors (any hint that divides); the search plans it (or each node takes a drawn
signature), every rank runs in the simulator, and each output must equal the reference
interpreter's, with partial sums made from whole tensors shared out at random. Derandomized,
so CI runs the same graphs every time; a failure prints the drawn graph and plan. The example
models, with a random signature per node, close the file.
"""
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from flowc import ir
from flowc.api import pin_input_shapes
from flowc.frontend.onnx import load
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import candidates_for, make_mesh, search
from flowc.ir.sbp import B, P, S, format_sbp, local_shape

from plan_check import assert_ranks_match, forced_plan

DIMS = (2, 3, 4, 6, 8, 12)
MESHES = ((2,), (4,), (2, 2))


class Builder:
    """Grows a graph one drawn op at a time; each method returns the new value, or None when the
    drawn operand does not suit the op."""

    def __init__(self, draw):
        self.draw = draw
        self.g = ir.Graph("random")
        self.values: list[ir.Value] = []
        self.rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))

    def const(self, shape):
        return self.g.add_const(self.rng.standard_normal(shape).astype(np.float32))

    def node(self, op, inputs, **attrs):
        return self.g.add_node(op, inputs, attrs=attrs).outputs[0]

    def same_shape(self, x):
        return [v for v in self.values if v.type.shape == x.type.shape]

    def matmul(self, x):
        s = x.type.shape
        if len(s) < 2:
            return None
        partners = [v for v in self.values if v.type.rank == len(s) and v.type.shape[:-2] == s[:-2]
                    and v.type.shape[-2] == s[-1]]
        if partners and self.draw(st.booleans()):
            return self.node("MatMul", [x, self.draw(st.sampled_from(partners))])
        return self.node("MatMul", [x, self.const((s[-1], self.draw(st.sampled_from(DIMS))))])

    def binary(self, x):
        op = self.draw(st.sampled_from(["Add", "Sub", "Mul"]))
        s = x.type.shape
        if self.draw(st.booleans()):
            return self.node(op, [x, self.draw(st.sampled_from(self.same_shape(x)))])
        shape = self.draw(st.sampled_from([s, s[-1:], s[:-1] + (1,), (1,) * len(s)]))
        operands = [x, self.const(shape)]
        return self.node(op, operands[::-1] if self.draw(st.booleans()) else operands)

    def unary(self, x):
        return self.node(self.draw(st.sampled_from(["Relu", "Gelu"])), [x])

    def softmax(self, x):
        return self.node("Softmax", [x], axis=self.draw(st.integers(0, x.type.rank - 1)))

    def layer_norm(self, x):
        axis = self.draw(st.integers(0, x.type.rank - 1))
        params = [self.const(x.type.shape[axis:]) for _ in range(self.draw(st.integers(1, 2)))]
        return self.node("LayerNormalization", [x, *params], axis=axis)

    def reshape(self, x):
        s = list(x.type.shape)
        if len(s) >= 2 and (len(s) == 4 or self.draw(st.booleans())):   # merge two neighbours
            i = self.draw(st.integers(0, len(s) - 2))
            shape = s[:i] + [s[i] * s[i + 1]] + s[i + 2:]
        else:                                                             # split one in two
            i = self.draw(st.integers(0, len(s) - 1))
            factors = [f for f in (2, 3) if s[i] % f == 0 and s[i] > f]
            if not factors:
                return None
            f = self.draw(st.sampled_from(factors))
            shape = s[:i] + [f, s[i] // f] + s[i + 1:]
        if self.draw(st.booleans()):
            shape[self.draw(st.integers(0, len(shape) - 1))] = -1
        return self.node("Reshape", [x, self.g.add_const(np.array(shape, np.int64))])

    def transpose(self, x):
        return self.node("Transpose", [x], perm=self.draw(st.permutations(range(x.type.rank))))

    def reduce_sum(self, x):
        rank = x.type.rank
        axes = self.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
        keep = 1 if len(axes) == rank else self.draw(st.integers(0, 1))
        return self.node("ReduceSum", [x, self.g.add_const(np.array(axes, np.int64))], keepdims=keep)

    def concat(self, x):
        axis = self.draw(st.integers(0, x.type.rank - 1))
        s = x.type.shape
        partners = [v for v in self.values if v.type.rank == len(s)
                    and all(a == b for i, (a, b) in enumerate(zip(v.type.shape, s)) if i != axis)]
        others = self.draw(st.lists(st.sampled_from(partners), min_size=1, max_size=2))
        return self.node("Concat", [x, *others], axis=axis)

    OPS = ("matmul", "binary", "unary", "softmax", "layer_norm", "reshape", "transpose", "reduce_sum", "concat")

    def build(self):
        for i in range(self.draw(st.integers(1, 2))):
            shape = self.draw(st.lists(st.sampled_from(DIMS), min_size=2, max_size=3))
            self.values.append(self.g.add_input(f"x{i}", ir.tensor_type("f32", shape)))
        for _ in range(self.draw(st.integers(1, 8))):
            op = self.draw(st.sampled_from(self.OPS))
            x = self.draw(st.sampled_from(self.values))
            if x.type.numel() > 4096:
                continue
            y = getattr(self, op)(x)
            if y is not None:
                self.values.append(y)
        last = self.values[-1]
        extra = self.draw(st.sampled_from(self.values))
        self.g.outputs = [last] if extra is last else [last, extra]
        return self.g


def layouts(t, mesh):
    """Every SBP of `t` on `mesh` whose splits divide."""
    one = [S(k) for k in range(t.rank)] + [B, P]
    return [nd for nd in itertools.product(one, repeat=len(mesh)) if local_shape(t.shape, nd, mesh) is not None]


def graph_mesh_hints(draw):
    g = Builder(draw).build()
    mesh = make_mesh(draw(st.sampled_from(MESHES)), target=draw(st.sampled_from(["cpu", "cuda"])))
    tensors = list(g.inputs) + [v for n in g.nodes for v in n.outputs]
    hinted = draw(st.lists(st.sampled_from(tensors), max_size=3, unique_by=lambda v: v.name))
    hints = {v.name: format_sbp(draw(st.sampled_from(layouts(v.type, mesh.shape)))) for v in hinted}
    note(f"mesh {mesh} ({mesh.device.name}), hints {hints}\n{ir.print_graph(g)}")
    feeds = {v.name: np.random.default_rng(len(g.nodes)).standard_normal(v.type.shape).astype(np.float32)
             for v in g.inputs}
    return g, mesh, hints, feeds


SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(SETTINGS, max_examples=150)
@given(st.data())
def test_searched_plans_match_one_device(data):
    g, mesh, hints, feeds = graph_mesh_hints(data.draw)
    plan = search(g, mesh, hints=hints)
    for name, hint in hints.items():
        assert format_sbp(plan.seen(next(v for v in plan.hints if v.name == name))) == hint
    note("plan: " + "; ".join(f"{e.node.op} {e.chosen.signature()}" for e in plan.explained))
    assert_ranks_match(plan, feeds, seed=len(g.nodes))


@settings(SETTINGS, max_examples=100)
@given(st.data())
def test_any_plan_matches_one_device(data):
    """Not only the plans the cost model likes: each node takes a drawn signature of its own."""
    g, mesh, hints, feeds = graph_mesh_hints(data.draw)
    cands = {n: candidates_for(n, mesh) for n in g.nodes}
    choice = {n: data.draw(st.integers(0, len(cands[n]) - 1)) for n in g.nodes}
    plan = forced_plan(g, mesh, choice, hints=hints, cands=cands)
    note("plan: " + "; ".join(f"{n.op} {plan.chosen(n).signature()}" for n in g.nodes))
    assert_ranks_match(plan, feeds, seed=len(g.nodes))


EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "models"


@pytest.mark.parametrize("model", ["tinycnn", "tinyformer"])
def test_random_plans_of_the_example_models(model):
    """The example CNN (depthwise convolutions, whose group splits run fewer groups per device)
    and transformer block, optimised: on each mesh, every node takes a random signature."""
    graph = load(EXAMPLES / f"{model}.onnx")
    pin_input_shapes(graph, {v.name: [4 if isinstance(d, str) else d for d in v.type.shape] for v in graph.inputs})
    graph = optimize(graph)
    gen = np.random.default_rng(5)
    feeds = {v.name: (gen.standard_normal(v.type.shape) if v.type.dtype.is_float
                      else gen.integers(0, 16, v.type.shape)).astype(v.type.dtype.np) for v in graph.inputs}
    want = ir.run(graph, feeds)
    for mesh_shape in MESHES:
        mesh = make_mesh(mesh_shape)
        cands = {n: candidates_for(n, mesh) for n in graph.nodes}
        for trial in range(4):
            choice = {n: int(gen.integers(len(cands[n]))) for n in graph.nodes}
            assert_ranks_match(forced_plan(graph, mesh, choice, cands=cands), feeds, want, seed=trial)
