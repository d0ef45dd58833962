"""fold-constants stores a result only while it is worth storing: at most FOLD_MAX_ELEMENTS, and
at most FOLD_MAX_GROWN_ELEMENTS when it is larger than its inputs together."""
import numpy as np
import pytest

from flowc import ir
from flowc.ir import tensor_type
from flowc.ir.passes import get_pass, run_passes
from flowc.ir.passes.fold_constants import FOLD_MAX_ELEMENTS, FOLD_MAX_GROWN_ELEMENTS


def folded_ops(build) -> list[str]:
    """The ops left after fold-constants on x + build(g)."""
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", [1]))
    g.outputs = [g.add_node("Add", [build(g), x]).outputs[0]]
    return [n.op for n in run_passes(g, [get_pass("fold-constants")], verify_each=True).nodes]


@pytest.mark.parametrize("n, folds", [(FOLD_MAX_GROWN_ELEMENTS, True),
                                      (FOLD_MAX_GROWN_ELEMENTS + 1, False)])
def test_a_tensor_made_from_tiny_inputs_folds_only_while_small(n, folds):
    def build(g):
        return g.add_node("ConstantOfShape", [g.add_const(np.array([n], np.int64))]).outputs[0]
    assert folded_ops(build) == (["Add"] if folds else ["ConstantOfShape", "Add"])


@pytest.mark.parametrize("rows, folds", [(FOLD_MAX_ELEMENTS // 1024, True),
                                         (FOLD_MAX_ELEMENTS // 1024 + 1, False)])
def test_a_relaid_weight_folds_up_to_the_size_limit(rows, folds):
    def build(g):
        w = g.add_const(np.arange(rows * 1024, dtype=np.float32).reshape(rows, 1024))
        t = g.add_node("Transpose", [w]).outputs[0]
        return g.add_node("ReduceSum", [t]).outputs[0]   # the folded sum is one element
    assert folded_ops(build) == (["Add"] if folds else ["Transpose", "ReduceSum", "Add"])


def test_folded_values_are_the_references():
    g = ir.Graph("g")
    w = g.add_const(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    t = g.add_node("Transpose", [w], output_names=["t"]).outputs[0]
    g.outputs = [g.add_node("Exp", [t], output_names=["y"]).outputs[0]]
    out = run_passes(g, [get_pass("fold-constants")], verify_each=True)
    assert [c.name for c in out.constants] == ["y"] and not out.nodes
    np.testing.assert_array_equal(out.constants[0].const, np.exp(np.arange(6, dtype=np.float32).reshape(2, 3).T))
