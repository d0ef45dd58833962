"""SBP in the IR text: `%h: f32[8,16] @ S(0)` prints, parses back and is checked as it is read."""
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir import tensor_type
from flowc.ir.sbp import B, P, S
from hostile_names import HOSTILE_NAMES


def roundtrip(graph: ir.Graph) -> str:
    text = ir.print_graph(graph)
    again = ir.parse(text, ir.graph_resources(graph))
    assert ir.print_graph(again) == text
    assert [v.sbp for v in again.values()] == [v.sbp for v in graph.values()]
    ir.verify(again)
    return text


def planned_graph(mesh_rank: int = 1) -> ir.Graph:
    """A column-split MatMul, a partial sum boxed to whole: SBPs written by hand."""
    def nd(*parts):
        return tuple(parts) + (B,) * (mesh_rank - len(parts))

    g = ir.Graph("tp")
    x = g.add_input("x", tensor_type("f32", [8, 16]))
    w = g.add_const(np.ones((16, 4), np.float32), "w")
    y = g.add_node("MatMul", [x, w], output_names=["y"]).outputs[0]
    box = g.add_node("Boxing", [y], attrs={"from": "P" if mesh_rank == 1 else "(P, B)",
                                           "to": "B" if mesh_rank == 1 else "(B, B)",
                                           "steps": ["AllReduce[mesh_axis=0, size=2]"]}, output_names=["z"])
    x.sbp, w.sbp, y.sbp, box.outputs[0].sbp = nd(S(1)), nd(S(0)), nd(P), nd(B)
    g.outputs = [box.outputs[0]]
    return g


def test_sbp_follows_the_type_of_inputs_constants_and_results():
    assert roundtrip(planned_graph()) == (
        "graph tp(%x: f32[8,16] @ S(1)) {\n"
        "  %w: f32[16,4] @ S(0) = const dense_resource<0>\n"
        "  %y: f32[8,4] @ P = MatMul(%x, %w)\n"
        '  %z: f32[8,4] @ B = Boxing[from="P", to="B", steps=["AllReduce[mesh_axis=0, size=2]"]](%y)\n'
        "  return %z\n"
        "}\n")


def test_a_2d_mesh_writes_one_sbp_per_axis():
    text = roundtrip(planned_graph(mesh_rank=2))
    assert "%x: f32[8,16] @ (S(1), B)" in text and "%y: f32[8,4] @ (P, B) = MatMul" in text


def test_values_without_sbp_print_as_before():
    g = planned_graph()
    for v in g.values():
        v.sbp = None
    text = roundtrip(g)
    assert "@" not in text and "%y: f32[8,4] = MatMul(%x, %w)" in text


def test_sbp_may_sit_beside_symbolic_dims_and_several_results():
    g = ir.Graph("split")
    x = g.add_input("x", tensor_type("f32", ["N", 8]))
    p, q = g.add_node("Split", [x], attrs={"axis": 1, "num_outputs": 2}, output_names=["p", "q"]).outputs
    x.sbp, p.sbp, q.sbp = (S(0),), (S(0),), (S(0),)
    g.outputs = [p, q]
    assert "%p: f32[N,4] @ S(0), %q: f32[N,4] @ S(0) = Split[axis=1, num_outputs=2](%x)" in roundtrip(g)


@pytest.mark.parametrize("h", HOSTILE_NAMES, ids=ascii)
def test_hostile_names_round_trip_with_sbp(h):
    g = ir.Graph(h)
    x = g.add_input(h, tensor_type("f32", [4, 2]))
    w = g.add_const(np.arange(4, dtype=np.float32).reshape(2, 2), h + "w")
    y = g.add_node("MatMul", [x, w], name=h, output_names=[h + "y"]).outputs[0]
    z = g.add_node("Boxing", [y], attrs={"from": "S(0)", "to": "B", "steps": [h]}, name=h,
                   output_names=[h + ".B"]).outputs[0]
    x.sbp, w.sbp, y.sbp, z.sbp = (S(0),), (B,), (S(0),), (B,)
    g.outputs = [z]
    text = roundtrip(g)
    assert len(text.splitlines()) == 6, f"a name broke a line of the IR text:\n{text}"
    feeds = {h: np.ones((4, 2), np.float32)}
    np.testing.assert_array_equal(ir.run(ir.parse(text, ir.graph_resources(g)), feeds)[h + ".B"],
                                  ir.run(g, feeds)[h + ".B"])


def _graph_text(x_sbp="S(0)", y_sbp="S(0)", x_type="f32[8,4]", y_type="f32[8,4]", op="Relu", attrs=""):
    return (f"graph g(%x: {x_type} @ {x_sbp}) {{\n"
            f"  %y: {y_type} @ {y_sbp} = {op}{attrs}(%x)\n"
            "  return %y\n}\n")


SBP_ERRORS = [
    (_graph_text(x_sbp="S(2)"),
     "IR text, line 1, column 24: %x: f32[8,4] @ S(2) splits axis 2, but the tensor has rank 2"),
    (_graph_text(x_sbp="Q"), "IR text, line 1, column 24: expected an SBP: S(axis), B or P, got 'Q'"),
    (_graph_text(x_sbp="S(-1)"), "IR text, line 1, column 26: expected the split axis (0 or more), got '-1'"),
    (_graph_text(x_sbp="(S(0) B)"), "IR text, line 1, column 30: expected ')', got 'B'"),
    (_graph_text(y_sbp="(S(0), B)"),
     "IR text, line 2, column 18: %y: f32[8,4] @ (S(0), B) names 2 mesh axes, but %x names 1; "
     "every SBP of a graph is on the same mesh"),
    (_graph_text(x_sbp="P", y_sbp="P", x_type="i64[8,4]", y_type="i64[8,4]", op="Neg"),
     "IR text, line 1, column 24: %x: i64[8,4] @ P: only float tensors can be partial sums (P)"),
    (_graph_text(y_sbp="B", op="Boxing", attrs='[from="B", to="S(0)"]'),
     'IR text, line 2, column 3: Boxing node producing "y": boxes from B, but its input "x" lies as S(0)'),
    (_graph_text(y_sbp="B", op="Boxing", attrs='[from="S(0)", to="Q"]'),
     'IR text, line 2, column 3: Boxing node producing "y": attribute \'to\': SBP \'Q\': \'Q\' is not S(axis), B or P'),
]


@pytest.mark.parametrize("text,message", SBP_ERRORS)
def test_sbp_parse_errors_name_the_value_and_the_problem(text, message):
    with pytest.raises(flowc.CompileError) as e:
        ir.parse(text)
    assert str(e.value) == message


def test_verify_checks_a_boxing_against_its_input():
    g = planned_graph()
    g.nodes[-1].inputs[0].sbp = (S(0),)
    with pytest.raises(flowc.CompileError, match='boxes from P, but its input "y" lies as S\\(0\\)'):
        ir.verify(g)
