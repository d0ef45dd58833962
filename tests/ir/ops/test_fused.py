"""Fused ops: programs computing exactly what the unfused ops do, their types, and the exact
message of each error a malformed program raises."""
import numpy as np
import pytest

from flowc import ir
from flowc.ir import tensor_type
from single_op import Const, error_of, out_type, run

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def unfused(steps, inputs):
    """Outputs of a graph of one node per step (op, operand indices into inputs + results, attrs):
    what a fused program must reproduce bit for bit."""
    g = ir.Graph("u")
    values = [g.add_input(f"x{i}", tensor_type(a.dtype, a.shape)) for i, a in enumerate(inputs)]
    for op, operands, attrs in steps:
        values.append(g.add_node(op, [values[i] for i in operands], attrs=attrs).outputs[0])
    g.outputs = [values[-1]]
    return ir.run(g, {f"x{i}": a for i, a in enumerate(inputs)})[values[-1].name]


# -- FusedElementwise -------------------------------------------------------------------------

def test_program_computes_what_its_ops_compute():
    x, b, r = randn(4, 5), randn(5), randn(4, 5)
    program = "t0 = Add x0 x1; t1 = Gelu[approximate=\"tanh\"] t0; t2 = LeakyRelu[alpha=0.2] t1; y = Add t2 x2"
    want = unfused([("Add", [0, 1], {}), ("Gelu", [3], {"approximate": "tanh"}),
                    ("LeakyRelu", [4], {"alpha": 0.2}), ("Add", [5, 2], {})], [x, b, r])
    np.testing.assert_array_equal(run("FusedElementwise", x, b, r, attrs={"program": program}), want)


def test_instructions_split_at_newlines_and_semicolons_but_not_inside_strings():
    x = randn(3, 4)
    want = unfused([("Gelu", [0], {"approximate": "tanh"}), ("Neg", [1], {})], [x])
    for program in ('t = Gelu[approximate="tanh"] x0\ny = Neg t', 't = Gelu[approximate="tanh"] x0; y = Neg t;\n'):
        np.testing.assert_array_equal(run("FusedElementwise", x, attrs={"program": program}), want)


@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
def test_literals_take_the_dtype_of_the_other_operand(dt):
    x = randn(7, dtype=dt)
    got = run("FusedElementwise", x, attrs={"program": "t = Mul x0 0.1; y = Sub 1.0 t"})
    assert got.dtype == dt
    np.testing.assert_array_equal(got, dt(1.0) - x * dt(0.1))


def test_integer_literals_and_omitted_operands():
    z = rng.integers(-9, 9, 6).astype(np.int64)
    got = run("FusedElementwise", z, attrs={"program": "t = Mul x0 3; y = Clip t _ 5"})
    np.testing.assert_array_equal(got, np.minimum(z * 3, 5))


def test_bool_intermediates_and_mixed_dtypes():
    a, b = randn(3, 4), randn(3, 4)
    got = run("FusedElementwise", a, b, attrs={"program": "c = Greater x0 x1; y = Where c x0 0.0"})
    np.testing.assert_array_equal(got, np.where(a > b, a, np.float32(0)))


def test_the_result_is_broadcast_to_every_input_shape():
    x, unused = randn(1, 3), randn(4, 1)
    got = run("FusedElementwise", x, unused, attrs={"program": "y = Exp x0"})
    np.testing.assert_array_equal(got, np.broadcast_to(np.exp(x), (4, 3)))


def test_types():
    f, i = tensor_type("f32", ["B", 1, 8]), tensor_type("f32", [4, 1])
    assert out_type("FusedElementwise", [f, i], {"program": "y = Add x0 x1"}) == "f32[B,4,8]"
    assert out_type("FusedElementwise", [f, i], {"program": "y = Less x0 x1"}) == "bool[B,4,8]"
    assert out_type("FusedElementwise", [f, i], {"program": "y = Sqrt x0"}) == "f32[B,4,8]"


# -- FusedMatMul, FusedConv ---------------------------------------------------------------------

def test_fused_matmul_is_matmul_then_its_epilogue():
    a, w, b, r = randn(2, 3, 4), randn(4, 5), randn(5), randn(2, 3, 5)
    epilogue = "t0 = Add acc x0; t1 = HardSwish t0; y = Add x1 t1"
    want = unfused([("MatMul", [0, 1], {}), ("Add", [4, 2], {}), ("HardSwish", [5], {}), ("Add", [3, 6], {})],
                   [a, w, b, r])
    np.testing.assert_array_equal(run("FusedMatMul", a, Const(w), Const(b), r, attrs={"epilogue": epilogue}), want)


@pytest.mark.parametrize("bias", [False, True])
def test_fused_conv_is_conv_then_its_epilogue(bias):
    x, w, b, r = randn(2, 4, 7, 6), randn(6, 2, 3, 3), randn(6), randn(2, 6, 4, 3)
    attrs = {"group": 2, "strides": (2, 2), "pads": (1, 1, 1, 1)}
    conv = ("Conv", [0, 1, 2] if bias else [0, 1], attrs)
    want = unfused([conv, ("Add", [4, 3], {}), ("Clip", [5], {})], [x, w, b, r])
    got = run("FusedConv", x, Const(w), Const(b) if bias else None, r,
              attrs={**attrs, "epilogue": "t = Add acc x0; y = Clip t"})
    np.testing.assert_array_equal(got, want)


def test_epilogue_types():
    a, w = tensor_type("f32", ["B", 3]), tensor_type("f32", [3, 5])
    assert out_type("FusedMatMul", [a, w, tensor_type("f32", [5])], {"epilogue": "y = Add acc x0"}) == "f32[B,5]"
    assert out_type("FusedMatMul", [a, w], {"epilogue": "y = IsNaN acc"}) == "bool[B,5]"


# -- errors ----------------------------------------------------------------------------------------

X = tensor_type("f32", [2, 3])
PROGRAM_ERRORS = [
    ("", "program: the program has no instructions"),
    (" ; \n", "program: the program has no instructions"),
    ("y Relu x0", "program line 1, \"y Relu x0\": column 3: expected '=', got 'Relu'"),
    ("y = Relu", "program line 1, \"y = Relu\": column 9: expected an operand (a name, a number or _), "
                 "got end of text"),
    ("y = Relu x0 ,", "program line 1, \"y = Relu x0 ,\": column 13: expected an operand (a name, a number or _), "
                      "got ','"),
    ("y = Relu[alpha=0.1 x0", "program line 1, \"y = Relu[alpha=0.1 x0\": column 20: expected ',', got 'x0'"),
    ("y = Foo x0", "program line 1, \"y = Foo x0\": column 5: \"Foo\" is not an op of the elementwise family"),
    ("y = MatMul x0 x0", "program line 1, \"y = MatMul x0 x0\": column 5: \"MatMul\" is not an op of the "
                         "elementwise family"),
    ("t = Relu x0\ny = Abs x1", "program line 2, \"y = Abs x1\": column 9: \"x1\" is not defined "
                                "(sources: x0; then earlier results)"),
    ("x0 = Relu x0", "program line 1, \"x0 = Relu x0\": column 1: \"x0\" is a source"),
    ("t = Relu x0; t = Abs t", "program line 2, \"t = Abs t\": column 1: \"t\" is defined twice"),
    ("_ = Relu x0", "program line 1, \"_ = Relu x0\": column 1: \"_\" is reserved"),
    ("y = Add 1.0 _", "program line 1, \"y = Add 1.0 _\": column 5: needs an operand that is a name "
                      "(a literal takes the dtype of the last one)"),
    ("y = Add x0", "program line 1, \"y = Add x0\": takes 2 inputs (A, B), got 1"),
    ("y = LeakyRelu[beta=1.0] x0", "program line 1, \"y = LeakyRelu[beta=1.0] x0\": unknown attribute 'beta' "
                                   "(known: alpha)"),
    ("y = LeakyRelu[alpha=\"a\"] x0", "program line 1, \"y = LeakyRelu[alpha=\\\"a\\\"] x0\": attribute 'alpha' "
                                      "should be float: expected a float, got 'a'"),
    ("y = Gelu[approximate=\"fast\"] x0", "program line 1, \"y = Gelu[approximate=\\\"fast\\\"] x0\": attribute "
                                          "'approximate' must be \"none\" or \"tanh\", got 'fast'"),
    ("y = Not x0", "program line 1, \"y = Not x0\": input \"x0\" must be a bool tensor, got f32[2,3]"),
]


@pytest.mark.parametrize("program, message", PROGRAM_ERRORS)
def test_program_errors(program, message):
    assert error_of("FusedElementwise", [X], {"program": program}) == f'FusedElementwise node "n": {message}'


def test_operand_errors():
    i64, f4 = tensor_type("i64", [3]), tensor_type("f32", [4])
    assert error_of("FusedElementwise", [X, i64], {"program": "y = Add x0 x1"}) == (
        'FusedElementwise node "n": program line 1, "y = Add x0 x1": inputs must share one dtype, '
        'got "x0": f32, "x1": i64')
    assert error_of("FusedElementwise", [X, f4], {"program": "y = Add x0 x1"}) == (
        'FusedElementwise node "n": program line 1, "y = Add x0 x1": input shapes [2,3] and [4] do not broadcast')
    assert error_of("FusedElementwise", [], {"program": "y = Relu x0"}) == (
        'FusedElementwise node "n": takes one or more inputs, none omitted')


def test_epilogue_errors():
    w = tensor_type("f32", [3, 5])
    assert error_of("FusedMatMul", [X, tensor_type("f32", [4, 5])], {"epilogue": "y = Relu acc"}) == (
        'FusedMatMul node "n": MatMul: "x0": f32[2,3] times "x1": f32[4,5]: the contracted dims differ (3 vs 4)')
    assert error_of("FusedMatMul", [X, w], {"epilogue": "y = Relu x0"}) == (
        'FusedMatMul node "n": epilogue line 1, "y = Relu x0": column 10: "x0" is not defined '
        '(sources: acc; then earlier results)')
    assert error_of("FusedMatMul", [X, w], {}) == 'FusedMatMul node "n": required attribute \'epilogue\' is missing'
    x, k = tensor_type("f32", [1, 2, 3, 3]), tensor_type("f32", [2, 2, 1, 1])
    assert error_of("FusedConv", [x, k, None, tensor_type("f32", [1, 3, 1, 1])], {"epilogue": "y = Add acc x0"}) == (
        'FusedConv node "n": epilogue line 1, "y = Add acc x0": input shapes [1,2,3,3] and [1,3,1,1] '
        'do not broadcast')
