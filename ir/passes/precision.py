"""Mixed precision: an f32 graph rewritten to keep its floats in f16 or bf16 wherever the
target has a half-precision kernel for the op.

The target names those ops (`narrow(node) -> bool`); their kernels store half and compute in
f32 (products and sums accumulate in f32, each result rounds once to the stored type), which
is exactly what the numpy reference does with half tensors (ir/ops/rules.py: compute_dtype).
Every other op keeps f32, with a Cast where the two kinds meet. Weights of a narrowed op are
converted at compile time; the graph's inputs and outputs stay f32, so the model's interface
(and the caller's buffers) do not change with the precision.
"""
from __future__ import annotations

from typing import Callable

import ml_dtypes
import numpy as np

from ..graph import Graph, Node, Value
from ..infer import infer_graph
from ..types import bf16, f16, f32, tensor_type
from .dead_code import eliminate_dead_code

PRECISIONS = {"fp32": f32, "fp16": f16, "bf16": bf16}


def check_precision(precision) -> None:
    from flowc.errors import CompileError
    if precision not in PRECISIONS:
        raise CompileError(f"precision {precision!r} is not one flowc computes in; use one of {', '.join(PRECISIONS)}")


def lower_precision(graph: Graph, precision: str, narrow: Callable[[Node], bool]) -> Graph:
    """Store the f32 tensors of every op that `narrow` accepts in `precision` ("fp16" or
    "bf16"; "fp32" leaves the graph as it is). Rewrites `graph` in place and returns it."""
    check_precision(precision)
    half = PRECISIONS[precision]
    if half == f32:
        return graph
    halves: dict[int, Value] = {}    # an f32 value -> its half twin (a converted constant, or a Cast)
    widened: dict[int, Value] = {}   # a value stored in half -> its f32 twin (a Cast)
    stored_half: set[int] = set()    # the values the rewrite now stores in half

    def cast(v: Value, to, hint: str) -> Value:
        return graph.add_node("Cast", [v], attrs={"to": to}, output_names=[graph.fresh_name(hint)]).outputs[0]

    def as_half(v: Value) -> Value:
        if id(v) in stored_half:
            return v
        if id(v) not in halves:
            name = f"{v.name}_{precision}"
            halves[id(v)] = (graph.add_const(_saturate(v.const, half), graph.fresh_name(name)) if v.is_const
                             else cast(v, half, name))
            stored_half.add(id(halves[id(v)]))
        return halves[id(v)]

    def as_f32(v: Value) -> Value:
        if id(v) not in stored_half:
            return v
        if id(v) not in widened:
            widened[id(v)] = cast(v, f32, f"{v.name}_fp32")
        return widened[id(v)]

    for node in list(graph.nodes):
        floats = [v for v in (*node.inputs, *node.outputs) if v is not None and v.type.dtype.is_float]
        narrowed = (node.op != "Cast" and floats and all(v.type.dtype == f32 or id(v) in stored_half for v in floats)
                    and narrow(node))
        if narrowed:
            node.inputs = [v if v is None or v.type.dtype != f32 else as_half(v) for v in node.inputs]
            for v in node.outputs:
                if v.type.dtype == f32:
                    v.type = tensor_type(half, v.type.shape)
                    stored_half.add(id(v))
        else:
            node.inputs = [None if v is None else as_f32(v) for v in node.inputs]
    outputs: dict[int, Value] = {}   # the model's outputs keep their names and f32
    for i, v in enumerate(graph.outputs):
        if id(v) in stored_half:
            if id(v) not in outputs:
                name = v.name
                graph.rename(v, graph.fresh_name(f"{name}_{precision}"))
                outputs[id(v)] = graph.add_node("Cast", [v], attrs={"to": f32}, output_names=[name]).outputs[0]
            graph.outputs[i] = outputs[id(v)]
    graph.topo_sort()
    return infer_graph(eliminate_dead_code(graph))   # the f32 originals of converted weights go


def _saturate(data: np.ndarray, half) -> np.ndarray:
    """`data` in the half type, finite values beyond its range clamped to its largest finite
    value (an attention mask's -3.4e38 becomes -65504 in f16, not -inf, which would make a
    fully masked row NaN rather than uniform); infinities and NaN stay what they are."""
    top = float(ml_dtypes.finfo(half.np).max)
    finite = np.isfinite(data)
    return np.where(finite, np.clip(data, -top, top), data).astype(half.np)
