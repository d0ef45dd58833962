"""Rules that recognise the decomposed LayerNorm and GELU exporters emit and put the one op back.

Exporters spell these ops as chains of elementwise ops and reductions, in
several orders. The rules match each step with the exact constants it needs
(exponent 2, one half, 1, sqrt(2), the tanh approximation's coefficients), so a
chain that only looks like LayerNorm or GELU stays as it is.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..graph import Graph, Node, Value
from ..infer import known_array, known_ints
from ..types import same_dim
from .rewrite import emit_const, is_scalar, operand_orders, producer, replace_node, scalar

# Irrational constants are accepted within this many units in the last place of their
# rounding, as exporters compute them in different precisions.
ULPS = 1


# -- LayerNorm --------------------------------------------------------------------

def layer_norm(graph: Graph, node: Node) -> bool:
    """(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps), means over the trailing axes,
    -> LayerNormalization(x, ones); the scale and bias rules then take gamma and beta in."""
    if node.op != "Div":
        return False
    sub, sqrt = producer(node.inputs[0], "Sub"), producer(node.inputs[1], "Sqrt")
    add = producer(sqrt.inputs[0], "Add") if sqrt else None
    if sub is None or add is None or node.outputs[0].type != sub.inputs[0].type:
        return False
    x, centered = sub.inputs[0], sub.outputs[0]
    k = _trailing_mean(sub.inputs[1], x)
    if not k or not all(isinstance(d, int) for d in x.type.shape[-k:]):
        return False                  # (the scale of ones needs a static shape)
    for var, eps in operand_orders(add):
        reduce = producer(var, "ReduceMean")
        if scalar(eps) is None or reduce is None or not _is_square(reduce.inputs[0], centered) \
                or _trailing_mean(var, reduce.inputs[0]) != k:
            continue
        ones = emit_const(graph, np.ones(x.type.shape[-k:], x.type.dtype.np), f"{node.outputs[0].name}_scale")
        stash_type = 11 if x.type.dtype.name == "f64" else 1     # f64 stays f64, as the chain computed it
        attrs = {"axis": -k, "epsilon": float(scalar(eps)), "stash_type": stash_type}
        replace_node(graph, node, "LayerNormalization", [x, ones], attrs)
        return True
    return False


def _trailing_mean(mean: Value | None, x: Value | None) -> int | None:
    """k when `mean` is ReduceMean(x) over x's last k axes, dims kept; else None."""
    rm = producer(mean, "ReduceMean")
    if rm is None or x is None or rm.inputs[0] is not x or x.type.rank is None or not rm.attr("keepdims"):
        return None
    rank = x.type.rank
    axes = known_ints(rm.input(1)) if rm.input(1) is not None else ()
    if axes is None or not all(isinstance(a, int) and -rank <= a < rank for a in axes):
        return None
    if not axes:                      # no axes: all of them, unless told to do nothing
        return None if rm.attr("noop_with_empty_axes") else rank
    k = len(axes)
    return k if sorted(a % rank for a in axes) == list(range(rank - k, rank)) else None


def _is_square(v: Value | None, of: Value) -> bool:
    """v = of * of, as Pow(of, 2) or Mul(of, of)."""
    pow_, mul = producer(v, "Pow"), producer(v, "Mul")
    return pow_ is not None and pow_.inputs[0] is of and is_scalar(pow_.inputs[1], 2) \
        or mul is not None and mul.inputs[0] is of and mul.inputs[1] is of


def layer_norm_scale(graph: Graph, node: Node) -> bool:
    """LayerNormalization(x, ones) * gamma -> LayerNormalization(x, gamma)."""
    if node.op != "Mul":
        return False
    for normed, gamma in operand_orders(node):
        ln = producer(normed, "LayerNormalization")
        if ln is not None and len(ln.inputs) == 2 and _is_ones(ln.inputs[1]) and _fits(gamma, ln.inputs[1]):
            replace_node(graph, node, "LayerNormalization", [ln.inputs[0], gamma], ln.attrs)
            return True
    return False


def layer_norm_bias(graph: Graph, node: Node) -> bool:
    """LayerNormalization(x, gamma) + beta -> LayerNormalization(x, gamma, beta)."""
    if node.op != "Add":
        return False
    for normed, beta in operand_orders(node):
        ln = producer(normed, "LayerNormalization")
        if ln is not None and len(ln.inputs) == 2 and _fits(beta, ln.inputs[1]):
            replace_node(graph, node, "LayerNormalization", ln.inputs + [beta], ln.attrs)
            return True
    return False


def _is_ones(v: Value) -> bool:
    a = known_array(v)
    return a is not None and bool(np.all(a == 1))


def _fits(v: Value, scale: Value) -> bool:
    """True when `v` has the normalized shape and dtype of a LayerNormalization's scale."""
    s, t = v.type, scale.type
    return s.dtype == t.dtype and s.shape is not None and len(s.shape) == len(t.shape) \
        and all(same_dim(a, b) for a, b in zip(s.shape, t.shape))


# -- GELU --------------------------------------------------------------------------

def gelu(graph: Graph, node: Node) -> bool:
    """x * 0.5 * (1 + erf(x / sqrt(2))) -> Gelu(x), and
    x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) -> Gelu[approximate="tanh"](x),
    the three factors multiplied in any order."""
    if node.op != "Mul":
        return False
    for half, h, x in _three_factors(node):
        approximate = _gelu_kind(h, x) if is_scalar(half, 0.5) else None
        if approximate is not None and x.type.dtype.is_float and node.outputs[0].type == x.type:
            replace_node(graph, node, "Gelu", [x], {"approximate": approximate})
            return True
    return False


def _three_factors(node: Node):
    """Each ordering of (a, b, c) where `node` is a * b * c, grouped either way."""
    for inner, other in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
        mul = producer(inner, "Mul")
        if mul is not None:
            yield from itertools.permutations(mul.inputs + [other])


def _gelu_kind(h: Value, x: Value) -> str | None:
    """"none" when h = 1 + erf(x / sqrt(2)), "tanh" when h = 1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))."""
    add = producer(h, "Add")
    for t, one in operand_orders(add) if add else ():
        if not is_scalar(one, 1):
            continue
        erf, tanh = producer(t, "Erf"), producer(t, "Tanh")
        if erf is not None and _is_scaled(erf.inputs[0], x, 1 / math.sqrt(2)):
            return "none"
        if tanh is not None and _is_tanh_argument(tanh.inputs[0], x):
            return "tanh"
    return None


def _is_scaled(v: Value, x: Value, factor: float) -> bool:
    """v = x * factor, written as a Mul by factor or a Div by 1 / factor."""
    div = producer(v, "Div")
    if div is not None:
        return div.inputs[0] is x and is_scalar(div.inputs[1], 1 / factor, ULPS)
    mul = producer(v, "Mul")
    return mul is not None and any(a is x and is_scalar(c, factor, ULPS) for a, c in operand_orders(mul))


def _is_tanh_argument(v: Value, x: Value) -> bool:
    """v = sqrt(2/pi) * (x + 0.044715 * x^3)."""
    mul = producer(v, "Mul")
    for inner, c in operand_orders(mul) if mul else ():
        add = producer(inner, "Add")
        if add is not None and is_scalar(c, math.sqrt(2 / math.pi), ULPS) \
                and any(a is x and _is_cubic_term(t, x) for a, t in operand_orders(add)):
            return True
    return False


def _is_cubic_term(v: Value, x: Value) -> bool:
    """v = 0.044715 * x^3."""
    mul = producer(v, "Mul")
    return mul is not None and any(is_scalar(c, 0.044715, ULPS) and _is_cube(cube, x)
                                   for cube, c in operand_orders(mul))


def _is_cube(v: Value, x: Value) -> bool:
    """v = x^3: Pow(x, 3), or x * (x * x) grouped either way."""
    pow_ = producer(v, "Pow")
    if pow_ is not None:
        return pow_.inputs[0] is x and is_scalar(pow_.inputs[1], 3)
    mul = producer(v, "Mul")
    for a, b in operand_orders(mul) if mul else ():
        square = producer(b, "Mul")
        if a is x and square is not None and square.inputs[0] is x and square.inputs[1] is x:
            return True
    return False


RECOMPOSE_RULES = [layer_norm, layer_norm_scale, layer_norm_bias, gelu]
