"""Canonicalisation: one spelling for each computation, so later stages match fewer forms.

Every rule is exact: it fires only when the constants and attributes it reads
make both forms compute the same values.
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Node, Value
from ..infer import known_array, known_ints
from .manager import graph_pass
from .recompose import RECOMPOSE_RULES
from .rewrite import apply_rules, bypass, emit, emit_const, producer, replace_node, use_count


def remove_identity(graph: Graph, node: Node) -> bool:
    return node.op == "Identity" and bypass(graph, node, node.inputs[0])


def remove_dropout(graph: Graph, node: Node) -> bool:
    """Dropout outside training passes its input through (its mask must be unused)."""
    if node.op != "Dropout" or any(use_count(graph, v) for v in node.outputs[1:]):
        return False
    training = node.input(2)
    if training is not None and (known_array(training) is None or known_array(training).any()):
        return False
    return bypass(graph, node, node.inputs[0])


def remove_same_type_cast(graph: Graph, node: Node) -> bool:
    return node.op == "Cast" and node.attr("to") == node.inputs[0].type.dtype \
        and bypass(graph, node, node.inputs[0])


def merge_reshapes(graph: Graph, node: Node) -> bool:
    """Reshape(Reshape(x, s1), s2) -> Reshape(x, s2), when no entry of s2 copies a dim (0)."""
    if node.op != "Reshape":
        return False
    inner, shape = producer(node.inputs[0], "Reshape"), known_ints(node.inputs[1])
    # a symbolic entry is a dim of a model input: nonzero unless the model runs on empty tensors
    if inner is None or shape is None or (0 in shape and not node.attr("allowzero")):
        return False
    replace_node(graph, node, "Reshape", [inner.inputs[0], node.inputs[1]], node.attrs)
    return True


def remove_noop_reshape(graph: Graph, node: Node) -> bool:
    """A Reshape (or Flatten, Squeeze, Unsqueeze) to its input's own shape goes."""
    if node.op not in ("Reshape", "Flatten", "Squeeze", "Unsqueeze") or len(node.outputs) != 1:
        return False
    x, y = node.inputs[0], node.outputs[0]
    if x.type is None or y.type is None or x.type.shape is None or x.type.shape != y.type.shape \
            or any(isinstance(d, str) and not d.isidentifier() for d in x.type.shape):
        return False   # an unknown dim ("?") may differ from another unknown dim
    return bypass(graph, node, x)


def reshape_before_matmul(graph: Graph, node: Node) -> bool:
    """Reshape(MatMul(a, W), s) -> MatMul(Reshape(a, s'), W) for a 2-D W when the reshape keeps
    the last dim N, s' being s with K last: it only regroups the rows of the product, which are
    independent. The new Reshape then meets the one that flattened `a` (exporters write Linear
    layers as Reshape, Gemm, Reshape) and both go, so the product reaches the bias, activation or
    residual after it and fuses with them."""
    if node.op != "Reshape":
        return False
    mm = producer(node.inputs[0], "MatMul")
    shape = known_ints(node.inputs[1])
    if mm is None or shape is None or use_count(graph, mm.outputs[0]) != 1:
        return False
    a, w = mm.inputs
    ws, out = w.type.shape, node.outputs[0].type.shape
    if (ws is None or len(ws) != 2 or not all(isinstance(d, int) for d in ws) or out is None or len(out) < 2
            or out[-1] != ws[1] or a.type.rank is None or a.type.rank < 2 or not shape):
        return False
    # a 0 copies its input's dim: the same in `a` and in the product, but for the last one
    if not node.attr("allowzero") and any(d == 0 for d in shape[a.type.rank - 1:-1]):
        return False
    rows = emit_const(graph, np.array(list(shape[:-1]) + [ws[0]], np.int64), f"{node.outputs[0].name}_rows")
    regrouped = emit(graph, node, "Reshape", [a, rows], f"{a.name}_rows", node.attrs)
    replace_node(graph, node, "MatMul", [regrouped, w])
    return True


def merge_transposes(graph: Graph, node: Node) -> bool:
    """Transpose(Transpose(x, p), q) -> Transpose(x, p[q]); an identity permutation goes."""
    if node.op != "Transpose" or node.inputs[0].type.rank is None:
        return False
    rank = node.inputs[0].type.rank
    perm, source = _perm(node, rank), node.inputs[0]
    inner = producer(source, "Transpose")
    if inner is not None:
        perm, source = [_perm(inner, rank)[i] for i in perm], inner.inputs[0]
    if perm == list(range(rank)):
        return bypass(graph, node, source)
    if inner is None:
        return False
    replace_node(graph, node, "Transpose", [source], {"perm": perm})
    return True


def _perm(node: Node, rank: int) -> list[int]:
    perm = node.attr("perm")
    return list(range(rank))[::-1] if perm is None else list(perm)


def gemm_to_matmul(graph: Graph, node: Node) -> bool:
    """Gemm(A, B, C) -> MatMul(A', B') * alpha + C * beta, each factor only where it is not 1;
    a transposed constant B (or A) read by this Gemm alone is stored transposed."""
    if node.op != "Gemm":
        return False
    a, b, c = node.input(0), node.input(1), node.input(2)
    alpha, beta = node.attr("alpha"), node.attr("beta")
    if not node.outputs[0].type.dtype.is_float and (alpha != 1 or beta != 1):
        return False          # an integer Gemm scales in float; no integer Mul says the same
    if node.attr("transA"):
        a = _transposed(graph, node, a)
    if node.attr("transB"):
        b = _transposed(graph, node, b)
    y = node.outputs[0]
    out = ("MatMul", [a, b])
    if alpha != 1:
        out = ("Mul", [emit(graph, node, *out, f"{y.name}_matmul"), _factor(graph, y, alpha, "alpha")])
    if c is not None:
        if beta != 1:
            c = emit(graph, node, "Mul", [c, _factor(graph, y, beta, "beta")], f"{c.name}_scaled")
        out = ("Add", [emit(graph, node, *out, f"{y.name}_{out[0].lower()}"), c])
    replace_node(graph, node, *out)
    return True


def _factor(graph: Graph, y: Value, value: float, what: str) -> Value:
    return emit_const(graph, np.array(value, y.type.dtype.np), f"{y.name}_{what}")


def _transposed(graph: Graph, gemm: Node, v: Value) -> Value:
    if v.const is not None and v.producer is None and use_count(graph, v) == 1:
        return emit_const(graph, v.const.T, f"{v.name}_t")
    return emit(graph, gemm, "Transpose", [v], f"{v.name}_t", {"perm": [1, 0]})


_WINDOW_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")
_NEUTRAL = {"strides": 1, "dilations": 1, "pads": 0}


def drop_neutral_window_attrs(graph: Graph, node: Node) -> bool:
    """Strides and dilations of all 1, pads of all 0 and a Conv kernel_shape equal to the weight's
    say what leaving them out says: dropped, so the text and pictures show what matters."""
    if node.op not in _WINDOW_OPS or node.attr("auto_pad") != "NOTSET":
        return False
    drop = [k for k, v in _NEUTRAL.items() if k in node.attrs and all(x == v for x in node.attrs[k])]
    w = node.inputs[1].type.shape if node.op == "Conv" else None
    if "kernel_shape" in node.attrs and w is not None and tuple(w[2:]) == node.attrs["kernel_shape"]:
        drop.append("kernel_shape")
    for k in drop:
        del node.attrs[k]
    return bool(drop)


def fold_batch_norm(graph: Graph, node: Node) -> bool:
    """BatchNormalization (inference) of a Conv with constant weights, read by nothing else -> one Conv:
    w' = w * s, b' = (b - mean) * s + beta per output channel, s = scale / sqrt(var + epsilon)."""
    conv = producer(node.inputs[0], "Conv") if node.op == "BatchNormalization" else None
    if conv is None or len(node.outputs) != 1 or node.attr("training_mode") \
            or use_count(graph, conv.outputs[0]) != 1:
        return False
    w, b = known_array(conv.inputs[1]), known_array(conv.input(2))
    params = [known_array(v) for v in node.inputs[1:]]
    if w is None or (conv.input(2) is not None and b is None) or any(p is None for p in params):
        return False
    scale, beta, mean, var = (p.astype(np.float64) for p in params)
    s = scale / np.sqrt(var + node.attr("epsilon"))
    shift = (0 if b is None else b.astype(np.float64)) - mean
    per_channel = s.reshape((-1,) + (1,) * (w.ndim - 1))
    weight = emit_const(graph, (w * per_channel).astype(w.dtype), f"{conv.inputs[1].name}_bn")
    bias = emit_const(graph, (shift * s + beta).astype(w.dtype), f"{node.outputs[0].name}_bias")
    replace_node(graph, node, "Conv", [conv.inputs[0], weight, bias], conv.attrs).name = conv.name
    return True


SIMPLIFY_RULES = [remove_identity, remove_dropout, remove_same_type_cast, merge_reshapes, remove_noop_reshape,
                  reshape_before_matmul, merge_transposes, drop_neutral_window_attrs]
RULES = SIMPLIFY_RULES + [gemm_to_matmul, fold_batch_norm] + RECOMPOSE_RULES


@graph_pass("canonicalize", "Remove no-ops, merge reshapes and transposes, Gemm -> MatMul, "
                            "BatchNorm folded into Conv, decomposed LayerNorm and GELU -> one op.")
def canonicalize(graph: Graph) -> Graph:
    return apply_rules(graph, RULES)
