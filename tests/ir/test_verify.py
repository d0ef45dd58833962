"""The verifier: each broken invariant gives its exact message."""
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir import Node, Value, tensor_type


def small_graph():
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", [2]))
    y = g.add_node("Relu", [x], name="relu", output_names=["y"]).outputs[0]
    g.outputs = [y]
    return g


def test_a_good_graph_verifies():
    ir.verify(small_graph())


def test_use_before_definition():
    g = small_graph()
    stray = Value("stray", tensor_type("f32", [2]))
    g.nodes[0].inputs = [stray]
    with pytest.raises(flowc.CompileError) as e:
        ir.verify(g)
    assert str(e.value) == 'Relu node "relu": input "stray" is not defined before the node (undefined or out of order)'


def test_wrong_recorded_type():
    g = small_graph()
    g.nodes[0].outputs[0].type = tensor_type("f32", [3])
    with pytest.raises(flowc.CompileError) as e:
        ir.verify(g)
    assert str(e.value) == 'Relu node "relu": output "y" is typed f32[3], but its inputs give f32[2]'


def test_constant_data_disagrees_with_type():
    g = small_graph()
    c = g.add_const(np.zeros(3, np.float32), "c")
    c.type = tensor_type("f32", [4])
    with pytest.raises(flowc.CompileError) as e:
        ir.verify(g)
    assert str(e.value) == 'graph "g": constant "c" holds float32[3] but is typed f32[4]'


def test_no_outputs():
    g = small_graph()
    g.outputs = []
    with pytest.raises(flowc.CompileError) as e:
        ir.verify(g)
    assert str(e.value) == 'graph "g": the graph has no outputs'


def test_cycle_is_reported_by_topo_sort():
    g = small_graph()
    x = g.inputs[0]
    a = Value("a", tensor_type("f32", [2]))
    b = Value("b", tensor_type("f32", [2]))
    n1 = Node("Neg", [b], [a], name="n1")
    n2 = Node("Neg", [a], [b], name="n2")
    g.nodes += [n1, n2]
    del x
    with pytest.raises(flowc.CompileError) as e:
        g.topo_sort()
    assert str(e.value) == 'Neg node "n2": the graph has a cycle through tensor "a"'


def test_wrong_arity_names_the_node():
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", [2]))
    with pytest.raises(flowc.CompileError) as e:
        g.add_node("Add", [x], name="add")
    assert str(e.value) == 'Add node "add": takes 2 inputs (A, B), got 1'


def test_bad_attribute_kind():
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", [2]))
    with pytest.raises(flowc.CompileError) as e:
        g.add_node("LeakyRelu", [x], attrs={"alpha": "big"}, name="lr")
    assert str(e.value) == "LeakyRelu node \"lr\": attribute 'alpha' should be float: expected a float, got 'big'"


def test_broadcast_error_names_shapes():
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", [2, 3]))
    y = g.add_input("y", tensor_type("f32", [4]))
    with pytest.raises(flowc.CompileError) as e:
        g.add_node("Add", [x, y], name="add")
    assert str(e.value) == 'Add node "add": input shapes [2,3] and [4] do not broadcast'


def test_one_tensor_listed_twice_among_outputs():
    g = small_graph()
    g.outputs = g.outputs * 2
    with pytest.raises(flowc.CompileError) as e:
        ir.verify(g)
    assert str(e.value) == ('graph "g": tensor "y" is listed twice among the graph outputs; '
                            "list it once, or give it a second name with an Identity")


def test_checking_types_leaves_the_node_as_it_is():
    g = ir.Graph("g")
    x = g.add_input("x", tensor_type("f32", [2]))
    node = g.add_node("Relu", [x], name="relu")
    node.inputs.append(None)   # a trailing omitted operand: inference drops it from what it types
    g.outputs = node.outputs
    ir.verify(g)
    assert node.inputs == [x, None]


@pytest.mark.parametrize("op,attrs,role", [("Concat", {"axis": 0}, "inputs+"), ("Sum", None, "data+")])
def test_variadic_ops_that_need_one_input(op, attrs, role):
    g = ir.Graph("g")
    with pytest.raises(flowc.CompileError) as e:
        g.add_node(op, [], attrs=attrs, name="v")
    assert str(e.value) == f'{op} node "v": takes at least 1 input ({role}), got 0'
