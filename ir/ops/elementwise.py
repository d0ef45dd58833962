"""Elementwise ops: unary math and activations, binary arithmetic, comparisons, logic.

Most ops here are rows in tables; each row becomes one registry record.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from ..registry import defop
from ..types import dim_add, dim_div, dim_mul, dim_sub
from .rules import (broadcast_infer, broadcast_shapes, compare_infer, in_type, require_float, same_as_input,
                    same_dtypes, widen)


def _float_unary(fn):
    """A float op computed in at least f32, the result in the input's dtype."""
    return lambda n, x: np.asarray(fn(n, widen(x))).astype(x.dtype)


def _float_infer(node):
    require_float(node)
    return same_as_input(node)


def _sigmoid(x):
    return special.expit(x)


def _gelu(n, x):
    if n.attr("approximate") == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + special.erf(x / np.sqrt(2)))


# name -> (summary, attrs, f(node, x) on a widened float array)
FLOAT_UNARY = {
    "Exp": ("e to the x.", {}, lambda n, x: np.exp(x)),
    "Log": ("Natural logarithm.", {}, lambda n, x: np.log(x)),
    "Sqrt": ("Square root.", {}, lambda n, x: np.sqrt(x)),
    "Reciprocal": ("1 / x.", {}, lambda n, x: 1 / x),
    "Sigmoid": ("1 / (1 + e^-x).", {}, lambda n, x: _sigmoid(x)),
    "Tanh": ("Hyperbolic tangent.", {}, lambda n, x: np.tanh(x)),
    "Erf": ("Gauss error function.", {}, lambda n, x: special.erf(x)),
    "Sin": ("Sine.", {}, lambda n, x: np.sin(x)),
    "Cos": ("Cosine.", {}, lambda n, x: np.cos(x)),
    "Tan": ("Tangent.", {}, lambda n, x: np.tan(x)),
    "Asin": ("Arcsine.", {}, lambda n, x: np.arcsin(x)),
    "Acos": ("Arccosine.", {}, lambda n, x: np.arccos(x)),
    "Atan": ("Arctangent.", {}, lambda n, x: np.arctan(x)),
    "Sinh": ("Hyperbolic sine.", {}, lambda n, x: np.sinh(x)),
    "Cosh": ("Hyperbolic cosine.", {}, lambda n, x: np.cosh(x)),
    "Asinh": ("Inverse hyperbolic sine.", {}, lambda n, x: np.arcsinh(x)),
    "Acosh": ("Inverse hyperbolic cosine.", {}, lambda n, x: np.arccosh(x)),
    "Atanh": ("Inverse hyperbolic tangent.", {}, lambda n, x: np.arctanh(x)),
    "Floor": ("Round down.", {}, lambda n, x: np.floor(x)),
    "Ceil": ("Round up.", {}, lambda n, x: np.ceil(x)),
    "Round": ("Round half to even.", {}, lambda n, x: np.round(x)),
    "Softplus": ("log(1 + e^x).", {}, lambda n, x: np.logaddexp(0, x)),
    "Softsign": ("x / (1 + |x|).", {}, lambda n, x: x / (1 + np.abs(x))),
    "Mish": ("x * tanh(softplus(x)).", {}, lambda n, x: x * np.tanh(np.logaddexp(0, x))),
    "HardSwish": ("x * clip(x / 6 + 1/2, 0, 1).", {}, lambda n, x: x * np.clip(x / 6 + 0.5, 0, 1)),
    "HardSigmoid": ("clip(alpha * x + beta, 0, 1).", {"alpha": ("float", 0.2), "beta": ("float", 0.5)},
                    lambda n, x: np.clip(n.attr("alpha") * x + n.attr("beta"), 0, 1)),
    "LeakyRelu": ("x if x >= 0 else alpha * x.", {"alpha": ("float", 0.01)},
                  lambda n, x: np.where(x >= 0, x, n.attr("alpha") * x)),
    "Elu": ("x if x >= 0 else alpha * (e^x - 1).", {"alpha": ("float", 1.0)},
            lambda n, x: np.where(x >= 0, x, n.attr("alpha") * np.expm1(x))),
    "Celu": ("max(0, x) + min(0, alpha * (e^(x / alpha) - 1)).", {"alpha": ("float", 1.0)},
             lambda n, x: np.maximum(0, x) + np.minimum(0, n.attr("alpha") * np.expm1(x / n.attr("alpha")))),
    "Selu": ("gamma * (x if x > 0 else alpha * (e^x - 1)).",
             {"alpha": ("float", 1.67326319217681884765625), "gamma": ("float", 1.05070102214813232421875)},
             lambda n, x: n.attr("gamma") * np.where(x > 0, x, n.attr("alpha") * np.expm1(x))),
    "ThresholdedRelu": ("x if x > alpha else 0.", {"alpha": ("float", 1.0)},
                        lambda n, x: np.where(x > n.attr("alpha"), x, 0)),
    "Gelu": ("Gaussian error linear unit, exact or tanh-approximated.", {"approximate": ("str", "none")},
             _gelu),
}

for _name, (_summary, _attrs, _fn) in FLOAT_UNARY.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("X",), attrs=_attrs,
          infer=_float_infer, ref=_float_unary(_fn))

# name -> (summary, f(x)) for ops on any numeric dtype, computed in the input's dtype
NUMERIC_UNARY = {
    "Abs": ("Absolute value.", np.abs),
    "Neg": ("-x.", np.negative),
    "Sign": ("-1, 0 or 1.", np.sign),
    "Relu": ("max(x, 0).", lambda x: np.maximum(x, np.zeros((), x.dtype))),
    "Identity": ("x, unchanged.", lambda x: x),
}

for _name, (_summary, _fn) in NUMERIC_UNARY.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("X",), infer=same_as_input,
          ref=(lambda fn: lambda n, x: np.asarray(fn(x)).astype(x.dtype))(_fn),
          sym=(lambda n: [n.inputs[0].sym]) if _name == "Identity" else None)


def _bool_out(node):
    return [in_type(node, 0).with_dtype("bool")]


defop("Not", family="elementwise", summary="Logical not.", inputs=("X",), infer=same_as_input,
      ref=lambda n, x: np.logical_not(x))
defop("IsNaN", family="elementwise", summary="True where x is NaN.", inputs=("X",), infer=_bool_out,
      ref=lambda n, x: np.isnan(widen(x)))
defop("IsInf", family="elementwise", summary="True where x is infinite (of the signs asked for).",
      inputs=("X",), attrs={"detect_negative": ("int", 1), "detect_positive": ("int", 1)},
      infer=_bool_out,
      ref=lambda n, x: (np.isposinf(widen(x)) & bool(n.attr("detect_positive")))
      | (np.isneginf(widen(x)) & bool(n.attr("detect_negative"))))


def _clip_ref(n, x, lo=None, hi=None):
    out = x
    if lo is not None:
        out = np.maximum(out, lo.astype(x.dtype))
    if hi is not None:
        out = np.minimum(out, hi.astype(x.dtype))
    return out.astype(x.dtype)


defop("Clip", family="elementwise", summary="Clamp x to [min, max]; either bound may be omitted.",
      inputs=("X", "min?", "max?"), infer=same_as_input, ref=_clip_ref)


# -- binary -------------------------------------------------------------------

def _int_div(a, b):
    """Integer division truncating toward zero, as C does."""
    q = np.floor_divide(a, b)
    fix = (np.mod(a, b) != 0) & ((a < 0) != (b < 0))
    return (q + fix).astype(np.result_type(a, b))


def _div(n, a, b):
    if a.dtype.kind in "iu":
        return _int_div(a, b)
    return (widen(a) / widen(b)).astype(a.dtype)


def _arith(fn):
    def ref(n, a, b):
        if a.dtype.kind == "f":
            return np.asarray(fn(widen(a), widen(b))).astype(a.dtype)
        return np.asarray(fn(a, b)).astype(a.dtype)
    return ref


def _elementwise_sym(dim_fn):
    """Shape arithmetic on known contents, e.g. Mul of a symbolic dim by 4."""
    def sym(n):
        a, b = (v.sym if v.sym is not None else _const_ints(v) for v in n.inputs)
        if a is None or b is None:
            return [None]
        if len(a) == 1:
            a = a * len(b)
        if len(b) == 1:
            b = b * len(a)
        if len(a) != len(b):
            return [None]
        return [tuple(dim_fn(x, y) for x, y in zip(a, b))]
    return sym


def _const_ints(v):
    from ..infer import known_ints
    return known_ints(v)


def _floordiv_dim(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return _int_div(np.int64(a), np.int64(b)).item()
    return dim_div(a, b)


BINARY = {
    "Add": ("a + b with numpy broadcasting.", _arith(np.add), dim_add, True),
    "Sub": ("a - b with numpy broadcasting.", _arith(np.subtract), dim_sub, False),
    "Mul": ("a * b with numpy broadcasting.", _arith(np.multiply), dim_mul, True),
    "Div": ("a / b; integer division truncates toward zero.", _div, _floordiv_dim, False),
}

for _name, (_summary, _ref, _dim_fn, _comm) in BINARY.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("A", "B"), outputs=("C",),
          infer=broadcast_infer, ref=_ref, sym=_elementwise_sym(_dim_fn), commutative=_comm)


def _pow_infer(node):
    shape = broadcast_shapes(node, [v.type.shape for v in node.inputs])
    return [in_type(node, 0).with_shape(shape)]


def _pow(n, a, b):
    if a.dtype.kind == "f":
        return np.power(widen(a), widen(b).astype(np.float64) if b.dtype.kind != "f" else widen(b)).astype(a.dtype)
    return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)


defop("Pow", family="elementwise", summary="a ** b; the result has a's dtype.", inputs=("X", "Y"),
      outputs=("Z",), infer=_pow_infer, ref=_pow)


def _mod(n, a, b):
    if n.attr("fmod"):
        return np.fmod(a, b).astype(a.dtype)
    if a.dtype.kind == "f":
        return np.mod(widen(a), widen(b)).astype(a.dtype)
    return np.mod(a, b)


defop("Mod", family="elementwise", summary="Remainder: sign of the divisor, or of the dividend with fmod=1.",
      inputs=("A", "B"), outputs=("C",), attrs={"fmod": ("int", 0)}, infer=broadcast_infer, ref=_mod)


def _prelu(n, x, slope):
    return np.where(x >= 0, x, widen(x) * widen(slope)).astype(x.dtype)


defop("PRelu", family="elementwise", summary="x if x >= 0 else slope * x, slope broadcast.",
      inputs=("X", "slope"), infer=broadcast_infer, ref=_prelu)


def _variadic(fn):
    def ref(n, *xs):
        out = widen(xs[0]) if xs[0].dtype.kind == "f" else xs[0]
        for x in xs[1:]:
            out = fn(out, widen(x) if x.dtype.kind == "f" else x)
        return np.asarray(out).astype(xs[0].dtype)
    return ref


def _mean(n, *xs):
    return (_variadic(np.add)(n, *(widen(x) for x in xs)) / len(xs)).astype(xs[0].dtype)


VARIADIC = {
    "Max": ("Elementwise maximum of all inputs, broadcast.", _variadic(np.maximum)),
    "Min": ("Elementwise minimum of all inputs, broadcast.", _variadic(np.minimum)),
    "Sum": ("Elementwise sum of all inputs, broadcast.", _variadic(np.add)),
    "Mean": ("Elementwise mean of all inputs, broadcast.", _mean),
}

for _name, (_summary, _ref) in VARIADIC.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("data*",), outputs=("Y",),
          infer=broadcast_infer, ref=_ref, commutative=True)


COMPARE = {
    "Equal": ("a == b.", np.equal),
    "Less": ("a < b.", np.less),
    "LessOrEqual": ("a <= b.", np.less_equal),
    "Greater": ("a > b.", np.greater),
    "GreaterOrEqual": ("a >= b.", np.greater_equal),
    "And": ("Logical and.", np.logical_and),
    "Or": ("Logical or.", np.logical_or),
    "Xor": ("Logical xor.", np.logical_xor),
}

for _name, (_summary, _fn) in COMPARE.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("A", "B"), outputs=("C",),
          infer=compare_infer, ref=(lambda fn: lambda n, a, b: fn(a, b))(_fn),
          commutative=_name in ("Equal", "And", "Or", "Xor"))


def _where_infer(node):
    c = in_type(node, 0)
    if c.dtype.name != "bool":
        raise node.error(f"condition must be bool, got {c}")
    same_dtypes(node, indices=(1, 2))
    shape = broadcast_shapes(node, [v.type.shape for v in node.inputs])
    return [in_type(node, 1).with_shape(shape)]


def _where_sym(n):
    c, x, y = (_const_ints(v) for v in n.inputs)
    if c is None or x is None or y is None:
        return [None]
    size = max(len(c), len(x), len(y))
    c, x, y = (s * size if len(s) == 1 else s for s in (c, x, y))
    if not len(c) == len(x) == len(y):
        return [None]
    return [tuple(a if bool(k) else b for k, a, b in zip(c, x, y))]


defop("Where", family="elementwise", summary="x where the condition holds, else y, broadcast.",
      inputs=("condition", "X", "Y"), infer=_where_infer,
      ref=lambda n, c, x, y: np.where(c, x, y), sym=_where_sym)
