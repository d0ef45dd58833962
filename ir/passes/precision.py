"""Mixed precision: an f32 graph rewritten to keep its floats in f16 or bf16 where the target
has half-precision code for the op and the number format can hold the values.

The target says how each op runs in half (`half_code(node)`): START for the ops worth
computing in half on their own (products, convolutions, norms: their kernels read half
operands and accumulate in f32), FOLLOW for the ops that keep half once their operands are
half (elementwise, data movement, pools, reductions: they gain nothing from narrowing f32
data, and an f32 tensor round-tripped through half only loses), None for the rest. A FOLLOW
op is narrowed when every float operand that is not a constant is already stored half, like
autocast's promotion to the widest operand type. The kernels compute in f32 and round each
result once to the stored type, which is what the numpy reference does with half tensors
(ir/ops/rules.py: compute_dtype).

f16 holds ±65504 at most and loses non-zero values below 6e-8, so under fp16 ops whose result
easily leaves that range (Pow, Exp, sums and products of many terms, x * x) keep f32, as does
any op with a constant operand that f16 would round to zero (an epsilon of 1e-12). Larger
constants saturate at ±65504 (an attention mask's -3.4e38 gives the same softmax); infinities
stay. bf16 has f32's range.

Weights of a narrowed op are converted at compile time; the graph's inputs and outputs stay
f32, so the model's interface (and the caller's buffers) do not change with the precision.
"""
from __future__ import annotations

from enum import Enum
from typing import Callable

import ml_dtypes
import numpy as np

from flowc.errors import CompileError

from ..graph import Graph, Node, Value
from ..infer import infer_graph
from ..types import bf16, f16, f32, tensor_type
from .dead_code import eliminate_dead_code

PRECISIONS = {"fp32": f32, "fp16": f16, "bf16": bf16}


class Half(Enum):
    START = "start"     # narrowed whenever its float tensors are f32 or half
    FOLLOW = "follow"   # narrowed when its non-constant float operands are half already


# Under fp16, ops whose results readily overflow (or underflow) its range keep f32.
FP16_UNSAFE = {"Pow", "Exp", "ReduceSum", "ReduceSumSquare", "ReduceProd", "CumSum"}


def check_precision(precision) -> None:
    if precision not in PRECISIONS:
        raise CompileError(f"precision {precision!r} is not one flowc computes in; use one of {', '.join(PRECISIONS)}")


def lower_precision(graph: Graph, precision: str, half_code: Callable[[Node], Half | None]) -> Graph:
    """Store in `precision` ("fp16" or "bf16"; "fp32" leaves the graph as it is) the f32
    tensors of the ops that `half_code` and the format allow (see above). Rewrites `graph`
    in place and returns it."""
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
        if _narrowed(node, half, half_code(node) if node.op != "Cast" else None, stored_half):
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


def _narrowed(node: Node, half, how: Half | None, stored_half: set[int]) -> bool:
    """Whether `node`'s f32 tensors go to `half`, its operands so far stored as `stored_half` says."""
    if how is None:
        return False
    operands = [v for v in node.inputs if v is not None and v.type.dtype.is_float]
    floats = operands + [v for v in node.outputs if v.type.dtype.is_float]
    if not floats or any(v.type.dtype != f32 and id(v) not in stored_half for v in floats):
        return False   # no float tensor, or one in another float type (f64, a model's own f16)
    if half == f16 and (node.op in FP16_UNSAFE or _squares(node)
                        or any(v.is_const and _underflows(v.const) for v in operands)):
        return False
    return how == Half.START or all(v.is_const or id(v) in stored_half for v in operands)


def _squares(node: Node) -> bool:
    return node.op == "Mul" and len(node.inputs) == 2 and node.inputs[0] is node.inputs[1]


def _underflows(data: np.ndarray) -> bool:
    """Whether f16 rounds a non-zero element of `data` to zero."""
    data = np.abs(np.asarray(data, dtype=np.float64))
    return bool(np.any((data != 0) & (data <= 2.0 ** -25)))   # half f16's smallest subnormal: rounds to 0


def _saturate(data: np.ndarray, half) -> np.ndarray:
    """`data` in the half type, finite values beyond its range clamped to its largest finite
    value; infinities and NaN stay what they are."""
    top = float(ml_dtypes.finfo(half.np).max)
    finite = np.isfinite(data)
    return np.where(finite, np.clip(data, -top, top), data).astype(half.np)
