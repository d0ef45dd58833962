"""linalg ops: inferred types (symbolic batch dims included), references against numpy in f64,
and the exact message of each error."""
import numpy as np
import pytest

from flowc.ir import tensor_type
from single_op import Const, run, out_type, error_of

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def close(got, want, rtol=1e-5, atol=1e-5):
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol)


def f64(a):
    return a.astype(np.float64)


# -- MatMul ---------------------------------------------------------------------------

MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 5)), ((4, 3), (3,)), ((2, 7, 3), (3, 5)), ((3,), (2, 3, 5)),
                 ((2, 1, 4, 3), (3, 3, 5)), ((5, 3), (2, 3, 1)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_is_numpy_matmul(sa, sb):
    a, b = randn(*sa), randn(*sb)
    close(run("MatMul", a, b), f64(a) @ f64(b))


def test_matmul_f16_and_ints():
    a, b = randn(4, 33, dtype=np.float16), randn(33, 2, dtype=np.float16)
    got = run("MatMul", a, b)
    assert got.dtype == np.float16
    close(got, f64(a) @ f64(b), rtol=2e-3, atol=2e-3)
    ia, ib = rng.integers(-9, 9, (2, 3)), rng.integers(-9, 9, (3, 4))
    np.testing.assert_array_equal(run("MatMul", ia, ib), ia @ ib)


@pytest.mark.parametrize("sa,sb,want", [
    (["B", "S", 64], [64, 256], "f32[B,S,256]"),
    (["B", 8, "S", 64], ["B", 8, 64, "S"], "f32[B,8,S,S]"),
    ([64], ["B", 64, 10], "f32[B,10]"),
    (["B", 3, 64], [64], "f32[B,3]"),
    ([1, "S", 64], ["B", 1, 64, 8], "f32[B,1,S,8]"),
])
def test_matmul_types(sa, sb, want):
    assert out_type("MatMul", [tensor_type("f32", sa), tensor_type("f32", sb)]) == want


MATMUL_ERRORS = [
    ([tensor_type("f32", ["B", 3]), tensor_type("f32", [4, 5])],
     'MatMul node "n": "x0": f32[B,3] times "x1": f32[4,5]: the contracted dims differ (3 vs 4)'),
    ([tensor_type("f32", [2, 3, 4]), tensor_type("f32", [5, 4, 6])],
     'MatMul node "n": input shapes [2] and [5] do not broadcast'),
    ([tensor_type("f32", []), tensor_type("f32", [4])],
     'MatMul node "n": operands must have rank >= 1, got f32[] and f32[4]'),
    ([tensor_type("f32", [3, 4]), tensor_type("f16", [4])],
     'MatMul node "n": inputs must share one dtype, got "x0": f32, "x1": f16'),
    ([tensor_type("bool", [3, 4]), tensor_type("bool", [4])],
     'MatMul node "n": input "x0" must be a numeric tensor, got bool[3,4]'),
]


@pytest.mark.parametrize("inputs,message", MATMUL_ERRORS)
def test_matmul_errors(inputs, message):
    assert error_of("MatMul", inputs) == message


# -- Gemm -----------------------------------------------------------------------------

@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_shape", [None, (), (1,), (5,), (3, 1), (3, 5)])
def test_gemm(trans_a, trans_b, c_shape):
    a = randn(*((4, 3) if trans_a else (3, 4)))
    b = randn(*((5, 4) if trans_b else (4, 5)))
    c = None if c_shape is None else randn(*c_shape)
    attrs = {"transA": trans_a, "transB": trans_b, "alpha": 0.5, "beta": -2.0}
    got = run("Gemm", a, Const(b), *([] if c is None else [Const(c)]), attrs=attrs)
    want = 0.5 * (f64(a).T if trans_a else f64(a)) @ (f64(b).T if trans_b else f64(b))
    close(got, want if c is None else want - 2 * f64(c))


def test_gemm_types_and_errors():
    a = tensor_type("f32", ["B", 64])
    assert out_type("Gemm", [a, tensor_type("f32", [10, 64]), tensor_type("f32", [10])], {"transB": 1}) == \
        "f32[B,10]"
    assert error_of("Gemm", [a, tensor_type("f32", [10, 64])]) == (
        'Gemm node "n": A "x0": f32[B,64] (transA=0) and B "x1": f32[10,64] (transB=0) contract dims 64 and 10, '
        "which differ")
    c = tensor_type("f32", [3, 10])
    assert out_type("Gemm", [a, tensor_type("f32", [64, 10]), c]) == "f32[B,10]"   # fine where B is 3
    assert error_of("Gemm", [tensor_type("f32", [2, 64]), tensor_type("f32", [64, 10]), c]) == (
        'Gemm node "n": C "x2" is f32[3,10], which does not broadcast to [2,10]')
    assert error_of("Gemm", [tensor_type("f32", [2, 2, 2]), tensor_type("f32", [2, 2])]) == (
        'Gemm node "n": input "x0" must be a matrix, got f32[2,2,2]')


# -- Einsum ---------------------------------------------------------------------------

EINSUMS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij->", [(3, 4)]),
    ("ji", [(3, 4)]),
    ("i,i", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("bhqd, bhkd -> bhqk", [(2, 3, 4, 8), (2, 3, 5, 8)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("Ab,bA", [(3, 2), (2, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bi,bi->b", [(1, 4), (3, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUMS)
def test_einsum_is_numpy_einsum(equation, shapes):
    arrays = [randn(*s) for s in shapes]
    close(run("Einsum", *arrays, attrs={"equation": equation}), np.einsum(equation, *map(f64, arrays)))


def test_einsum_implicit_output_sorts_upper_case_first():
    a = randn(2, 3)
    close(run("Einsum", a, attrs={"equation": "bA"}), f64(a).T)


@pytest.mark.parametrize("equation,shapes,want", [
    ("bhqd,bhkd->bhqk", [["B", 12, "S", 64], ["B", 12, "S", 64]], "f32[B,12,S,S]"),
    ("...d,de->...e", [["B", "S", 64], [64, 128]], "f32[B,S,128]"),
    ("bi,bi->b", [[1, 4], ["B", 4]], "f32[B]"),
    ("ij", [["N", 3]], "f32[N,3]"),
    ("ji", [["N", 3]], "f32[3,N]"),
])
def test_einsum_types(equation, shapes, want):
    assert out_type("Einsum", [tensor_type("f32", s) for s in shapes], {"equation": equation}) == want


EINSUM_ERRORS = [
    ("ij,jk->ik", [[3, 4], [5, 6]], 'Einsum node "n": label \'j\' is 4 in one operand and 5 in "x1": f32[5,6]'),
    ("ij,jk", [[3, 4]], 'Einsum node "n": equation \'ij,jk\' has 2 input terms, the node has 1 inputs'),
    ("ijk", [[3, 4]], 'Einsum node "n": term \'ijk\' does not fit "x0": f32[3,4]'),
    ("ij->iz", [[3, 4]], "Einsum node \"n\": output term 'iz' of equation 'ij->iz' must name each label of the "
                         "inputs at most once"),
    ("i1", [[3, 4]], "Einsum node \"n\": equation 'i1' has '1'; labels are ASCII letters"),
    ("i..j", [[3, 4]], "Einsum node \"n\": term 'i..j' of equation 'i..j' has a malformed ellipsis"),
]


@pytest.mark.parametrize("equation,shapes,message", EINSUM_ERRORS)
def test_einsum_errors(equation, shapes, message):
    assert error_of("Einsum", [tensor_type("f32", s) for s in shapes], {"equation": equation}) == message


# -- MatMulInteger --------------------------------------------------------------------

def test_matmul_integer_with_zero_points():
    a = rng.integers(0, 255, (2, 3, 4)).astype(np.uint8)
    b = rng.integers(-128, 127, (4, 5)).astype(np.int8)
    a_zero, b_zero = np.array([3, 200, 7], np.uint8), np.array(-5, np.int8)
    got = run("MatMulInteger", a, b, Const(a_zero), Const(b_zero))
    assert got.dtype == np.int32
    want = (a.astype(np.int64) - a_zero[:, None]) @ (b.astype(np.int64) - b_zero)
    np.testing.assert_array_equal(got, want)
    assert out_type("MatMulInteger", [tensor_type("u8", ["B", 4]), tensor_type("i8", [4, 5])]) == "i32[B,5]"
    assert error_of("MatMulInteger", [tensor_type("f32", [2, 4]), tensor_type("i8", [4, 5])]) == (
        'MatMulInteger node "n": input "x0" must be an i8 or u8 tensor, got f32[2,4]')
    assert error_of("MatMulInteger", [tensor_type("u8", [2, 4]), tensor_type("i8", [4, 5]),
                                      tensor_type("i8", [])]) == (
        'MatMulInteger node "n": zero point "x2" is i8[], expected u8 like "x0"')
