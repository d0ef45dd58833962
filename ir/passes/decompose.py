"""Decomposition: ops that a few ops the backends already run compute exactly, rewritten into them.

The first lowering pass, so that what it leaves (elementwise chains, reductions, reshapes and
transposes) fuses and plans like everything else; a backend then needs no kernel for these ops.
Each rule fires only where the node's attributes and the constants it reads are known at compile
time and its input's shape is as static as the rewrite needs; otherwise the node stays.
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Node, Value
from ..infer import known_array, known_ints
from ..ops.rules import axis_of
from .manager import graph_pass
from .rewrite import apply_rules, emit, emit_const, replace_node


def _static(v: Value, first: int = 0) -> tuple[int, ...] | None:
    """v's shape when its dims from `first` on are all known (the leading ones may be symbolic)."""
    shape = v.type.shape if v.type is not None else None
    if shape is None or not all(isinstance(d, int) for d in shape[first:]):
        return None
    return tuple(shape)


def _ints(graph: Graph, values, name: str) -> Value:
    return emit_const(graph, np.array(values, np.int64), name)


def batch_norm(graph: Graph, node: Node) -> bool:
    """BatchNormalization (inference) with constant statistics -> x * s + t per channel, folded in
    f64: s = scale / sqrt(var + epsilon), t = B - mean * s; elementwise fusion takes both in."""
    if node.op != "BatchNormalization" or len(node.outputs) != 1 or node.attr("training_mode"):
        return False
    x = node.inputs[0]
    params = [known_array(v) for v in node.inputs[1:5]]
    if x.type.rank is None or any(p is None for p in params):
        return False
    scale, bias, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    s = scale / np.sqrt(var + node.attr("epsilon"))
    per_channel = (-1,) + (1,) * (x.type.rank - 2)
    y = node.outputs[0].name
    factor = emit_const(graph, s.reshape(per_channel).astype(x.type.dtype.np), f"{y}_scale")
    shift = emit_const(graph, (bias - mean * s).reshape(per_channel).astype(x.type.dtype.np), f"{y}_shift")
    replace_node(graph, node, "Add", [emit(graph, node, "Mul", [x, factor], f"{y}_scaled"), shift])
    return True


def global_max_pool(graph: Graph, node: Node) -> bool:
    """GlobalMaxPool -> ReduceMax over the spatial axes, dims kept."""
    x = node.inputs[0] if node.op == "GlobalMaxPool" else None
    if x is None or x.type.rank is None:
        return False
    axes = _ints(graph, list(range(2, x.type.rank)), f"{node.outputs[0].name}_axes")
    replace_node(graph, node, "ReduceMax", [x, axes], {"keepdims": 1})
    return True


def depth_to_space(graph: Graph, node: Node) -> bool:
    """DepthToSpace -> Reshape to 6-D, Transpose, Reshape; SpaceToDepth the other way round.
    The batch dim passes through as 0 (copy the input's dim), so it may be symbolic."""
    if node.op not in ("DepthToSpace", "SpaceToDepth"):
        return False
    x, y = node.inputs[0], node.outputs[0]
    shape = _static(x, 1)
    if shape is None:
        return False
    _, c, h, w = shape
    b, dcr = node.attr("blocksize"), node.attr("mode") == "DCR"
    if node.op == "DepthToSpace":
        split = [0, b, b, c // (b * b), h, w] if dcr else [0, c // (b * b), b, b, h, w]
        perm = [0, 3, 4, 1, 5, 2] if dcr else [0, 1, 4, 2, 5, 3]
        merged = [0, c // (b * b), h * b, w * b]
    else:
        split = [0, c, h // b, b, w // b, b]
        perm = [0, 3, 5, 1, 2, 4] if dcr else [0, 1, 3, 5, 2, 4]
        merged = [0, c * b * b, h // b, w // b]
    blocks = emit(graph, node, "Reshape", [x, _ints(graph, split, f"{y.name}_split")], f"{y.name}_blocks")
    moved = emit(graph, node, "Transpose", [blocks], f"{y.name}_moved", {"perm": perm})
    replace_node(graph, node, "Reshape", [moved, _ints(graph, merged, f"{y.name}_shape")])
    return True


def cast_like(graph: Graph, node: Node) -> bool:
    """CastLike(x, like) -> Cast(x) to like's dtype."""
    if node.op != "CastLike" or node.inputs[1].type is None:
        return False
    attrs = {"to": node.inputs[1].type.dtype, "saturate": node.attr("saturate"), "round_mode": node.attr("round_mode")}
    replace_node(graph, node, "Cast", [node.inputs[0]], attrs)
    return True


def lrn(graph: Graph, node: Node) -> bool:
    """LRN -> x / (bias + alpha * avg)^beta, avg the mean of x^2 over `size` channels around each,
    zero-padded: an AveragePool counting its pads over x^2 viewed as [N, 1, C, spatial]."""
    if node.op != "LRN":
        return False
    x, y = node.inputs[0], node.outputs[0]
    shape = _static(x, 1)
    if shape is None or not x.type.dtype.is_float:
        return False
    size, dt = node.attr("size"), x.type.dtype.np
    lo = (size - 1) // 2
    square = emit(graph, node, "Mul", [x, x], f"{y.name}_square")
    columns = emit(graph, node, "Reshape", [square, _ints(graph, [0, 1, shape[1], -1], f"{y.name}_channels_shape")],
                   f"{y.name}_channels")
    avg = emit(graph, node, "AveragePool", [columns], f"{y.name}_window",
               {"kernel_shape": [size, 1], "pads": [lo, 0, size - 1 - lo, 0], "count_include_pad": 1})
    avg = emit(graph, node, "Reshape", [avg, _ints(graph, (0,) + shape[1:], f"{y.name}_shape")], f"{y.name}_avg")
    scaled = emit(graph, node, "Mul", [avg, emit_const(graph, np.array(node.attr("alpha"), dt), f"{y.name}_alpha")],
                  f"{y.name}_scaled")
    base = emit(graph, node, "Add", [scaled, emit_const(graph, np.array(node.attr("bias"), dt), f"{y.name}_bias")],
                f"{y.name}_base")
    power = emit(graph, node, "Pow", [base, emit_const(graph, np.array(node.attr("beta"), dt), f"{y.name}_beta")],
                 f"{y.name}_denominator")
    replace_node(graph, node, "Div", [x, power])
    return True


def _along(graph: Graph, node: Node, axis: int, n: int, name: str) -> Value:
    """0, 1, ..., n-1 along `axis` of node's input, broadcastable to its shape."""
    rank = node.inputs[0].type.rank
    return emit_const(graph, np.arange(n, dtype=np.int64).reshape((n,) + (1,) * (rank - 1 - axis)), name)


def hardmax(graph: Graph, node: Node) -> bool:
    """Hardmax -> Cast(Equal(position along axis, ArgMax(x, axis))): 1 at the first largest value."""
    if node.op != "Hardmax":
        return False
    x, y = node.inputs[0], node.outputs[0]
    shape = _static(x)
    if shape is None or not shape or 0 in shape:
        return False
    axis = axis_of(node, len(shape))
    index = emit(graph, node, "ArgMax", [x], f"{y.name}_argmax", {"axis": axis, "keepdims": 1})
    hit = emit(graph, node, "Equal", [_along(graph, node, axis, shape[axis], f"{y.name}_positions"), index],
               f"{y.name}_hit")
    replace_node(graph, node, "Cast", [hit], {"to": x.type.dtype})
    return True


def lp_normalization(graph: Graph, node: Node) -> bool:
    """LpNormalization -> x / norm, norm = ReduceL1 or ReduceL2 along axis, 1 where it is 0."""
    if node.op != "LpNormalization" or node.inputs[0].type.rank is None:
        return False
    x, y = node.inputs[0], node.outputs[0]
    dt = x.type.dtype.np
    axes = _ints(graph, [axis_of(node, x.type.rank)], f"{y.name}_axes")
    norm = emit(graph, node, "ReduceL1" if node.attr("p") == 1 else "ReduceL2", [x, axes], f"{y.name}_norm",
                {"keepdims": 1})
    zero = emit(graph, node, "Equal", [norm, emit_const(graph, np.array(0, dt), f"{y.name}_zero")], f"{y.name}_is_zero")
    safe = emit(graph, node, "Where", [zero, emit_const(graph, np.array(1, dt), f"{y.name}_one"), norm],
                f"{y.name}_divisor")
    replace_node(graph, node, "Div", [x, safe])
    return True


def trilu(graph: Graph, node: Node) -> bool:
    """Trilu with a known k -> Where(constant mask of the last two axes, x, 0)."""
    if node.op != "Trilu":
        return False
    x, y = node.inputs[0], node.outputs[0]
    shape = _static(x, -2)
    k = known_ints(node.input(1)) if node.input(1) is not None else (0,)
    if shape is None or k is None or not isinstance(k[0], int):
        return False
    ones = np.ones(shape[-2:], dtype=bool)
    mask = np.triu(ones, k[0]) if node.attr("upper") else np.tril(ones, k[0])
    replace_node(graph, node, "Where", [emit_const(graph, mask, f"{y.name}_mask"), x,
                                        emit_const(graph, np.zeros((), x.type.dtype.np), f"{y.name}_zero")])
    return True


def tile(graph: Graph, node: Node) -> bool:
    """Tile with known repeats -> Reshape (a unit axis before each repeated one), Expand, Reshape."""
    if node.op != "Tile":
        return False
    x, y = node.inputs[0], node.outputs[0]
    shape, repeats = _static(x), known_ints(node.inputs[1])
    if shape is None or repeats is None or not all(isinstance(r, int) for r in repeats):
        return False
    spread, grown = [], []
    for d, r in zip(shape, repeats):
        if r != 1:
            spread.append(1)
            grown.append(r)
        spread.append(d)
        grown.append(d)
    if len(spread) == len(shape):
        replace_node(graph, node, "Identity", [x])
        return True
    spread_v = emit(graph, node, "Reshape", [x, _ints(graph, spread, f"{y.name}_spread_shape")], f"{y.name}_spread")
    grown_v = emit(graph, node, "Expand", [spread_v, _ints(graph, grown, f"{y.name}_grown_shape")], f"{y.name}_grown")
    replace_node(graph, node, "Reshape", [grown_v, _ints(graph, [d * r for d, r in zip(shape, repeats)],
                                                          f"{y.name}_shape")])
    return True


DECOMPOSE_RULES = [batch_norm, global_max_pool, depth_to_space, cast_like, lrn, hardmax, lp_normalization, trilu,
                   tile]


@graph_pass("decompose", "BatchNorm -> x * scale + shift, GlobalMaxPool -> ReduceMax, Depth/SpaceToDepth -> "
                         "reshapes and a transpose, CastLike -> Cast, Tile -> Expand, LRN, Hardmax, "
                         "LpNormalization and Trilu -> the ops they are made of.")
def decompose(graph: Graph) -> Graph:
    return apply_rules(graph, DECOMPOSE_RULES)
