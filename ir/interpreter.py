"""The numpy reference interpreter: the oracle every backend is tested against."""
from __future__ import annotations

import numpy as np

from flowc.errors import CompileError, InputError, describe_node, quote_name

from .graph import Graph, Value
from .types import Dim, TensorType, dim_symbols


def check_inputs(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs as arrays, checked against the graph's input types; symbolic dims must agree.

    Raises InputError naming the input, what was expected and what was given.
    """
    return _bind_inputs(graph, feeds)[0]


def _bind_inputs(graph: Graph, feeds) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, int, int]]]:
    """check_inputs' arrays, and for each symbol the inputs bind: (input, axis, size)."""
    if not isinstance(feeds, dict):
        raise InputError(f"inputs must be a dict of name -> array, got {type(feeds).__name__}")
    names = [v.name for v in graph.inputs]
    missing = [n for n in names if n not in feeds]
    if missing:
        raise InputError(f"missing input {quote_name(missing[0])}; the model takes "
                         + ", ".join(f"{quote_name(v.name)}: {v.type}" for v in graph.inputs))
    extra = [n for n in feeds if n not in names]
    if extra:
        raise InputError(f"unknown input {quote_name(str(extra[0]))}; the model takes "
                         + ", ".join(quote_name(n) for n in names))
    bound: dict[str, int] = {}
    sources: dict[str, tuple[str, int, int]] = {}
    out = {}
    for v in graph.inputs:
        a = feeds[v.name]
        if not isinstance(a, np.ndarray):
            try:
                a = np.asarray(a)
            except Exception:
                raise InputError(f"input {quote_name(v.name)}: expected an array of {v.type}, "
                                 f"got {type(feeds[v.name]).__name__}") from None
        t: TensorType = v.type
        if a.dtype != t.dtype.np:
            raise InputError(f"input {quote_name(v.name)}: expected dtype {t.dtype} "
                             f"({t.dtype.np}), got {a.dtype}")
        if t.shape is not None:
            if a.ndim != len(t.shape):
                raise InputError(f"input {quote_name(v.name)}: expected shape {_shape(t.shape)} "
                                 f"(rank {len(t.shape)}), got {list(a.shape)}")
            for axis, (want, got) in enumerate(zip(t.shape, a.shape)):
                if isinstance(want, int):
                    ok = want == got
                elif want == "?" or "*" in want:
                    ok = True
                else:
                    ok = bound.setdefault(want, got) == got
                    sources.setdefault(want, (v.name, axis, got))
                if not ok:
                    expect = want if isinstance(want, int) else f"{want}={bound[want]}"
                    raise InputError(f"input {quote_name(v.name)}: expected shape {_shape(t.shape)}, "
                                     f"got {list(a.shape)} (axis {axis} should be {expect})")
        out[v.name] = a
    return out, sources


def _shape(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def run(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate `graph` on numpy arrays; returns its outputs by name."""
    env: dict[int, np.ndarray] = {}
    for v in graph.constants:
        if v.const is None:
            raise CompileError(f"constant {quote_name(v.name)} has no data (the graph was read "
                               "from text without its resources)")
        env[id(v)] = v.const
    feeds, sources = _bind_inputs(graph, feeds)
    for v in graph.inputs:
        env[id(v)] = feeds[v.name]
    remaining = _last_uses(graph)
    for node in graph.nodes:
        args = [None if v is None else env[id(v)] for v in node.inputs]
        try:
            with np.errstate(all="ignore"):   # IEEE results (log 0, 0/0) are the answer, not a problem
                result = node.opdef.ref(node, *args)
        except CompileError:
            raise
        except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError,
                NotImplementedError) as e:
            raise _sizes_error(node, sources, e) or \
                CompileError(f"{describe_node(node)}: reference evaluation failed: {e}") from None
        except MemoryError:
            raise CompileError(f"{describe_node(node)}: out of memory evaluating it (outputs "
                               + ", ".join(str(v.type) for v in node.outputs) + ")") from None
        results = result if isinstance(result, (tuple, list)) else (result,)
        for v, r in zip(node.outputs, results):
            env[id(v)] = _checked(node, v, r)
        for v in node.inputs:
            if v is not None and remaining.get(id(v)) is node:
                env.pop(id(v), None)
    return {v.name: env[id(v)] for v in graph.outputs}


def _sizes_error(node, sources: dict[str, tuple[str, int, int]], e: Exception) -> InputError | None:
    """An InputError when `node` failed on operands whose shapes hold symbols the inputs bound: inference
    could only assume what those sizes would be (A is 1 or 3 where it meets a 3), these sizes break it."""
    symbols = sorted({s for v in node.inputs if v is not None and v.type.shape is not None
                      for d in v.type.shape for s in dim_symbols(d) if s in sources})
    if not symbols:
        return None
    given = ", ".join(f"input {quote_name(sources[s][0])} axis {sources[s][1]} ({s}={sources[s][2]})"
                      for s in symbols)
    operands = ", ".join(str(v.type) for v in node.inputs if v is not None)
    return InputError(f"{given}: these sizes do not fit the model: {describe_node(node)} on {operands} "
                      f"fails with them: {e}")


def _last_uses(graph: Graph) -> dict[int, object]:
    """For each intermediate value, the node after which it is dead."""
    keep = {id(v) for v in graph.outputs} | {id(v) for v in graph.constants} | {id(v) for v in graph.inputs}
    last = {}
    for node in graph.nodes:
        for v in node.inputs:
            if v is not None and id(v) not in keep:
                last[id(v)] = node
    return last


def _checked(node, v: Value, r) -> np.ndarray:
    r = np.asarray(r)
    t = v.type
    if t is None:
        return r
    if r.dtype != t.dtype.np:
        raise CompileError(f"{describe_node(node)}: reference produced {r.dtype} for "
                           f"{quote_name(v.name)}, typed {t} (flowc bug)")
    if t.shape is not None:
        ok = r.ndim == len(t.shape) and all(not isinstance(d, int) or d == s for d, s in zip(t.shape, r.shape))
        if not ok:
            raise CompileError(f"{describe_node(node)}: reference produced shape {list(r.shape)} for "
                               f"{quote_name(v.name)}, typed {t} (flowc bug)")
    return r
