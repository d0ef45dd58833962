"""Shape and dtype inference: runs each op's rule from the registry.

Besides types, inference tracks the statically known contents of small
integer tensors (`Value.sym`), with dims that may be symbolic, so that shape
arithmetic (Shape -> Gather -> Concat -> Reshape) gives typed results even
for a symbolic batch.
"""
from __future__ import annotations

import numpy as np

from flowc.errors import CompileError, quote_name

from .graph import Graph, Node, Value
from .types import Dim, TensorType

SYM_MAX_ELEMENTS = 64


def known_ints(v: Value | None) -> tuple[Dim, ...] | None:
    """The contents of a small integer tensor of rank 0 or 1, when known statically."""
    if v is None:
        return None
    if v.const is not None and v.const.dtype.kind in "iub" and v.const.ndim <= 1 \
            and v.const.size <= SYM_MAX_ELEMENTS:
        return tuple(int(x) for x in v.const.reshape(-1))
    return v.sym


def known_array(v: Value | None) -> np.ndarray | None:
    """The value as an array when every element is known and concrete."""
    if v is None:
        return None
    if v.const is not None:
        return v.const
    if v.sym is not None and all(isinstance(d, int) for d in v.sym) and v.type is not None \
            and v.type.shape is not None:
        return np.array(v.sym, dtype=v.type.dtype.np).reshape(
            [d for d in v.type.shape] if v.type.is_static else -1)
    return None


def _sym_candidate(t: TensorType) -> bool:
    return ((t.dtype.is_int or t.dtype.name == "bool") and t.shape is not None and len(t.shape) <= 1
            and (not t.shape or (isinstance(t.shape[0], int) and t.shape[0] <= SYM_MAX_ELEMENTS)))


def infer_node(node: Node) -> None:
    """Type `node`'s outputs (and their known contents) from its inputs."""
    opdef = node.opdef
    while node.inputs and node.inputs[-1] is None:
        node.inputs.pop()
    lo, hi = opdef.arity(opdef.inputs)
    n = len(node.inputs)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        noun = "input" if want in ("1", "at least 1") else "inputs"
        raise node.error(f"takes {want} {noun} ({', '.join(opdef.inputs)}), got {n}")
    for i, (name, v) in enumerate(zip(_expand(opdef.inputs, n), node.inputs)):
        if v is None and not name.endswith(("?", "*")):
            raise node.error(f"required input {i} ({name}) is missing")
        if v is not None and v.type is None:
            raise node.error(f"input {quote_name(v.name)} has no type")
    lo, hi = opdef.arity(opdef.outputs)
    if len(node.outputs) < max(lo, 1) or (hi is not None and len(node.outputs) > hi):
        raise node.error(f"has {len(node.outputs)} outputs, the op defines {', '.join(opdef.outputs)}")
    if not opdef.storage:
        _refuse_storage(node)
    try:
        types = opdef.infer(node)
    except CompileError:
        raise
    except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError,
            AssertionError) as e:
        raise node.error(str(e) or type(e).__name__) from None
    if len(types) < len(node.outputs):
        raise node.error(f"produces {len(types)} outputs, the node names {len(node.outputs)}")
    if not opdef.storage:
        _refuse_storage(node, types)
    for v, t in zip(node.outputs, types):
        v.type = t
        v.sym = None
    _infer_sym(node)


def _refuse_storage(node: Node, types: list[TensorType] | None = None) -> None:
    """Storage-only dtypes go through Cast and the data-movement ops (those defined with storage=True)
    only; checks the inputs, or the outputs' `types` when given."""
    values = [(v, v.type) for v in node.inputs if v is not None] if types is None else zip(node.outputs, types)
    for v, t in values:
        if t.dtype.storage_only:
            compute = "f32" if t.dtype.kind == "float" else "i32"
            if types is None:
                raise node.error(f"input {quote_name(v.name)} is {t}: {node.op} does not take the storage-only "
                                 f"type {t.dtype}; Cast it to {compute} first")
            raise node.error(f"output {quote_name(v.name)} would be {t}: {node.op} does not produce the "
                             f"storage-only type {t.dtype}; produce {compute} and Cast that")


def _expand(names: tuple[str, ...], n: int) -> list[str]:
    if names and names[-1].endswith(("*", "+")):
        return list(names[:-1]) + [names[-1]] * max(0, n - len(names) + 1)
    return list(names)


def _infer_sym(node: Node) -> None:
    if not any(_sym_candidate(v.type) for v in node.outputs):
        return
    opdef = node.opdef
    syms = None
    try:
        if opdef.sym is not None:
            syms = opdef.sym(node)
        if syms is None or all(s is None for s in syms):
            syms = _sym_by_evaluation(node)
    except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError,
            AssertionError):
        syms = None   # a shape rule that cannot be evaluated statically stays dynamic
    if not syms:
        return
    for v, s in zip(node.outputs, syms):
        if s is not None and _sym_candidate(v.type):
            v.sym = tuple(s)


def _sym_by_evaluation(node: Node):
    args = []
    for v in node.inputs:
        if v is None:
            args.append(None)
            continue
        a = known_array(v)
        if a is None or a.size > SYM_MAX_ELEMENTS:
            return None
        args.append(a)
    out = node.opdef.ref(node, *args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [tuple(int(x) for x in np.asarray(o).reshape(-1)) if np.asarray(o).dtype.kind in "iub"
            else None for o in outs]


def infer_graph(graph: Graph) -> Graph:
    """Re-type every node, in order, from the graph inputs and constants."""
    for v in graph.constants:
        v.sym = None
    for node in graph.nodes:
        infer_node(node)
    return graph
