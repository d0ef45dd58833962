"""Pictures of parallel plans: ops coloured by placement, edges labelled with SBP, boxing and
collectives drawn apart; pictures of plain graphs stay as they were."""
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import flowc
from flowc.ir import viz
from flowc.ir.passes.parallel import Plan, build_physical, candidates_for, make_mesh, parse_hints
from flowc.ir.passes.parallel.annotate import annotate

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
HOSTILE = 'a "quoted"\nname <b>&amp; \\ back\\slash'
SVG = "{http://www.w3.org/2000/svg}"
MEGATRON = {"fc1": "B, S(1) -> S(1)", "act": "S(1) -> S(1)", "fc2": "S(1), S(0) -> P", "residual": "P, P -> P"}


def mlp(name: str = "mlp", x_name: str = "x") -> flowc.ir.Graph:
    rng = np.random.default_rng(0)
    b = flowc.GraphBuilder(name)
    x = b.input(x_name, "f32", [8, 16])
    w1 = b.const(rng.standard_normal((16, 64)).astype(np.float32), "w1")
    w2 = b.const(rng.standard_normal((64, 16)).astype(np.float32), "w2")
    h = b.gelu(b.matmul(x, w1, name="fc1"), name="act")
    b.output(b.add(b.matmul(h, w2, name="fc2"), x, name="residual"), name="y")
    return b.build()


def plan_of(graph, signatures: dict[str, str], hints=None, mesh=(4,)) -> Plan:
    m = make_mesh(mesh)
    cands = {n: candidates_for(n, m) for n in graph.nodes}
    choice = {n: [c.signature() for c in cands[n]].index(signatures[n.name]) if n.name in signatures else 0
              for n in graph.nodes}
    return Plan(graph, m, cands, choice, parse_hints(graph, hints, m))


def node_line(source: str, op: str) -> str:
    return next(line for line in source.splitlines() if f"label=<<b>{op}</b>" in line)


def test_ops_are_coloured_by_placement_and_show_their_signature():
    source = viz.to_dot(annotate(plan_of(mlp(), MEGATRON, hints={"x": "S(0)"})))
    fills = {name: fill for name, (fill, _) in viz.PLACEMENTS.items()}
    assert f'fillcolor="{fills["split on another axis"]}", label=<<b>Gelu</b>' in source
    assert f'fillcolor="{fills["partial sums"]}", label=<<b>Add</b>' in source
    assert "B, S(1) → S(1)" in source and "S(1), S(0) → P" in source and "P, P → P" in source
    replicated = viz.to_dot(annotate(plan_of(mlp(), {})))
    assert f'fillcolor="{fills["replicated"]}", label=<<b>Gelu</b>' in replicated
    assert len(set(fills.values())) == len(fills)


def test_placement_prefers_partial_then_a_split_off_axis_0():
    from flowc.ir.sbp import B, P, S
    assert viz.placement([(B, B)]) == "replicated"
    assert viz.placement([(S(0), B)]) == "split on axis 0"
    assert viz.placement([(S(0), S(2))]) == "split on another axis"
    assert viz.placement([(S(1),), (P,)]) == "partial sums"


def test_edges_are_labelled_and_coloured_by_sbp():
    source = viz.to_dot(annotate(plan_of(mlp(), MEGATRON)))
    partial_edge = viz.PLACEMENTS["partial sums"][1]
    assert f'label=" f32[8,16] @ P", color="{partial_edge}"' in source
    assert 'label=" f32[8,64] @ S(1)"' in source
    assert 'label=" f32[8,16] @ B"' in source                      # into the output
    assert "<b>x</b><br/><font point-size=\"9\">f32[8,16] @ B</font>" in source
    assert "w1<br/>f32[16,64] @ S(1)" in source                      # a weight's cut
    unlabelled = viz.to_dot(annotate(plan_of(mlp(), MEGATRON)), edge_labels=False)
    assert "@ P\"" not in unlabelled and f'color="{partial_edge}"' in unlabelled


def test_boxing_is_a_hexagon_listing_its_collectives():
    source = viz.to_dot(annotate(plan_of(mlp(), MEGATRON)))
    boxes = [line for line in source.splitlines() if "<b>Boxing</b>" in line]
    assert len(boxes) == 2 and all(viz.BOXING_STYLE in line for line in boxes)
    assert "P → B" in boxes[1] and "AllReduce[mesh_axis=0, size=4]" in boxes[1]
    assert "B → P" in boxes[0] and "KeepFirst[mesh_axis=0, size=4]" in boxes[0]
    assert "boxing</font></td>" in source.splitlines()[2]             # the legend, under the title


def test_collectives_of_a_physical_graph_are_marked():
    source = viz.to_dot(build_physical(plan_of(mlp(), MEGATRON)).graph)
    assert viz.COLLECTIVE_STYLE in node_line(source, "AllReduce")
    assert viz.COLLECTIVE_STYLE in node_line(source, "KeepFirst")
    assert "hexagon" not in node_line(source, "MatMul")
    assert "<td" not in source                                          # no legend: no SBP to explain


def test_plain_graphs_draw_as_before():
    source = viz.to_dot(mlp())
    assert "hexagon" not in source and "@" not in source and "→" not in source
    assert source.splitlines()[2] == '  label=<<b>mlp</b>>; labelloc=t; fontname="Helvetica"; fontsize=14;'
    assert f'fillcolor="{viz.family_colour("linalg")}", label=<<b>MatMul</b>' in source


def test_hostile_names_stay_escaped_in_a_plan():
    graph = mlp(HOSTILE, x_name=HOSTILE)
    source = viz.to_dot(annotate(plan_of(graph, MEGATRON, hints={HOSTILE: "S(0)"})))
    outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', source)
    assert "<b>&amp; " not in outside_strings and "\n" + HOSTILE not in source
    for line in source.splitlines()[1:-1]:
        assert line.startswith("  ") and line.rstrip().endswith(";"), line


@needs_dot
def test_a_plan_renders_with_its_signatures_and_collectives(tmp_path):
    path = viz.render(annotate(plan_of(mlp(), MEGATRON)), tmp_path / "plan.svg", title="mlp on 4 devices")
    texts = ["".join(t.itertext()) for t in ET.fromstring(path.read_bytes()).iter(f"{SVG}text")]
    for want in ("mlp on 4 devices", "partial sums", "Boxing", "P → B", "AllReduce[mesh_axis=0, size=4]",
                 "S(1), S(0) → P", "f32[8,16] @ P"):
        assert any(want == t.strip() for t in texts), want
    physical = viz.render(build_physical(plan_of(mlp(), MEGATRON)).graph, tmp_path / "physical.svg")
    assert "AllReduce" in ["".join(t.itertext()) for t in ET.fromstring(physical.read_bytes()).iter(f"{SVG}text")]
