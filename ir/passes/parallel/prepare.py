"""Rewrites that give the search more to choose from, run on a graph before it is planned.

`split_projections`: a projection by a constant matrix whose result is Split along its
last axis (GPT-2's fused query/key/value projection, `c_attn`) becomes one projection per
part. Split has no signature on the axis it cuts, so the fused form can only be split by
rows or kept whole; the parts can each be split by columns, by heads, as Megatron does.
On one device the fused GEMM is the faster form, so only plans over several devices use it.
"""
from __future__ import annotations

import numpy as np

from ...graph import Graph, Node, Value
from ...infer import known_ints
from ..dead_code import eliminate_dead_code


def split_projections(graph: Graph) -> Graph:
    users = graph.users()
    for split in list(graph.nodes):
        if split.op != "Split" or split.inputs[0].type.shape is None:
            continue
        rank = len(split.inputs[0].type.shape)
        if split.attr("axis") % rank != rank - 1:
            continue
        chain = _projection_chain(split.inputs[0], users)
        if chain is None:
            continue
        sizes = [v.type.shape[-1] for v in split.outputs]
        _rewrite(graph, split, chain, sizes)
    return eliminate_dead_code(graph)


def _projection_chain(v: Value, users) -> list[Node] | None:
    """The ops from a MatMul by a constant matrix up to `v`, each used once and each keeping
    the last axis as it is (a bias Add, a Reshape of the leading axes); None if there are none."""
    chain: list[Node] = []
    while v.producer is not None and len(users.get(v, ())) == 1:
        node = v.producer
        if node.op == "MatMul":
            w = node.inputs[1]
            if w.is_const and w.const.ndim == 2 and not node.inputs[0].is_const:
                return [node] + chain[::-1]
            return None
        if node.op == "Add" and _bias(node) is not None:
            chain.append(node)
            v = node.inputs[1 - _bias(node)]
        elif node.op == "Reshape" and _keeps_last_axis(node):
            chain.append(node)
            v = node.inputs[0]
        else:
            return None
    return None


def _bias(node: Node) -> int | None:
    """Which operand of an Add is a constant vector along the last axis."""
    for i, c in enumerate(node.inputs):
        if c.is_const and c.const.ndim >= 1 and all(d == 1 for d in c.const.shape[:-1]) \
                and c.const.shape[-1] == node.outputs[0].type.shape[-1] and not node.inputs[1 - i].is_const:
            return i
    return None


def _keeps_last_axis(node: Node) -> bool:
    x, y = node.inputs[0].type.shape, node.outputs[0].type.shape
    return x is not None and y is not None and x[-1] == y[-1] and known_ints(node.inputs[1]) is not None


def _rewrite(graph: Graph, split: Node, chain: list[Node], sizes: list[int]) -> None:
    matmul = chain[0]
    x, w = matmul.inputs
    start = 0
    for out, size in zip(split.outputs, sizes):
        cols = slice(start, start + size)
        start += size
        name, part = out.name, f"{out.name}.proj"
        graph.rename(out, graph.fresh_name(f"{name}.fused"))   # the part keeps the name hints refer to
        v = graph.add_node("MatMul", [x, graph.add_const(np.ascontiguousarray(w.const[:, cols]),
                                                          graph.fresh_name(f"{w.name}.part"))],
                           name=matmul.name, output_names=[graph.fresh_name(part)]).outputs[0]
        for node in chain[1:]:
            if node.op == "Add":
                i = _bias(node)
                c = node.inputs[i]
                bias = graph.add_const(np.ascontiguousarray(c.const[..., cols]), graph.fresh_name(f"{c.name}.part"))
                v = graph.add_node("Add", [v, bias] if i == 1 else [bias, v], name=node.name,
                                   output_names=[graph.fresh_name(part)]).outputs[0]
            else:   # Reshape of the leading axes: the same shape, the part's last axis
                shape = list(known_ints(node.inputs[1]))
                shape[-1] = size
                v = graph.add_node("Reshape", [v, graph.add_const(np.array(shape, np.int64),
                                                                  graph.fresh_name(f"{node.name or 'shape'}.part"))],
                                   name=node.name, output_names=[graph.fresh_name(part)]).outputs[0]
        graph.replace_uses(out, v)
        graph.rename(v, name)
    graph.topo_sort()
