"""Unary activations and broadcasting binary ops against numpy/scipy in float64;
f32 rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from scipy import special

rng = np.random.default_rng(3)
SIZES = [1, 2, 7, 16, 17, 1023, 100_003]


def close(got, want, rtol=1e-4, atol=1e-5):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


UNARY = {
    "relu": lambda x: np.maximum(x, 0),
    "gelu_erf": lambda x: 0.5 * x * (1 + special.erf(x / np.sqrt(2))),
    "gelu_tanh": gelu_tanh,
    "sigmoid": special.expit,
    "tanh": np.tanh,
    "hardswish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "clip": lambda x: np.clip(x, -0.5, 1.25),
    "exp": np.exp,
    "erf": special.erf,
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("op", list(UNARY))
def test_unary_matches_numpy(K, op, n):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    if op == "exp":
        x = np.clip(x, -80, 80)
    want = UNARY[op](x.astype(np.float64))
    for threads in (1, 2):
        for inplace in (False, True):
            close(K.unary(op, x, lo=-0.5, hi=1.25, inplace=inplace, threads=threads), want)


@pytest.mark.parametrize("op", ["sigmoid", "tanh", "gelu_erf", "gelu_tanh", "erf", "hardswish", "exp"])
def test_unary_over_its_whole_range(K, op):
    x = np.concatenate([np.linspace(-100, 100, 20001), np.linspace(-1e-3, 1e-3, 2001),
                        [-1e30, -88.0, 88.0, 1e30, 0.0, -0.0]]).astype(np.float32)
    if op == "exp":
        x = x[np.abs(x) <= 88]
    with np.errstate(over="ignore"):
        want = UNARY[op](x.astype(np.float64))
    close(K.unary(op, x), want)


BROADCASTS = [((1,), (1,)), ((7,), (7,)), ((5, 3), (3,)), ((5, 3), (5, 1)), ((1, 3), (4, 1)),
              ((), (6,)), ((2, 3, 4), (2, 1, 4)), ((2, 1, 4), (1, 3, 1)), ((8, 64, 197), (197,)),
              ((2, 3, 1, 5, 1, 7), (1, 3, 4, 1, 6, 7)), ((16, 1), (1, 100_003 // 7))]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("sa,sb", BROADCASTS)
def test_binary_broadcast_matches_numpy(K, op, sa, sb):
    a = rng.standard_normal(sa).astype(np.float32)
    b = (rng.standard_normal(sb) + 3.0).astype(np.float32)  # away from 0 for div
    want = getattr(np, {"sub": "subtract", "mul": "multiply", "div": "divide"}.get(op, op))(
        a.astype(np.float64), b)
    for threads in (1, 2):
        close(K.binary(op, a, b, threads=threads), want)
        close(K.binary(op, b, a, threads=threads),
              getattr(np, {"sub": "subtract", "mul": "multiply", "div": "divide"}.get(op, op))(
                  b.astype(np.float64), a))
