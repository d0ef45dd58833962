"""Elementwise ops: unary math and activations, binary arithmetic, comparisons, logic, bitwise.

Most ops here are rows in tables; each row becomes one registry record. A row's
dtype class ("float", "int", "numeric", "bool" or None for any) is the ONNX type
constraint that shape inference checks. References compute low-precision floats
in f32 (`widen`) and cast the result back to the input's dtype.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import special

from flowc.errors import quote_name

from ..infer import known_ints
from ..registry import REQUIRED, defop
from ..sbp import B, P, broadcast_signatures, elementwise_signatures, linear_signatures, scaling_signatures
from ..types import dim_add, dim_div, dim_mul, dim_sub
from .rules import (broadcast_infer, broadcast_shapes, compare_infer, in_type, require_dtype, same_as_input,
                    same_dtypes, widen)


def _typed(cls, rule=same_as_input):
    """`rule`, after checking that every input has a dtype of class `cls`."""
    def infer(node):
        require_dtype(node, cls, range(len(node.inputs)))
        return rule(node)
    return infer


def _unary(name, summary, cls, attrs, fn, sbp=elementwise_signatures):
    defop(name, family="elementwise", summary=summary, inputs=("X",), attrs=attrs, infer=_typed(cls),
          ref=lambda n, x: np.asarray(fn(n, widen(x))).astype(x.dtype), sbp=sbp)


# name -> (summary, attrs, f(node, x) on a widened float array)
FLOAT_UNARY = {
    "Exp": ("e to the x.", {}, lambda n, x: np.exp(x)),
    "Log": ("Natural logarithm.", {}, lambda n, x: np.log(x)),
    "Sqrt": ("Square root.", {}, lambda n, x: np.sqrt(x)),
    "Reciprocal": ("1 / x.", {}, lambda n, x: 1 / x),
    "Sigmoid": ("1 / (1 + e^-x).", {}, lambda n, x: special.expit(x)),
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
    "Swish": ("x * sigmoid(alpha * x).", {"alpha": ("float", 1.0)},
              lambda n, x: x * special.expit(n.attr("alpha") * x)),
    "HardSwish": ("x * clip(x / 6 + 1/2, 0, 1).", {}, lambda n, x: x * np.clip(x / 6 + 0.5, 0, 1)),
    "HardSigmoid": ("clip(alpha * x + beta, 0, 1).", {"alpha": ("float", 0.2), "beta": ("float", 0.5)},
                    lambda n, x: np.clip(n.attr("alpha") * x + n.attr("beta"), 0, 1)),
    "LeakyRelu": ("x if x >= 0 else alpha * x.", {"alpha": ("float", 0.01)},
                  lambda n, x: np.where(x >= 0, x, n.attr("alpha") * x)),
    "Elu": ("x if x >= 0 else alpha * (e^x - 1).", {"alpha": ("float", 1.0)},
            lambda n, x: np.where(x >= 0, x, n.attr("alpha") * np.expm1(np.minimum(x, 0)))),
    "Celu": ("max(0, x) + min(0, alpha * (e^(x / alpha) - 1)).", {"alpha": ("float", 1.0)},
             lambda n, x: np.maximum(0, x) + n.attr("alpha") * np.expm1(np.minimum(0, x) / n.attr("alpha"))),
    "Selu": ("gamma * (x if x > 0 else alpha * (e^x - 1)).",
             {"alpha": ("float", 1.67326319217681884765625), "gamma": ("float", 1.05070102214813232421875)},
             lambda n, x: n.attr("gamma") * np.where(x > 0, x, n.attr("alpha") * np.expm1(np.minimum(x, 0)))),
    "ThresholdedRelu": ("x if x > alpha else 0.", {"alpha": ("float", 1.0)},
                        lambda n, x: np.where(x > n.attr("alpha"), x, 0)),
}

for _name, (_summary, _attrs, _fn) in FLOAT_UNARY.items():
    _unary(_name, _summary, "float", _attrs, _fn)

# name -> (summary, dtype class, attrs, f(node, x) on a widened array)
UNARY = {
    "Abs": ("Absolute value.", "numeric", {}, lambda n, x: np.abs(x)),
    "Neg": ("-x.", "numeric", {}, lambda n, x: np.negative(x)),
    "Sign": ("-1, 0 or 1.", "numeric", {}, lambda n, x: np.sign(x)),
    "Relu": ("max(x, 0).", "numeric", {}, lambda n, x: np.maximum(x, np.zeros((), x.dtype))),
    "Shrink": ("x + bias if x < -lambd, x - bias if x > lambd, else 0.", "numeric",
               {"bias": ("float", 0.0), "lambd": ("float", 0.5)},
               lambda n, x: np.where(x < -n.attr("lambd"), x + n.attr("bias"),
                                     np.where(x > n.attr("lambd"), x - n.attr("bias"), 0))),
    "Not": ("Logical not.", "bool", {}, lambda n, x: np.logical_not(x)),
    "BitwiseNot": ("Bitwise not.", "int", {}, lambda n, x: np.invert(x)),
}

for _name, (_summary, _cls, _attrs, _fn) in UNARY.items():
    _unary(_name, _summary, _cls, _attrs, _fn, linear_signatures if _name == "Neg" else elementwise_signatures)


def _gelu(n, x):
    if n.attr("approximate") == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + special.erf(x / np.sqrt(2)))


def _gelu_infer(node):
    if node.attr("approximate") not in ("none", "tanh"):
        raise node.error(f"attribute 'approximate' must be \"none\" or \"tanh\", got {node.attr('approximate')!r}")
    return _typed("float")(node)


defop("Gelu", family="elementwise", summary="Gaussian error linear unit, exact or tanh-approximated.",
      inputs=("X",), attrs={"approximate": ("str", "none")}, infer=_gelu_infer,
      ref=lambda n, x: _gelu(n, widen(x)).astype(x.dtype), sbp=elementwise_signatures)
defop("Identity", family="elementwise", summary="x, unchanged.", inputs=("X",), infer=same_as_input,
      ref=lambda n, x: x, sym=lambda n: [n.inputs[0].sym], storage=True, sbp=linear_signatures)


def _bool_out(node):
    require_dtype(node, "float")
    return [in_type(node, 0).with_dtype("bool")]


defop("IsNaN", family="elementwise", summary="True where x is NaN.", inputs=("X",), infer=_bool_out,
      ref=lambda n, x: np.isnan(widen(x)), sbp=elementwise_signatures)
defop("IsInf", family="elementwise", summary="True where x is infinite (of the signs asked for).",
      inputs=("X",), attrs={"detect_negative": ("int", 1), "detect_positive": ("int", 1)},
      infer=_bool_out, sbp=elementwise_signatures,
      ref=lambda n, x: (np.isposinf(widen(x)) & bool(n.attr("detect_positive")))
      | (np.isneginf(widen(x)) & bool(n.attr("detect_negative"))))


def _clip_infer(node):
    require_dtype(node, "numeric")
    same_dtypes(node)
    for v in node.inputs[1:]:
        if v is not None and isinstance(v.type.numel(), int) and v.type.numel() != 1:
            raise node.error(f"bound {quote_name(v.name)} must be a scalar, got {v.type}")
    return same_as_input(node)


def _clip(n, x, lo=None, hi=None):
    out = widen(x)
    if lo is not None:
        out = np.maximum(out, widen(lo).reshape(()))
    if hi is not None:   # applied last: where min > max, every element becomes max
        out = np.minimum(out, widen(hi).reshape(()))
    return np.asarray(out).astype(x.dtype)


defop("Clip", family="elementwise", summary="Clamp x to [min, max]; either bound may be omitted.",
      inputs=("X", "min?", "max?"), infer=_clip_infer, ref=_clip, sbp=elementwise_signatures)


# -- binary -------------------------------------------------------------------

def _int_div(a, b):
    """Integer division truncating toward zero, as C does."""
    q = np.floor_divide(a, b)
    fix = (np.mod(a, b) != 0) & ((a < 0) != (b < 0))
    return (q + fix).astype(np.result_type(a, b))


def _divide(a, b):
    return _int_div(a, b) if a.dtype.kind in "iu" else a / b


def _div_dim(a, b):
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b)
        return q if (a < 0) == (b < 0) else -q
    return dim_div(a, b)


def _binary_ref(fn):
    return lambda n, a, b: np.asarray(fn(widen(a), widen(b))).astype(a.dtype)


def _elementwise_sym(dim_fn):
    """Shape arithmetic on known contents, e.g. Mul of a symbolic dim by 4."""
    def sym(n):
        a, b = (known_ints(v) for v in n.inputs)
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


# name -> (summary, dtype class, f(a, b) on widened arrays, the rule on dims or None, commutative)
BINARY = {
    "Add": ("a + b, broadcast.", "numeric", np.add, dim_add, True),
    "Sub": ("a - b, broadcast.", "numeric", np.subtract, dim_sub, False),
    "Mul": ("a * b, broadcast.", "numeric", np.multiply, dim_mul, True),
    "Div": ("a / b, broadcast; integer division truncates toward zero.", "numeric", _divide, _div_dim, False),
    "BitwiseAnd": ("a & b, broadcast.", "int", np.bitwise_and, None, True),
    "BitwiseOr": ("a | b, broadcast.", "int", np.bitwise_or, None, True),
    "BitwiseXor": ("a ^ b, broadcast.", "int", np.bitwise_xor, None, True),
}

# how partial sums pass through: Add and Sub in both operands at once, Mul in either, Div in the numerator
_BINARY_SBP = {"Add": linear_signatures, "Sub": linear_signatures,
               "Mul": lambda n: scaling_signatures(n, (0, 1)), "Div": lambda n: scaling_signatures(n, (0,))}

for _name, (_summary, _cls, _fn, _dim_fn, _comm) in BINARY.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("A", "B"), outputs=("C",),
          infer=_typed(_cls, broadcast_infer), ref=_binary_ref(_fn),
          sym=_elementwise_sym(_dim_fn) if _dim_fn else None, commutative=_comm,
          sbp=_BINARY_SBP.get(_name, elementwise_signatures))


def _pow_infer(node):
    require_dtype(node, "numeric", (0, 1))
    shape = broadcast_shapes(node, [v.type.shape for v in node.inputs])
    return [in_type(node, 0).with_shape(shape)]


def _pow(n, a, b):
    # integer bases go through f64, as onnxruntime's std::pow does
    base = a.astype(np.float64) if a.dtype.kind in "iu" else widen(a)
    return np.asarray(np.power(base, widen(b))).astype(a.dtype)


defop("Pow", family="elementwise", summary="a ** b, broadcast; the result has a's dtype, b any numeric one.",
      inputs=("X", "Y"), outputs=("Z",), infer=_pow_infer, ref=_pow, sbp=elementwise_signatures)


defop("Mod", family="elementwise", summary="Remainder: sign of the divisor, or of the dividend with fmod=1.",
      inputs=("A", "B"), outputs=("C",), attrs={"fmod": ("int", 0)}, infer=_typed("numeric", broadcast_infer),
      ref=lambda n, a, b: _binary_ref(np.fmod if n.attr("fmod") else np.mod)(n, a, b), sbp=elementwise_signatures)


defop("PRelu", family="elementwise", summary="x if x >= 0 else slope * x, slope broadcast.",
      inputs=("X", "slope"), infer=_typed("numeric", broadcast_infer),
      ref=_binary_ref(lambda x, slope: np.where(x >= 0, x, x * slope)), sbp=elementwise_signatures)


def _bitshift_infer(node):
    if node.attr("direction") not in ("LEFT", "RIGHT"):
        raise node.error(f"attribute 'direction' must be \"LEFT\" or \"RIGHT\", got {node.attr('direction')!r}")
    return _typed("int", broadcast_infer)(node)


def _bitshift(n, a, b):
    """Shifts by a negative amount or by the bit width or more give 0 (-1 for negatives shifted right)."""
    a, b = np.broadcast_arrays(a, b)
    too_far = (b < 0) | (b >= 8 * a.dtype.itemsize)
    b = np.where(too_far, 0, b)
    if n.attr("direction") == "LEFT":   # in unsigned, so that signed overflow wraps
        u = np.dtype(f"u{a.dtype.itemsize}")
        return np.where(too_far, 0, np.left_shift(a.view(u), b.astype(u)).view(a.dtype)).astype(a.dtype)
    return np.where(too_far, np.where(a < 0, -1, 0), np.right_shift(a, b)).astype(a.dtype)


defop("BitShift", family="elementwise", summary="a << b or a >> b (arithmetic for signed a), broadcast.",
      inputs=("X", "Y"), outputs=("Z",), attrs={"direction": ("str", REQUIRED)}, infer=_bitshift_infer,
      ref=_bitshift, sbp=elementwise_signatures)


# name -> (summary, dtype class, f(list of widened arrays))
VARIADIC = {
    "Max": ("Elementwise maximum of all inputs, broadcast; NaN wins.", "numeric",
            lambda xs: functools.reduce(np.maximum, xs)),
    "Min": ("Elementwise minimum of all inputs, broadcast; NaN wins.", "numeric",
            lambda xs: functools.reduce(np.minimum, xs)),
    "Sum": ("Elementwise sum of all inputs, broadcast.", "numeric", lambda xs: functools.reduce(np.add, xs)),
    "Mean": ("Elementwise mean of all inputs, broadcast.", "float",
             lambda xs: functools.reduce(np.add, xs) / len(xs)),
}

for _name, (_summary, _cls, _fn) in VARIADIC.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("data+",), outputs=("Y",),
          infer=_typed(_cls, broadcast_infer), commutative=True,
          sbp=linear_signatures if _name in ("Sum", "Mean") else elementwise_signatures,
          ref=(lambda fn: lambda n, *xs: np.asarray(fn([widen(x) for x in xs])).astype(xs[0].dtype))(_fn))


# name -> (summary, dtype class, f(a, b))
COMPARE = {
    "Equal": ("a == b.", None, np.equal),
    "Less": ("a < b.", "numeric", np.less),
    "LessOrEqual": ("a <= b.", "numeric", np.less_equal),
    "Greater": ("a > b.", "numeric", np.greater),
    "GreaterOrEqual": ("a >= b.", "numeric", np.greater_equal),
    "And": ("Logical and.", "bool", np.logical_and),
    "Or": ("Logical or.", "bool", np.logical_or),
    "Xor": ("Logical xor.", "bool", np.logical_xor),
}

def _equal_dim(a, b):
    """1 or 0 when known: dims are never negative, so a symbol never equals -1."""
    if isinstance(a, int) and isinstance(b, int):
        return int(a == b)
    if a == b and a != "?":
        return 1
    if (isinstance(a, int) and a < 0 and b != "?") or (isinstance(b, int) and b < 0 and a != "?"):
        return 0
    return "?"


def _equal_sym(n):
    """Known truth values only: a bool tensor with an unknown entry has no known contents."""
    out = _elementwise_sym(_equal_dim)(n)[0]
    return [out if out is not None and "?" not in out else None]


for _name, (_summary, _cls, _fn) in COMPARE.items():
    defop(_name, family="elementwise", summary=_summary, inputs=("A", "B"), outputs=("C",),
          infer=_typed(_cls, compare_infer), ref=(lambda fn: lambda n, a, b: fn(widen(a), widen(b)))(_fn),
          sym=_equal_sym if _name == "Equal" else None, sbp=elementwise_signatures,
          commutative=_name in ("Equal", "And", "Or", "Xor"))


def _where_infer(node):
    c = in_type(node, 0)
    if c.dtype.name != "bool":
        raise node.error(f"condition must be bool, got {c}")
    same_dtypes(node, indices=(1, 2))
    shape = broadcast_shapes(node, [v.type.shape for v in node.inputs])
    return [in_type(node, 1).with_shape(shape)]


def _where_sym(n):
    c, x, y = (known_ints(v) for v in n.inputs)
    if c is None or x is None or y is None:
        return [None]
    size = max(len(c), len(x), len(y))
    c, x, y = (s * size if len(s) == 1 else s for s in (c, x, y))
    if not len(c) == len(x) == len(y) or not all(isinstance(k, int) for k in c):
        return [None]
    return [tuple(a if bool(k) else b for k, a, b in zip(c, x, y))]


defop("Where", family="elementwise", summary="x where the condition holds, else y, broadcast.",
      inputs=("condition", "X", "Y"), infer=_where_infer,
      ref=lambda n, c, x, y: np.where(c, x, y), sym=_where_sym,
      sbp=lambda n: broadcast_signatures(n, [(B, P, P)]))
