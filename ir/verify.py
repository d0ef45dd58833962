"""The verifier: structural and type invariants every pass must keep."""
from __future__ import annotations

from flowc.errors import CompileError, describe_node, quote_name

from .graph import Graph, Node, Value
from .infer import infer_node
from .registry import get_op


def verify(graph: Graph, *, check_types: bool = True) -> Graph:
    """Raise CompileError on the first broken invariant; return the graph.

    Checks: names unique, every use defined earlier (so the order is
    topological and acyclic), ops known with valid arity and attributes,
    constants' data matching their types, outputs defined, and (when
    `check_types`) that each node's recorded types are what its rule infers.
    """
    where = f"graph {quote_name(graph.name)}"
    defined: set[int] = set()
    names: set[str] = set()

    def define(v: Value, what: str) -> None:
        if v.name in names:
            raise CompileError(f"{where}: tensor {quote_name(v.name)} is defined twice")
        if v.type is None:
            raise CompileError(f"{where}: {what} {quote_name(v.name)} has no type")
        names.add(v.name)
        defined.add(id(v))

    for v in graph.inputs:
        define(v, "input")
        if v.producer is not None:
            raise CompileError(f"{where}: input {quote_name(v.name)} has a producer")
    for v in graph.constants:
        define(v, "constant")
        if v.const is not None:
            t = v.type
            if v.const.dtype != t.dtype.np or (t.shape is not None and v.const.shape != tuple(t.shape)):
                raise CompileError(f"{where}: constant {quote_name(v.name)} holds "
                                   f"{v.const.dtype}{list(v.const.shape)} but is typed {t}")
    for node in graph.nodes:
        opdef = get_op(node.op, node)
        for v in node.inputs:
            if v is not None and id(v) not in defined:
                raise CompileError(f"{describe_node(node)}: input {quote_name(v.name)} is not defined "
                                   "before the node (undefined or out of order)")
        opdef.normalize_attrs(node.attrs, node.op, node.name, node.outputs[0].name if node.outputs else None)
        for v in node.outputs:
            if v.producer is not node:
                raise CompileError(f"{describe_node(node)}: output {quote_name(v.name)} "
                                   "does not point back to its node")
            define(v, "output")
        if check_types:
            check_node_types(node)
    if not graph.outputs:
        raise CompileError(f"{where}: the graph has no outputs")
    listed: set[int] = set()
    for v in graph.outputs:
        if id(v) not in defined:
            raise CompileError(f"{where}: output {quote_name(v.name)} is not defined")
        if id(v) in listed:
            raise CompileError(f"{where}: tensor {quote_name(v.name)} is listed twice among the graph outputs; "
                               "list it once, or give it a second name with an Identity")
        listed.add(id(v))
    return graph


def check_node_types(node: Node) -> None:
    """CompileError unless `node`'s arity is valid and its recorded output types are what its
    rule infers from its inputs; the node itself is left as it is."""
    probe = Node(node.op, node.inputs, [Value(v.name, None) for v in node.outputs], node.attrs, node.name)
    infer_node(probe)
    for v, want in zip(node.outputs, [p.type for p in probe.outputs]):
        if v.type != want:
            raise CompileError(f"{describe_node(node)}: output {quote_name(v.name)} is typed {v.type}, "
                               f"but its inputs give {want}")
