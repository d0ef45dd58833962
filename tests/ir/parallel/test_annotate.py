"""annotate(plan): the logical graph with every value's SBP and a Boxing wherever a value
changes SBP; it computes what the original computes and boxes as the physical graph does."""
from pathlib import Path

import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir.passes import optimize
from flowc.ir.passes.parallel import Plan, build_physical, candidates_for, make_mesh, parse_hints, search
from flowc.ir.passes.parallel.annotate import annotate
from flowc.ir.sbp import B
from hostile_names import HOSTILE_NAMES

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "models"
rng = np.random.default_rng(0)


def mlp(batch: int = 8, hidden: int = 16, name: str = "mlp") -> ir.Graph:
    b = flowc.GraphBuilder(name)
    x = b.input("x", "f32", [batch, hidden])
    w1 = b.const(rng.standard_normal((hidden, 4 * hidden)).astype(np.float32), "w1")
    w2 = b.const(rng.standard_normal((4 * hidden, hidden)).astype(np.float32), "w2")
    h = b.gelu(b.matmul(x, w1, name="fc1"), name="act")
    b.output(b.add(b.matmul(h, w2, name="fc2"), x, name="residual"), name="y")
    return optimize(b.build())


def plan_of(graph: ir.Graph, mesh, signatures: dict[str, str], hints=None) -> Plan:
    """A plan choosing, for each node named in `signatures`, the signature written there
    (`Candidate.signature()`), and replicated elsewhere: independent of the cost model."""
    m = make_mesh(mesh)
    cands = {n: candidates_for(n, m) for n in graph.nodes}
    choice = {}
    for n in graph.nodes:
        sigs = [c.signature() for c in cands[n]]
        choice[n] = sigs.index(signatures[n.name]) if n.name in signatures else 0
    return Plan(graph, m, cands, choice, parse_hints(graph, hints, m))


MEGATRON = {"fc1": "B, S(1) -> S(1)", "act": "S(1) -> S(1)", "fc2": "S(1), S(0) -> P", "residual": "P, P -> P"}


def check(plan: Plan, like_physical: bool = True) -> ir.Graph:
    """The annotated graph verifies, round-trips, computes the original's outputs, has an SBP on
    every value, feeds each node in its chosen signature, and boxes like the physical graph."""
    graph = plan.graph
    annotated = annotate(plan)
    ir.verify(annotated)
    text = ir.print_graph(annotated)
    assert ir.print_graph(ir.parse(text, ir.graph_resources(annotated))) == text
    assert all(v.sbp is not None for v in annotated.values())
    assert all(v.sbp is None for v in graph.values()), "the plan's graph was changed"

    feeds = {v.name: rng.standard_normal(v.type.shape).astype(v.type.dtype.np) for v in graph.inputs}
    want, got = ir.run(graph, feeds), ir.run(annotated, feeds)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])

    computing = [n for n in annotated.nodes if n.op != "Boxing"]
    assert [n.op for n in computing] == [n.op for n in graph.nodes]
    for new, node in zip(computing, graph.nodes):
        cand = plan.chosen(node)
        assert [None if v is None else v.sbp for v in new.inputs] == list(cand.ins), node
        assert [v.sbp for v in new.outputs] == list(cand.outs), node
    assert all(v.sbp == (B,) * len(plan.mesh.shape) for v in annotated.outputs)

    boxings = [(n.inputs[0], n.outputs[0].sbp) for n in annotated.nodes if n.op == "Boxing"]
    assert len(boxings) == len(set(boxings)), "one Boxing per value and target SBP"
    for n in annotated.nodes:
        if n.op == "Boxing":
            assert n.attr("from") != n.attr("to") and n.attr("steps")
    if not like_physical:
        return annotated
    physical = build_physical(plan).graph
    collectives = [ir.text.print_node(n).split(" = ")[1].split("(")[0] for n in physical.nodes
                   if n.opdef.family == "collective"]
    assert [s for n in annotated.nodes if n.op == "Boxing" for s in n.attr("steps")] == collectives
    return annotated


def test_megatron_mlp_reads_as_ir_text():
    annotated = check(plan_of(mlp(), (4,), MEGATRON))
    assert ir.print_graph(annotated) == (
        "graph mlp(%x: f32[8,16] @ B) {\n"
        "  %w1: f32[16,64] @ S(1) = const dense_resource<0>\n"
        "  %w2: f32[64,16] @ S(0) = const dense_resource<1>\n"
        '  %0: f32[8,64] @ S(1) = MatMul(%x, %w1) loc("fc1")\n'
        '  %1: f32[8,64] @ S(1) = Gelu(%0) loc("act")\n'
        '  %2: f32[8,16] @ P = MatMul(%1, %w2) loc("fc2")\n'
        '  %x.P: f32[8,16] @ P = Boxing[from="B", to="P", steps=["KeepFirst[mesh_axis=0, size=4]"]](%x)\n'
        '  %y.P: f32[8,16] @ P = Add(%2, %x.P) loc("residual")\n'
        '  %y: f32[8,16] @ B = Boxing[from="P", to="B", steps=["AllReduce[mesh_axis=0, size=4]"]](%y.P)\n'
        "  return %y\n"
        "}\n")


def test_a_boxing_is_shared_by_the_consumers_that_read_one_sbp():
    b = flowc.GraphBuilder("fan")
    x = b.input("x", "f32", [8, 16])
    h = b.relu(x, name="h")
    b.output(b.neg(h, name="n1"), name="p")
    b.output(b.exp(h, name="n2"), name="q")
    b.output(b.sigmoid(h, name="n3"), name="r")
    plan = plan_of(b.build(), (2,), {"h": "S(0) -> S(0)", "n3": "S(1) -> S(1)"})
    annotated = check(plan)
    boxed = [n for n in annotated.nodes if n.op == "Boxing" and n.inputs[0].name == "0"]
    assert [(n.attr("from"), n.attr("to")) for n in boxed] == [("S(0)", "B"), ("S(0)", "S(1)")]
    assert [n.inputs[0] for n in annotated.nodes if n.op in ("Neg", "Exp")] == [boxed[0].outputs[0]] * 2


def test_a_constant_read_in_two_sbps_is_cut_twice_sharing_its_data():
    b = flowc.GraphBuilder("tied")
    x = b.input("x", "f32", [4, 8])
    w = b.const(rng.standard_normal((8, 8)).astype(np.float32), "w")
    b.output(b.matmul(b.matmul(x, w, name="first"), w, name="second"), name="y")
    plan = plan_of(b.build(), (2,), {"first": "B, S(1) -> S(1)", "second": "S(1), S(0) -> P"})
    annotated = check(plan)
    cuts = {c.name: c for c in annotated.constants}
    assert list(cuts) == ["w", "w.S0"]
    assert cuts["w"].sbp != cuts["w.S0"].sbp and cuts["w"].const is cuts["w.S0"].const
    assert not any(n.op == "Boxing" and n.inputs[0].is_const for n in annotated.nodes)


def test_a_hinted_value_is_boxed_to_its_hint_first():
    plan = plan_of(mlp(), (4,), MEGATRON, hints={"1": "B"})
    annotated = check(plan)
    steps = [(n.inputs[0].name, n.attr("from"), n.attr("to")) for n in annotated.nodes if n.op == "Boxing"]
    assert steps[0] == ("1", "S(1)", "B")                    # produced split, hinted whole
    assert steps[1] == ("1.B", "B", "S(1)")                  # fc2 reads its split from the hint
    assert annotated.nodes[-1].outputs[0].name == "y"


def test_graph_inputs_and_constants_can_be_outputs():
    b = flowc.GraphBuilder("pass")
    x = b.input("x", "f32", [4, 8])
    c = b.const(np.ones((4, 8), np.float32), "c")
    b.output(x, name="x")
    b.output(c, name="c")
    b.output(b.add(x, c, name="s"), name="s")
    # the physical graph boxes x from its hint back to whole to return it; x arrived whole
    plan = plan_of(b.build(), (2,), {"s": "S(0), S(0) -> S(0)"}, hints={"x": "S(0)"})
    annotated = check(plan, like_physical=False)
    assert [v.name for v in annotated.outputs] == ["x", "c", "s"]
    assert annotated.outputs[0] is annotated.inputs[0] and annotated.outputs[1].sbp == (B,)


@pytest.mark.parametrize("batch", [4, 512])
@pytest.mark.parametrize("mesh", [(2,), (4,), (2, 2)])
@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_searched_plans_annotate_faithfully(batch, mesh, target):
    graph = mlp(batch, hidden=64)
    check(search(graph, make_mesh(mesh, target=target)))


@pytest.mark.parametrize("seed", range(12))
def test_random_hints_annotate_faithfully(seed):
    gen = np.random.default_rng(seed)
    mesh = [(2,), (4,), (2, 2)][seed % 3]
    graph = mlp(8, hidden=16)
    choices = ["B", "S(0)", "S(1)", "P"]
    names = [v.name for v in graph.inputs] + [v.name for n in graph.nodes for v in n.outputs]
    hints = {}
    for name in gen.choice(names, size=2, replace=False):
        hints[str(name)] = "(" + ", ".join(gen.choice(choices, size=len(mesh))) + ")"
    check(search(graph, make_mesh(mesh), hints=hints))


def test_the_example_models_annotate_faithfully():
    from flowc.api import pin_input_shapes
    from flowc.frontend.onnx import load

    for model in ("tinycnn", "tinyformer"):
        graph = load(EXAMPLES / f"{model}.onnx")
        pin_input_shapes(graph, {v.name: [8 if isinstance(d, str) else d for d in v.type.shape] for v in graph.inputs})
        graph = optimize(graph)
        first = graph.inputs[0].name
        for hints in (None, {first: "S(0)"}):
            check(search(graph, make_mesh((4,), target="cuda"), hints=hints))


@pytest.mark.parametrize("h", HOSTILE_NAMES, ids=ascii)
def test_hostile_names_annotate_and_round_trip(h):
    b = flowc.GraphBuilder(h)
    x = b.input(h, "f32", [8, 16])
    w = b.const(rng.standard_normal((16, 16)).astype(np.float32), h + "w")
    y = b.relu(b.matmul(x, w, name=h), name=h + "relu")
    b.output(y, name=h + "out")
    graph = b.build()
    plan = plan_of(graph, (2,), {h: "B, S(1) -> S(1)"}, hints={h: "S(0)"})
    annotated = check(plan)
    assert len(ir.print_graph(annotated).splitlines()) == len(annotated.nodes) + len(annotated.constants) + 3
    assert [v.name for v in annotated.outputs] == [h + "out"]
