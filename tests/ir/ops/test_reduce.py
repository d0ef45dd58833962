"""Reductions, ArgMax/ArgMin, the softmax family, CumSum and TopK: inferred types (symbolic
dims and run-time axes included), values against numpy written independently in f64,
empty tensors, and the exact message of each error."""
import numpy as np
import pytest
from scipy import special

from flowc import ir
from flowc.ir import tensor_type
from single_op import Const, one_node, run, error_of

TOLERANCE = {"float32": (1e-5, 1e-5), "float16": (2e-3, 2e-3)}


def type_of(op, inputs, attrs=None, i=0):
    return str(one_node(op, inputs, attrs)[1].outputs[i].type)


def assert_close(got, want, dt):
    assert got.dtype == np.dtype(dt) and got.shape == np.shape(want)
    rtol, atol = TOLERANCE[np.dtype(dt).name]
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol, equal_nan=True)


rng = np.random.default_rng(0)

# name -> f(x, axes, keepdims) in f64, written without the IR's helpers
REDUCE = {
    "ReduceSum": lambda x, a, k: x.sum(axis=a, keepdims=k),
    "ReduceMean": lambda x, a, k: x.mean(axis=a, keepdims=k),
    "ReduceMax": lambda x, a, k: x.max(axis=a, keepdims=k),
    "ReduceMin": lambda x, a, k: x.min(axis=a, keepdims=k),
    "ReduceProd": lambda x, a, k: x.prod(axis=a, keepdims=k),
    "ReduceL1": lambda x, a, k: abs(x).sum(axis=a, keepdims=k),
    "ReduceL2": lambda x, a, k: np.sqrt((x * x).sum(axis=a, keepdims=k)),
    "ReduceSumSquare": lambda x, a, k: (x * x).sum(axis=a, keepdims=k),
    "ReduceLogSum": lambda x, a, k: np.log(x.sum(axis=a, keepdims=k)),
    "ReduceLogSumExp": lambda x, a, k: special.logsumexp(x, axis=a, keepdims=k),
}


@pytest.mark.parametrize("dt", ["float32", "float16"])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), ([-1], 1), ([2, -3], 1), ([], 0)])
@pytest.mark.parametrize("op", REDUCE)
def test_reduce_values(op, axes, keepdims, dt):
    x = rng.uniform(0.5, 1.5, (3, 5, 7)).astype(dt)
    got = run(op, x, Const(np.array(axes, np.int64)), attrs={"keepdims": keepdims})
    want = REDUCE[op](x.astype(np.float64), tuple(axes) or None, bool(keepdims))
    assert_close(got, want, dt)


@pytest.mark.parametrize("op", REDUCE)
def test_reduce_without_axes_reduces_everything_or_nothing(op):
    x = rng.uniform(0.5, 1.5, (2, 3)).astype(np.float32)
    assert_close(run(op, x), REDUCE[op](x.astype(np.float64), None, True), "float32")
    # over no axes, the steps around the reduction still apply: ReduceSumSquare squares, ReduceLogSum logs
    assert_close(run(op, x, attrs={"noop_with_empty_axes": 1}), REDUCE[op](x.astype(np.float64), (), True),
                 "float32")


# name -> what a reduction over no elements gives, in f32
EMPTY = {"ReduceSum": 0, "ReduceMean": np.nan, "ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceProd": 1,
         "ReduceL1": 0, "ReduceL2": 0, "ReduceSumSquare": 0, "ReduceLogSum": -np.inf, "ReduceLogSumExp": -np.inf}


@pytest.mark.parametrize("op", REDUCE)
def test_reduce_over_no_elements_gives_the_identity(op):
    x = np.zeros((2, 0, 4), np.float32)
    got = run(op, x, Const(np.array([1], np.int64)))
    assert_close(got, np.full((2, 1, 4), EMPTY[op]), "float32")
    assert run(op, x, Const(np.array([2], np.int64)), attrs={"keepdims": 0}).shape == (2, 0)


def test_reduce_max_min_of_integers_and_bools():
    x = np.array([[3, -7, 5], [0, 0, 0]], np.int8)
    np.testing.assert_array_equal(run("ReduceMax", x, Const([1])), [[5], [0]])
    np.testing.assert_array_equal(run("ReduceMin", np.zeros((0, 2), np.int32), Const([0])),
                                  [[np.iinfo(np.int32).max] * 2])
    b = np.array([[True, False], [False, False]])
    np.testing.assert_array_equal(run("ReduceMax", b, Const([1]), attrs={"keepdims": 0}), [True, False])
    np.testing.assert_array_equal(run("ReduceMin", b, Const([0]), attrs={"keepdims": 0}), [False, False])


def test_integer_mean_truncates_toward_zero():
    x = np.array([[-3, -4], [3, 4]], np.int64)
    np.testing.assert_array_equal(run("ReduceMean", x, Const([1]), attrs={"keepdims": 0}), [-3, 3])


def test_log_sum_exp_is_stable_and_handles_infinities():
    x = np.array([[1000, 1000], [-1000, -np.inf], [-np.inf, -np.inf], [np.inf, 1]], np.float32)
    want = [1000 + np.log(2), -1000, -np.inf, np.inf]
    assert_close(run("ReduceLogSumExp", x, Const([1]), attrs={"keepdims": 0}), np.array(want), "float32")


def test_reduce_of_a_scalar():
    assert run("ReduceSum", np.array(3.0, np.float32)).shape == ()


REDUCE_TYPES = [
    # input, axes, attrs, output type
    (["B", 5, 7], Const([1]), {}, "f32[B,1,7]"),
    (["B", 5, 7], Const([-1, 1]), {"keepdims": 0}, "f32[B]"),
    (["B", 5], None, {}, "f32[1,1]"),
    (["B", 5], None, {"keepdims": 0}, "f32[]"),
    (["B", 5], None, {"noop_with_empty_axes": 1}, "f32[B,5]"),
    (["B", 5], tensor_type("i64", [0]), {"noop_with_empty_axes": 1}, "f32[B,5]"),   # empty at run time
    (["B", 1, 5], tensor_type("i64", [1]), {}, "f32[?,1,?]"),   # axes known only at run time
    (["B", 1, 5], tensor_type("i64", [2]), {"keepdims": 0}, "f32[?]"),
    (["B", 1, 5], tensor_type("i64", ["N"]), {"keepdims": 0}, "f32[*]"),
    (None, Const([0]), {}, "f32[*]"),
]


@pytest.mark.parametrize("shape,axes,attrs,want", REDUCE_TYPES)
def test_reduce_types(shape, axes, attrs, want):
    assert type_of("ReduceMean", [tensor_type("f32", shape), axes], attrs) == want


def test_product_of_a_shape_with_symbols_is_known():
    g = ir.Graph("t")
    x = g.add_input("x", tensor_type("f32", ["B", 4, "S"]))
    shape = g.add_node("Shape", [x]).outputs[0]
    assert g.add_node("ReduceProd", [shape], attrs={"keepdims": 0}).outputs[0].sym == ("4*B*S",)


REDUCE_ERRORS = [
    ("ReduceSum", [tensor_type("f32", [2, 3]), Const([2])], None,
     'ReduceSum node "n": axis 2 is out of range for an input of rank 2'),
    ("ReduceSum", [tensor_type("f32", [2, 3]), Const([1, -1])], None,
     'ReduceSum node "n": axes [1, -1] name axis 1 twice'),
    ("ReduceSum", [tensor_type("f32", [2, 3]), Const(np.array([1], np.int32))], None,
     'ReduceSum node "n": axes must be a 1-D i64 tensor, got i32[1]'),
    ("ReduceSum", [tensor_type("f32", [2, 3]), tensor_type("i64", [3])], {"keepdims": 0},
     'ReduceSum node "n": axes holds 3 axes, more than the input\'s rank 2'),
    ("ReduceSum", [tensor_type("bool", [2])], None, 'ReduceSum node "n": input "x0" must be a numeric tensor, '
     'got bool[2]'),
    ("ReduceLogSum", [tensor_type("i64", [2])], None, 'ReduceLogSum node "n": input "x0" must be a float tensor, '
     'got i64[2]'),
]


@pytest.mark.parametrize("op,inputs,attrs,message", REDUCE_ERRORS)
def test_reduce_errors(op, inputs, attrs, message):
    assert error_of(op, inputs, attrs) == message


# -- ArgMax / ArgMin --------------------------------------------------------------

@pytest.mark.parametrize("dt", ["float32", "float16", "int32"])
@pytest.mark.parametrize("op,fn", [("ArgMax", np.argmax), ("ArgMin", np.argmin)])
def test_arg_values_and_ties(op, fn, dt):
    x = rng.integers(0, 3, (4, 5, 3)).astype(dt)   # small integers: many ties
    for axis in (0, 1, -1):
        first = run(op, x, attrs={"axis": axis, "keepdims": 0})
        np.testing.assert_array_equal(first, fn(x, axis=axis))
        last = run(op, x, attrs={"axis": axis, "select_last_index": 1})
        n = x.shape[axis]
        np.testing.assert_array_equal(last, n - 1 - np.expand_dims(fn(np.flip(x, axis), axis=axis), axis))


def test_arg_types():
    assert type_of("ArgMax", [tensor_type("f16", ["B", 7])], {"axis": 1}) == "i64[B,1]"
    assert type_of("ArgMin", [tensor_type("f16", ["B", 7])], {"axis": 0, "keepdims": 0}) == "i64[7]"


ARG_ERRORS = [
    ("ArgMax", [tensor_type("f32", [2, 3])], {"axis": 2}, 'ArgMax node "n": axis 2 is out of range for an input '
     'of rank 2'),
    ("ArgMax", [tensor_type("f32", [2, 0])], {"axis": 1}, 'ArgMax node "n": axis 1 of f32[2,0] is empty: there is '
     'no index to return'),
    ("ArgMin", [tensor_type("f32", [])], None, 'ArgMin node "n": needs an input of rank 1 or more, got f32[]'),
    ("ArgMin", [tensor_type("bool", [3])], None, 'ArgMin node "n": input "x0" must be a numeric tensor, got bool[3]'),
]


@pytest.mark.parametrize("op,inputs,attrs,message", ARG_ERRORS)
def test_arg_errors(op, inputs, attrs, message):
    assert error_of(op, inputs, attrs) == message


# -- softmax family -------------------------------------------------------------------

def softmax64(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dt", ["float32", "float16"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family(axis, dt):
    x = (rng.standard_normal((3, 5, 7)) * 4).astype(dt)
    w = x.astype(np.float64)
    assert_close(run("Softmax", x, attrs={"axis": axis}), softmax64(w, axis), dt)
    assert_close(run("LogSoftmax", x, attrs={"axis": axis}), np.log(softmax64(w, axis)), dt)
    onehot = (np.arange(x.shape[axis]).reshape([-1 if i == axis % 3 else 1 for i in range(3)])
              == np.expand_dims(np.argmax(x, axis=axis), axis))
    np.testing.assert_array_equal(run("Hardmax", x, attrs={"axis": axis}), onehot.astype(dt))


def test_softmax_of_large_and_empty_inputs():
    x = np.array([[10000, 10001, 10002]], np.float32)
    assert_close(run("Softmax", x), softmax64(x.astype(np.float64), -1), "float32")
    assert_close(run("LogSoftmax", x), np.array([[-2.40760596, -1.40760596, -0.40760596]]), "float32")
    assert run("Softmax", np.zeros((0, 3), np.float32)).shape == (0, 3)
    assert run("Hardmax", np.zeros((2, 0), np.float16)).shape == (2, 0)


def test_hardmax_picks_the_first_largest():
    np.testing.assert_array_equal(run("Hardmax", np.array([[1, 3, 3]], np.float32)), [[0, 1, 0]])


def test_softmax_types_and_errors():
    assert type_of("Softmax", [tensor_type("f16", ["B", "S", 64])]) == "f16[B,S,64]"
    assert error_of("Softmax", [tensor_type("f32", [2, 3])], {"axis": -3}) == \
        'Softmax node "n": axis -3 is out of range for an input of rank 2'
    assert error_of("LogSoftmax", [tensor_type("i32", [3])]) == \
        'LogSoftmax node "n": input "x0" must be a float tensor, got i32[3]'


# -- CumSum ---------------------------------------------------------------------------

def cumsum64(x, axis, exclusive, reverse):
    x = np.moveaxis(x.astype(np.float64), axis, 0)
    out, total = np.zeros_like(x), np.zeros_like(x[0])
    for i in (range(len(x))[::-1] if reverse else range(len(x))):
        if exclusive:
            out[i] = total
        total = total + x[i]
        if not exclusive:
            out[i] = total
    return np.moveaxis(out, 0, axis)


@pytest.mark.parametrize("dt", ["float32", "float16", "int32"])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum(exclusive, reverse, dt):
    x = rng.integers(-5, 5, (3, 4, 5)).astype(dt)
    attrs = {"exclusive": exclusive, "reverse": reverse}
    for axis in (1, -1, 0):
        want = cumsum64(x, axis, exclusive, reverse)
        got = run("CumSum", x, Const(np.array(axis, np.int32)), attrs=attrs)
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got.astype(np.float64), want)   # small integers: exact in every dtype


def test_cumsum_with_the_axis_given_at_run_time():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert type_of("CumSum", [tensor_type("f32", ["B", 3]), tensor_type("i64", [])]) == "f32[B,3]"
    np.testing.assert_array_equal(run("CumSum", x, np.array(0, np.int64)), np.cumsum(x, axis=0))
    assert run("CumSum", np.zeros((0, 2), np.float32), np.array(0, np.int64), attrs={"exclusive": 1}).shape == (0, 2)


def test_cumsum_errors():
    assert error_of("CumSum", [tensor_type("f32", [2, 3]), Const(np.int64(2))]) == \
        'CumSum node "n": axis 2 is out of range for an input of rank 2'
    assert error_of("CumSum", [tensor_type("f32", [2, 3]), Const(np.array([0, 1]))]) == \
        'CumSum node "n": axis must be a one-element i64 or i32 tensor, got i64[2]'


# -- TopK -----------------------------------------------------------------------------

@pytest.mark.parametrize("dt", ["float32", "float16", "int64"])
@pytest.mark.parametrize("largest", [1, 0])
def test_topk_values_and_ties(largest, dt):
    x = rng.integers(0, 4, (3, 9)).astype(dt)   # many ties: the lower index goes first
    for axis in (1, 0):
        values, indices = run("TopK", x, Const([3]), attrs={"axis": axis, "largest": largest})
        key = -x.astype(np.float64) if largest else x.astype(np.float64)
        order = np.argsort(key, axis=axis, kind="stable").take(range(3), axis=axis)
        np.testing.assert_array_equal(indices, order)
        np.testing.assert_array_equal(values, np.take_along_axis(x, order, axis=axis))


def test_topk_types():
    assert type_of("TopK", [tensor_type("f32", ["B", 10]), Const([4])]) == "f32[B,4]"
    assert type_of("TopK", [tensor_type("f32", ["B", 10]), Const([4])], i=1) == "i64[B,4]"
    assert type_of("TopK", [tensor_type("f16", ["B", 10]), tensor_type("i64", [1])], {"axis": 0}) == "f16[?,10]"


def test_topk_with_k_at_run_time():
    x = np.array([[3, 1, 2]], np.float32)
    values, indices = run("TopK", x, np.array([2], np.int64))
    np.testing.assert_array_equal(values, [[3, 2]])
    np.testing.assert_array_equal(indices, [[0, 2]])


def test_topk_errors():
    assert error_of("TopK", [tensor_type("f32", [2, 3]), Const([4])]) == \
        'TopK node "n": K=4 is larger than axis 1 of f32[2,3]'
    assert error_of("TopK", [tensor_type("f32", [2, 3]), Const([-1])]) == 'TopK node "n": K must be >= 0, got -1'
    assert error_of("TopK", [tensor_type("f32", [2, 3]), Const(np.array([1], np.int32))]) == \
        'TopK node "n": K must be a one-element i64 tensor, got i32[1]'
