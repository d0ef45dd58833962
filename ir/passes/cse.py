"""Common-subexpression elimination: identical nodes and equal small constants merge."""
from __future__ import annotations

from typing import Any, Hashable

import numpy as np

from ..graph import Graph, Node, Value
from ..types import UNKNOWN
from .manager import graph_pass

# Constants are compared by their bytes; weights are left alone, as hashing them costs
# time and exporters share a weight by name rather than duplicate it.
CSE_MAX_CONST_ELEMENTS = 1024


@graph_pass("eliminate-common-subexpressions",
            "Merge nodes with the same op, attributes and inputs, nodes whose known results are equal, "
            "and equal small constants.")
def eliminate_common_subexpressions(graph: Graph) -> Graph:
    merged: dict[int, Value] = {}     # id of a dropped value -> the value that stands for it
    first_const: dict[Hashable, Value] = {}
    dead_constants = []
    for v in graph.constants:
        if v.const is not None and v.const.size <= CSE_MAX_CONST_ELEMENTS and v not in graph.outputs:
            first = first_const.setdefault(_freeze(v.const), v)
            if first is not v:
                merged[id(v)] = first
                dead_constants.append(v)
    first_node: dict[Hashable, Node] = {}
    dead_nodes = []
    for node in list(graph.nodes):
        node.inputs = [merged.get(id(v), v) for v in node.inputs]
        first = first_node.setdefault(_node_key(node), node)
        if first is not node:
            dead_nodes.append(node)
            for old, new in zip(node.outputs, first.outputs):
                merged[id(old)] = new
                if old in graph.outputs:
                    graph.replace_uses(old, new)     # the output keeps its name
    graph.remove_constants(dead_constants)
    graph.remove_nodes(dead_nodes)
    return graph


def _node_key(node: Node) -> Hashable:
    out = node.outputs[0]
    if len(node.outputs) == 1 and out.sym is not None and UNKNOWN not in out.sym:
        return "known", out.type, out.sym     # shape arithmetic known to give the same dims
    inputs = tuple(-1 if v is None else id(v) for v in node.inputs)
    if node.opdef.commutative:
        inputs = tuple(sorted(inputs))
    attrs = tuple(sorted((k, _freeze(v)) for k, v in node.attrs.items()))
    return node.op, attrs, inputs, len(node.outputs)


def _freeze(value: Any) -> Hashable:
    if isinstance(value, np.ndarray):
        return value.dtype.str, value.shape, value.tobytes()
    return value
