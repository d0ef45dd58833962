"""Rewrite rules and the driver that applies a list of them.

A rule is `rule(graph, node) -> bool`: it looks at `node` and its producers and,
when they match, rewrites `node` so that its outputs are computed another way
(returning True). Rules never remove nodes; what they leave unused the driver
removes. The helpers below are what rules share to match and to rewrite.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import ml_dtypes
import numpy as np

from ..graph import Graph, Node, Value
from ..infer import infer_graph, infer_node, known_array
from ..registry import get_op
from ..types import dtype
from .dead_code import eliminate_dead_code

Rule = Callable[[Graph, Node], bool]


def apply_rules(graph: Graph, rules: Iterable[Rule]) -> Graph:
    """Apply `rules` until none matches; remove what they orphan; re-type the graph."""
    rules = list(rules)
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            changed |= any(rule(graph, node) for rule in rules)
        graph.topo_sort()
        eliminate_dead_code(graph)
    # a rewritten node's type can only be better known than before; its users learn it here
    return infer_graph(graph)


# -- matching -------------------------------------------------------------------

def producer(v: Value | None, *ops: str) -> Node | None:
    """The node computing `v` when its op is one of `ops`."""
    p = None if v is None else v.producer
    return p if p is not None and p.op in ops else None


def operand_orders(node: Node) -> tuple[tuple[Value, Value], ...]:
    """A binary node's operands in each order its op allows: both orders when commutative."""
    a, b = node.inputs
    return ((a, b), (b, a)) if node.opdef.commutative else ((a, b),)


def scalar(v: Value | None) -> np.ndarray | None:
    """The one element of a statically known tensor holding exactly one, as a 0-d array."""
    a = known_array(v)
    return a.reshape(()) if a is not None and a.size == 1 else None


def is_scalar(v: Value | None, value: float, ulps: int = 0) -> bool:
    """True when `v` holds one number equal to `value` (for floats: `value` rounded to v's dtype,
    give or take `ulps` units in the last place, for constants exporters round differently)."""
    a = scalar(v)
    if a is None or dtype(a.dtype).name == "bool":
        return False
    if not dtype(a.dtype).is_float:
        return float(a) == value
    want = float(np.asarray(value).astype(a.dtype))
    return abs(float(a) - want) <= ulps * float(ml_dtypes.finfo(a.dtype).eps) * abs(want)


def use_count(graph: Graph, v: Value) -> int:
    """How many node operands and graph outputs read `v`."""
    return sum(x is v for n in graph.nodes for x in n.inputs) + sum(x is v for x in graph.outputs)


# -- rewriting ------------------------------------------------------------------

def replace_node(graph: Graph, node: Node, op: str, inputs: list[Value | None],
                 attrs: dict[str, Any] | None = None) -> Node:
    """Compute `node`'s outputs with `op` instead: the values keep their names and users."""
    new = Node(op, inputs, node.outputs, get_op(op).normalize_attrs(attrs or {}, op, node.name), node.name)
    graph.nodes[graph.nodes.index(node)] = new
    infer_node(new)
    return new


def bypass(graph: Graph, node: Node, value: Value) -> bool:
    """Let the users of `node`'s first output read `value` instead. Refused (False) where a
    graph output would then need an Identity to keep its name."""
    out = node.outputs[0]
    if out in graph.outputs and (value.producer is None or value in graph.outputs):
        return False
    graph.replace_uses(out, value)
    return True


def emit(graph: Graph, like: Node, op: str, inputs: list[Value | None], name: str,
         attrs: dict[str, Any] | None = None) -> Value:
    """The output of a new node located like `like`, the node it helps replace; `name` is a hint."""
    node = graph.add_node(op, inputs, attrs=attrs, name=like.name, output_names=[graph.fresh_name(name)])
    return node.outputs[0]


def emit_const(graph: Graph, data, name: str) -> Value:
    """A new constant holding `data` (copied, C-ordered); `name` is a hint."""
    return graph.add_const(np.array(data, order="C"), graph.fresh_name(name))
