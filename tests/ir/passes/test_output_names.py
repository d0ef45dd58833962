"""A graph output's name survives the rewrites that hand it to another value: the name stays
taken after the value that gave it up is removed, so no later value can be given it again."""
from flowc import ir
from flowc.ir.passes import get_pass, run_passes

TEXT = """graph g(%x: f32[2]) {
  %t: f32[2] = Tanh(%x)
  %y: f32[2] = Tanh(%x)
  %z: f32[2] = Neg(%t)
  return %y, %z
}
"""


def test_a_merged_output_keeps_its_name_taken():
    g = run_passes(ir.parse(TEXT), [get_pass("eliminate-common-subexpressions")], verify_each=True)
    assert [v.name for v in g.outputs] == ["y", "z"]
    assert g.fresh_name("y") != "y"
    g.add_node("Relu", [g.inputs[0]], output_names=[g.fresh_name("y")])
    ir.verify(g)


def test_a_bypassed_output_keeps_its_name_taken():
    text = TEXT.replace("%y: f32[2] = Tanh(%x)", "%y: f32[2] = Identity(%t)")
    g = ir.parse(text)
    g.replace_uses(g.value("y"), g.value("t"))
    g.remove_nodes([n for n in g.nodes if n.op == "Identity"])
    assert g.fresh_name("y") != "y"
    ir.verify(g)
