"""Softmax, log-softmax and layer norm over the last axis, and trailing-axes reductions, against
numpy in float64 (layer norm also against flowc.ir's LayerNormalization); f32 rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from single_op import run

rng = np.random.default_rng(2)
ROWS = [(1,), (7,), (16,), (1, 1), (3, 17), (5, 128), (2, 3, 31), (64, 1000), (4, 4099), (3, 2, 1, 33)]


def randn(*shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


def close(got, want, rtol=1e-4, atol=1e-5):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def softmax64(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("scale", [1.0, 30.0])
@pytest.mark.parametrize("shape", ROWS)
def test_softmax_matches_numpy(K, shape, scale):
    x = randn(*shape, scale=scale)
    for threads in (1, 2):
        close(K.softmax(x, threads=threads), softmax64(x))
        close(K.softmax(x, log=True, threads=threads), np.log(softmax64(x)), atol=1e-4)


def test_softmax_stable_with_huge_and_masked_logits(K):
    x = np.array([[1e30, 1e30 - 1e24, -1e30, 0.0], [-np.inf, 0.0, 1.0, -np.inf]], np.float32)
    close(K.softmax(x), softmax64(x))


def special_rows(n):
    """Rows of n logits holding a NaN, all -inf, a +inf, +inf with -inf, and -inf beside finite values,
    each special value first and last (in the tail past the last block of 16 lanes where n > 16)."""
    rows = []
    for at in sorted({0, n - 1}):
        for special in (np.nan, np.inf):
            row = randn(n)
            row[at] = special
            rows.append(row)
        row = np.full(n, -np.inf, np.float32)
        row[at] = np.inf
        rows.append(row)
        row = np.full(n, -np.inf, np.float32)
        row[at] = 0.5
        rows.append(row)
    rows.append(np.full(n, -np.inf, np.float32))
    rows.append(np.full(n, np.nan, np.float32))
    rows.append(randn(n))
    row = np.full(n, 3e38, np.float32)   # finite, but the sum of x overflows, then meets -inf
    row[n // 2:] = -np.inf
    rows.append(row)
    return np.stack(rows)


@pytest.mark.parametrize("n", [1, 15, 16, 17, 33, 1000])
def test_softmax_special_rows_match_numpy(K, n):
    # numpy: a row holding a NaN, all -inf or a +inf (exp(inf - inf) is NaN) is NaN throughout
    x = special_rows(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = softmax64(x)
        want_log = np.log(want)
    for threads in (1, 2):
        close(K.softmax(x, threads=threads), want)
        close(K.softmax(x, log=True, threads=threads), want_log, atol=1e-4)


def layer_norm64(x, g, b, eps):
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + (0 if b is None else b)


@pytest.mark.parametrize("beta", [False, True])
@pytest.mark.parametrize("shape", ROWS)
def test_layer_norm_matches_numpy(K, shape, beta):
    x = randn(*shape, scale=2.0, shift=1.0)
    g, b = randn(shape[-1]), randn(shape[-1]) if beta else None
    for threads in (1, 2):
        close(K.layer_norm(x, g, b, 1e-5, threads=threads), layer_norm64(x, g, b, 1e-5), atol=1e-4)


def test_layer_norm_large_mean_small_spread(K):
    # var from plain sums of x and x^2 would cancel to nothing here; shifted sums do not.
    x = randn(4, 768, scale=0.01, shift=1000.0)
    g, b = np.ones(768, np.float32), np.zeros(768, np.float32)
    close(K.layer_norm(x, g, b, 1e-6), layer_norm64(x, g, b, 1e-6), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("shape", [(3, 17), (2, 5, 128), (8, 768)])
def test_layer_norm_matches_flowc_reference(K, shape):
    x, g, b = randn(*shape), randn(shape[-1]), randn(shape[-1])
    want = run("LayerNormalization", x, g, b, attrs={"axis": -1, "epsilon": 1e-5})
    close(K.layer_norm(x, g, b, 1e-5), want, atol=1e-4)


@pytest.mark.parametrize("mean", [False, True])
@pytest.mark.parametrize("shape,axes", [((1,), 1), ((7,), 0), ((3, 17), 1), ((5, 4, 3), 2),
                                        ((2, 3, 4, 5), 3), ((64, 49), 1), ((2, 100003), 1)])
def test_reduce_trailing_matches_numpy(K, shape, axes, mean):
    x = randn(*shape, shift=0.5)
    axis = tuple(range(len(shape) - axes, len(shape)))
    want = (x.astype(np.float64).mean if mean else x.astype(np.float64).sum)(axis=axis) if axes else x
    inner = int(np.prod(shape[len(shape) - axes:]))
    for threads in (1, 2):
        close(K.reduce(x, axes, mean=mean, threads=threads), np.asarray(want), atol=1e-5 * np.sqrt(inner))
