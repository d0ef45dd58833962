"""Graphs of one op, for the op-family tests: build, verify, round-trip, run, read types and errors."""
import numpy as np
import pytest

import flowc
from flowc import ir
from flowc.ir import tensor_type


class Const:
    """An operand that becomes a graph constant (other arrays and types become graph inputs)."""

    def __init__(self, data):
        self.data = np.asarray(data)


def one_node(op, inputs, attrs=None, num_outputs=None):
    """A graph of one node "n": arrays become graph inputs x0, x1, ..., TensorTypes typed inputs,
    `Const(a)` constants; the graph is verified and round-trips through its text form."""
    g = ir.Graph("t")
    values = []
    for i, a in enumerate(inputs):
        if a is None:
            values.append(None)
        elif isinstance(a, Const):
            values.append(g.add_const(a.data, f"c{i}"))
        elif isinstance(a, ir.TensorType):
            values.append(g.add_input(f"x{i}", a))
        else:
            values.append(g.add_input(f"x{i}", tensor_type(a.dtype, a.shape)))
    node = g.add_node(op, values, attrs=attrs, num_outputs=num_outputs, name="n")
    g.outputs = list(node.outputs)
    text = ir.print_graph(ir.verify(g))
    assert ir.print_graph(ir.parse(text, ir.graph_resources(g))) == text
    return g, node


def run(op, *inputs, attrs=None, num_outputs=None):
    """The node's outputs (one array, or a tuple of several), each checked against its inferred type."""
    g, node = one_node(op, inputs, attrs, num_outputs)
    feeds = {v.name: a for v, a in zip(node.inputs, inputs) if v is not None and v in g.inputs}
    got = ir.run(g, feeds)
    outs = tuple(got[v.name] for v in node.outputs)
    for v, o in zip(node.outputs, outs):
        assert o.dtype == v.type.dtype.np
        assert v.type.shape is None or all(not isinstance(d, int) or d == s for d, s in zip(v.type.shape, o.shape))
    return outs if len(outs) > 1 else outs[0]


def out_type(op, inputs, attrs=None, num_outputs=None):
    """The text of the output type (a list of them for several outputs)."""
    _, node = one_node(op, inputs, attrs, num_outputs)
    types = [str(v.type) for v in node.outputs]
    return types if len(types) > 1 else types[0]


def error_of(op, inputs, attrs=None, num_outputs=None):
    """The message of the CompileError that building the node raises."""
    with pytest.raises(flowc.CompileError) as e:
        one_node(op, inputs, attrs, num_outputs)
    return str(e.value)
