"""Elementwise ops: inferred types (symbolic dims included), values against numpy written
independently in f64, and the exact message of each error."""
import numpy as np
import pytest
from scipy import special

from flowc import ir
from flowc.ir import tensor_type
from single_op import Const, one_node, run, error_of

TOLERANCE = {"float32": (1e-5, 1e-6), "float16": (2e-3, 2e-3)}


def assert_close(got, want, dt):
    assert got.dtype == np.dtype(dt) and got.shape == np.shape(want)
    rtol, atol = TOLERANCE[np.dtype(dt).name]
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol, equal_nan=True)


rng = np.random.default_rng(0)

# name -> (attrs, the op in f64, low, high of the inputs)
FLOAT_UNARY = {
    "Exp": ({}, np.exp, -3, 3),
    "Log": ({}, np.log, 0.1, 5),
    "Sqrt": ({}, np.sqrt, 0, 5),
    "Reciprocal": ({}, lambda x: 1 / x, 0.5, 4),
    "Sigmoid": ({}, lambda x: 1 / (1 + np.exp(-x)), -6, 6),
    "Tanh": ({}, np.tanh, -3, 3),
    "Erf": ({}, special.erf, -2, 2),
    "Sin": ({}, np.sin, -3, 3),
    "Cos": ({}, np.cos, -3, 3),
    "Tan": ({}, np.tan, -1.2, 1.2),
    "Asin": ({}, np.arcsin, -0.9, 0.9),
    "Acos": ({}, np.arccos, -0.9, 0.9),
    "Atan": ({}, np.arctan, -3, 3),
    "Sinh": ({}, np.sinh, -3, 3),
    "Cosh": ({}, np.cosh, -3, 3),
    "Asinh": ({}, np.arcsinh, -3, 3),
    "Acosh": ({}, np.arccosh, 1, 4),
    "Atanh": ({}, np.arctanh, -0.9, 0.9),
    "Floor": ({}, np.floor, -3, 3),
    "Ceil": ({}, np.ceil, -3, 3),
    "Softplus": ({}, lambda x: np.log(1 + np.exp(x)), -5, 5),
    "Softsign": ({}, lambda x: x / (1 + abs(x)), -5, 5),
    "Mish": ({}, lambda x: x * np.tanh(np.log(1 + np.exp(x))), -5, 5),
    "Swish": ({"alpha": 1.5}, lambda x: x / (1 + np.exp(-1.5 * x)), -5, 5),
    "HardSwish": ({}, lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6, -5, 5),
    "HardSigmoid": ({"alpha": 0.3, "beta": 0.4}, lambda x: np.minimum(np.maximum(0.3 * x + 0.4, 0), 1), -5, 5),
    "LeakyRelu": ({"alpha": 0.1}, lambda x: np.where(x < 0, 0.1 * x, x), -5, 5),
    "Elu": ({"alpha": 0.5}, lambda x: np.where(x < 0, 0.5 * (np.exp(x) - 1), x), -5, 5),
    "Celu": ({"alpha": 2.0}, lambda x: np.where(x < 0, 2 * (np.exp(x / 2) - 1), x), -5, 5),
    "Selu": ({}, lambda x: 1.0507009873554805 * np.where(x <= 0, 1.6732632423543772 * (np.exp(x) - 1), x), -5, 5),
    "ThresholdedRelu": ({"alpha": 0.5}, lambda x: np.where(x > 0.5, x, 0), -5, 5),
    "Gelu": ({}, lambda x: x * (1 + special.erf(x / np.sqrt(2))) / 2, -5, 5),
    "Shrink": ({"bias": 0.5, "lambd": 1.0}, lambda x: np.where(x < -1, x + 0.5, np.where(x > 1, x - 0.5, 0)), -3, 3),
}


@pytest.mark.parametrize("dt", ["float32", "float16"])
@pytest.mark.parametrize("op", FLOAT_UNARY)
def test_float_unary(op, dt):
    attrs, f, lo, hi = FLOAT_UNARY[op]
    x = rng.uniform(lo, hi, (3, 7)).astype(dt)
    assert_close(run(op, x, attrs=attrs), f(x.astype(np.float64)), dt)


def test_gelu_tanh():
    x = rng.uniform(-4, 4, (5,)).astype(np.float32)
    w = x.astype(np.float64)
    want = w / 2 * (1 + np.tanh(np.sqrt(2 / np.pi) * (w + 0.044715 * w ** 3)))
    assert_close(run("Gelu", x, attrs={"approximate": "tanh"}), want, "float32")


def test_round_is_half_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4], np.float16)
    np.testing.assert_array_equal(run("Round", x), np.array([-2, -2, -0, 0, 2, 2, 2], np.float16))


def test_integer_unary_ops_stay_integer():
    x = np.array([-3, 0, 5], np.int32)
    np.testing.assert_array_equal(run("Abs", x), [3, 0, 5])
    np.testing.assert_array_equal(run("Neg", x), [3, 0, -5])
    np.testing.assert_array_equal(run("Sign", x), [-1, 0, 1])
    np.testing.assert_array_equal(run("Relu", x), [0, 0, 5])
    np.testing.assert_array_equal(run("BitwiseNot", np.array([0, 5], np.uint8)), [255, 250])


def test_int_division_truncates_toward_zero():
    a = np.array([-7, 7, -7, 7, 6], np.int64)
    b = np.array([2, -2, -2, 2, 3], np.int64)
    np.testing.assert_array_equal(run("Div", a, b), [-3, -3, 3, 3, 2])


def test_float16_division_is_rounded_once():
    a, b = np.array([1, 2], np.float16), np.array([3, 3], np.float16)
    np.testing.assert_array_equal(run("Div", a, b), (a.astype(np.float32) / 3).astype(np.float16))


def test_mod_signs():
    a = np.array([-7, 7, -7, 7], np.int32)
    b = np.array([2, -2, -2, 2], np.int32)
    np.testing.assert_array_equal(run("Mod", a, b), [1, -1, -1, 1])                    # the divisor's sign
    np.testing.assert_array_equal(run("Mod", a, b, attrs={"fmod": 1}), [-1, 1, -1, 1])  # the dividend's
    x = np.array([-7.5, 7.5], np.float32)
    assert_close(run("Mod", x, np.array([2, -2], np.float32)), np.array([0.5, -0.5]), "float32")
    assert_close(run("Mod", x, np.array([2, -2], np.float32), attrs={"fmod": 1}), np.array([-1.5, 1.5]),
                 "float32")


def test_pow_keeps_the_base_dtype():
    x = np.array([1.5, 2, 3], np.float32)
    assert_close(run("Pow", x, np.array([2, 3, -1], np.int64)), np.array([2.25, 8, 1 / 3]), "float32")
    assert_close(run("Pow", x.astype(np.float16), np.array([0.5], np.float32)), np.sqrt([1.5, 2, 3]), "float16")
    np.testing.assert_array_equal(run("Pow", np.array([2, 3, 4], np.int32), np.array([2.5, 2, 0.5], np.float32)),
                                  np.array([5, 9, 2], np.int32))   # through f64, truncated: 2^2.5 = 5.66


def test_clip_integers_and_omitted_bounds():
    x = np.array([-5, 0, 5, 10], np.int64)
    np.testing.assert_array_equal(run("Clip", x, Const(np.int64(-1)), Const(np.int64(6))), [-1, 0, 5, 6])
    np.testing.assert_array_equal(run("Clip", x, None, Const(np.int64(6))), [-5, 0, 5, 6])
    np.testing.assert_array_equal(run("Clip", x, Const(np.int64(3)), Const(np.int64(1))), [1, 1, 1, 1])


def test_clip_of_a_scalar_by_one_element_bounds_stays_0d():
    got = run("Clip", np.array(7.0, np.float32), Const(np.array([0], np.float32)), Const(np.array([6], np.float32)))
    assert got.shape == () and got == 6


def test_max_min_propagate_nan_and_broadcast():
    a = np.array([[1, np.nan, 3]], np.float32)
    b = np.array([[2], [0]], np.float32)
    c = np.float32(2.5) * np.ones((1, 1), np.float32)
    assert_close(run("Max", a, b, c), np.array([[2.5, np.nan, 3], [2.5, np.nan, 3]]), "float32")
    assert_close(run("Min", a, b), np.array([[1, np.nan, 2], [0, np.nan, 0]]), "float32")


def test_sum_and_mean():
    xs = [rng.standard_normal((2, 3)).astype(np.float16) for _ in range(3)]
    wide = [x.astype(np.float64) for x in xs]
    assert_close(run("Sum", *xs), sum(wide), "float16")
    assert_close(run("Mean", *xs), sum(wide) / 3, "float16")
    np.testing.assert_array_equal(run("Sum", np.array([100], np.int8), np.array([100], np.int8)), [-56])  # wraps


def test_0d_operands_give_0d_results():
    a, b = np.array(3.0, np.float32), np.array(4.0, np.float32)
    g, node = one_node("Add", [a, b])
    assert str(node.outputs[0].type) == "f32[]"
    for op in ("Add", "Mul", "Div", "Pow", "Max", "Less", "Mod"):
        assert run(op, a, b).shape == ()
    assert run("Exp", a).shape == ()


def test_logic_and_comparisons():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    np.testing.assert_array_equal(run("And", a, b), a & b)
    np.testing.assert_array_equal(run("Or", a, b), a | b)
    np.testing.assert_array_equal(run("Xor", a, b), a ^ b)
    np.testing.assert_array_equal(run("Not", a), ~a)
    np.testing.assert_array_equal(run("Equal", a, b), a == b)
    x, y = np.array([1, 2, 3], np.float16), np.array([2, 2, 2], np.float16)
    for op, want in (("Less", x < y), ("LessOrEqual", x <= y), ("Greater", x > y), ("GreaterOrEqual", x >= y)):
        got = run(op, x, y)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)


def test_nan_and_inf_predicates():
    x = np.array([np.nan, np.inf, -np.inf, 1], np.float16)
    np.testing.assert_array_equal(run("IsNaN", x), [True, False, False, False])
    np.testing.assert_array_equal(run("IsInf", x), [False, True, True, False])
    np.testing.assert_array_equal(run("IsInf", x, attrs={"detect_positive": 0}), [False, False, True, False])


def test_bitwise():
    a = np.array([0b1100, -1], np.int32)
    b = np.array([0b1010, 7], np.int32)
    np.testing.assert_array_equal(run("BitwiseAnd", a, b), a & b)
    np.testing.assert_array_equal(run("BitwiseOr", a, b), a | b)
    np.testing.assert_array_equal(run("BitwiseXor", a, b), a ^ b)


def test_bitshift_edges():
    x = np.array([1, -8, 64, -1, 3], np.int8)
    s = np.array([1, 1, 1, 8, -1], np.int8)
    np.testing.assert_array_equal(run("BitShift", x, s, attrs={"direction": "LEFT"}), [2, -16, -128, 0, 0])
    np.testing.assert_array_equal(run("BitShift", x, s, attrs={"direction": "RIGHT"}), [0, -4, 32, -1, 0])
    u = np.array([255, 16], np.uint8)
    np.testing.assert_array_equal(run("BitShift", u, np.array([9, 2], np.uint8), attrs={"direction": "RIGHT"}),
                                  [0, 4])


def test_wider_integers_wrap_like_c():
    big = np.array([0, 2 ** 64 - 1], np.uint64)
    np.testing.assert_array_equal(run("Sub", big, np.array([1, 0], np.uint64)), [2 ** 64 - 1, 2 ** 64 - 1])
    np.testing.assert_array_equal(run("Add", big, np.array([5, 1], np.uint64)), [5, 0])
    np.testing.assert_array_equal(run("Div", np.array([7, 4000000000], np.uint32), np.array([2, 3], np.uint32)),
                                  np.array([3, 1333333333], np.uint32))
    np.testing.assert_array_equal(run("Mul", np.array([300, -2], np.int16), np.array([300, 3], np.int16)),
                                  np.array([90000 - 65536, -6], np.int16))
    np.testing.assert_array_equal(run("BitShift", np.array([1, 0x8000], np.uint16), np.array([15, 15], np.uint16),
                                      attrs={"direction": "LEFT"}), np.array([0x8000, 0], np.uint16))
    np.testing.assert_array_equal(run("BitwiseNot", np.array([0, 5], np.uint16)), np.array([65535, 65530], np.uint16))


def test_prelu_and_where():
    x = rng.standard_normal((2, 3)).astype(np.float32)
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    assert_close(run("PRelu", x, slope), np.where(x < 0, x * slope.astype(np.float64), x), "float32")
    c = np.array([True, False, True])
    np.testing.assert_array_equal(run("Where", c, x, np.zeros((1, 1), np.float32)), np.where(c, x, 0))


SYMBOLIC = [
    ("Add", [["B", 1], [1, 5]], "f32[B,5]"),
    ("Mul", [["B", "S", 4], [4]], "f32[B,S,4]"),
    ("Max", [["B", 1], [3, 1], [1, 1, 7]], "f32[1,3,7]"),   # B must be 3 or 1
    ("Less", [["N"], ["N"]], "bool[N]"),
    ("Sigmoid", [["B", "?"]], "f32[B,?]"),
]


@pytest.mark.parametrize("op,shapes,want", SYMBOLIC)
def test_symbolic_types(op, shapes, want):
    _, node = one_node(op, [tensor_type("f32", s) for s in shapes])
    assert str(node.outputs[0].type) == want


def test_shape_arithmetic_of_constants_is_known():
    g = ir.Graph("t")
    a = g.add_const(np.array([-7, 12], np.int64))
    b = g.add_const(np.array([2], np.int64))
    assert g.add_node("Div", [a, b]).outputs[0].sym == (-3, 6)
    assert g.add_node("Mul", [a, b]).outputs[0].sym == (-14, 24)


ERRORS = [
    ("Exp", [tensor_type("i64", [2])], None, 'Exp node "n": input "x0" must be a float tensor, got i64[2]'),
    ("Add", [tensor_type("f32", [2]), tensor_type("f16", [2])], None,
     'Add node "n": inputs must share one dtype, got "x0": f32, "x1": f16'),
    ("Add", [tensor_type("bool", [2]), tensor_type("bool", [2])], None,
     'Add node "n": input "x0" must be a numeric tensor, got bool[2]'),
    ("Mul", [tensor_type("f32", ["B", 3]), tensor_type("f32", [4])], None,
     'Mul node "n": input shapes [B,3] and [4] do not broadcast'),
    ("And", [tensor_type("f32", [2]), tensor_type("f32", [2])], None,
     'And node "n": input "x0" must be a bool tensor, got f32[2]'),
    ("Not", [tensor_type("i32", [2])], None, 'Not node "n": input "x0" must be a bool tensor, got i32[2]'),
    ("BitwiseAnd", [tensor_type("f32", [2]), tensor_type("f32", [2])], None,
     'BitwiseAnd node "n": input "x0" must be an integer tensor, got f32[2]'),
    ("Mean", [tensor_type("i64", [2])], None, 'Mean node "n": input "x0" must be a float tensor, got i64[2]'),
    ("IsNaN", [tensor_type("i64", [2])], None, 'IsNaN node "n": input "x0" must be a float tensor, got i64[2]'),
    ("Clip", [tensor_type("f32", [2]), tensor_type("f32", [2])], None,
     'Clip node "n": bound "x1" must be a scalar, got f32[2]'),
    ("Clip", [tensor_type("f32", [2]), tensor_type("i64", [])], None,
     'Clip node "n": inputs must share one dtype, got "x0": f32, "x1": i64'),
    ("Gelu", [tensor_type("f32", [2])], {"approximate": "erf"},
     'Gelu node "n": attribute \'approximate\' must be "none" or "tanh", got \'erf\''),
    ("BitShift", [tensor_type("u8", [2]), tensor_type("u8", [2])], {"direction": "UP"},
     'BitShift node "n": attribute \'direction\' must be "LEFT" or "RIGHT", got \'UP\''),
    ("Where", [tensor_type("i64", [2]), tensor_type("f32", [2]), tensor_type("f32", [2])], None,
     'Where node "n": condition must be bool, got i64[2]'),
    ("Add", [tensor_type("f8e4m3fn", [2]), tensor_type("f8e4m3fn", [2])], None,
     'Add node "n": input "x0" is f8e4m3fn[2]: Add does not take the storage-only type f8e4m3fn; '
     'Cast it to f32 first'),
    ("Equal", [tensor_type("i4", [2]), tensor_type("i4", [2])], None,
     'Equal node "n": input "x0" is i4[2]: Equal does not take the storage-only type i4; Cast it to i32 first'),
]


@pytest.mark.parametrize("op,inputs,attrs,message", ERRORS)
def test_errors(op, inputs, attrs, message):
    assert error_of(op, inputs, attrs) == message
