"""Constant folding: nodes whose results are known at compile time become constants.

A node folds when all its inputs are constants (the op's numpy reference computes
its results) or when shape inference knows its results (`Value.sym`: shape
arithmetic on static dims). The folded value keeps its name and its users; what
folding leaves unused is removed.
"""
from __future__ import annotations

import numpy as np

from flowc.errors import CompileError

from ..graph import Graph, Node
from ..infer import infer_node, known_array
from ..types import tensor_type
from .dead_code import eliminate_dead_code
from .manager import graph_pass

# A folded result is computed by the numpy reference at compile time and shipped in
# weights.bin; past a million elements the device computes it faster than numpy and
# the artifact stays smaller.
FOLD_MAX_ELEMENTS = 1 << 20
# A result larger than all its inputs together (ConstantOfShape, Expand, Tile, Range,
# an outer product) costs one cheap kernel at run time but its full size as a weight:
# it folds only while small.
FOLD_MAX_GROWN_ELEMENTS = 1 << 12


@graph_pass("fold-constants",
            "Replace nodes computed from constants, or whose results shape inference knows, by constants.")
def fold_constants(graph: Graph) -> Graph:
    return _fold_graph(graph, FOLD_MAX_GROWN_ELEMENTS)


@graph_pass("fold-constants-no-growth",
            "fold-constants, but no result larger than its inputs: for graphs specialised at one batch "
            "size (codegen/cpu/batch.py), where such a result would hold the batch in the weights.")
def fold_constants_no_growth(graph: Graph) -> Graph:
    return _fold_graph(graph, 0)


def _fold_graph(graph: Graph, max_grown: int) -> Graph:
    kept = []
    for node in graph.nodes:
        infer_node(node)          # its inputs may have just become constants
        results = _fold(node, max_grown)
        if results is None:
            kept.append(node)
            continue
        for v, data in zip(node.outputs, results):
            # the value keeps its name and its uses, graph outputs included
            v.producer, v.const, v.sym = None, np.asarray(data, order="C"), None   # (ascontiguousarray makes 0-d 1-d)
            v.type = tensor_type(v.type.dtype, data.shape)
            graph.constants.append(v)
    graph.nodes = kept
    return eliminate_dead_code(graph)


def _fold(node: Node, max_grown: int) -> list[np.ndarray] | None:
    """The node's results when they are known and worth storing, else None."""
    known = [known_array(v) for v in node.outputs]
    args = [None if v is None else known_array(v) for v in node.inputs]
    from_types = any(a is None for v, a in zip(node.inputs, args) if v is not None)
    if all(a is not None for a in known):
        # shape arithmetic that inference worked out: from types (Shape) it always folds;
        # from constants (Range over a known length) only within the growth limit
        if from_types or not _grows([a.size for a in known], args, max_grown):
            return known
        for v in node.outputs:   # nor may its users fold what it knows
            v.sym = None
        return None
    if from_types:
        return None
    sizes = [v.type.numel() if v.type.is_static else None for v in node.outputs]
    if None in sizes or max(sizes) > FOLD_MAX_ELEMENTS or _grows(sizes, args, max_grown):
        return None
    try:
        with np.errstate(all="ignore"):
            out = node.opdef.ref(node, *args)
    except CompileError:
        raise
    except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError,
            NotImplementedError) as e:
        raise node.error(f"cannot be folded: its reference fails on its constant inputs: {e}") from None
    return [np.asarray(a) for a in (out if isinstance(out, (tuple, list)) else (out,))]


def _grows(sizes: list[int], args: list, max_grown: int) -> bool:
    """The results outgrow their constant inputs together, past `max_grown` elements."""
    return sum(sizes) > max(sum(a.size for a in args if a is not None), max_grown)
