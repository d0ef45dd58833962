"""GEMM (BLAS and flowc's small kernel) against numpy in float64, f32 tolerances rtol 1e-4, atol 1e-5
scaled by sqrt(K) (a K-term dot product's rounding grows with K)."""
import numpy as np
import pytest

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(got, want, k=1):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, np.sqrt(k)))


SHAPES = [(1, 1, 1), (1, 7, 3), (2, 2, 2), (3, 5, 7), (13, 1, 17), (16, 16, 16), (31, 37, 41),
          (64, 1, 64), (1, 128, 256), (97, 89, 101), (128, 256, 64), (257, 131, 67), (512, 512, 512)]


@pytest.mark.parametrize("path", ["auto", "blas", "small"])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_matches_numpy(K, path, trans_a, trans_b, m, n, k):
    if path == "small" and m * n * k > 200_000:
        pytest.skip("the small kernel is for small products")
    a = randn(k, m) if trans_a else randn(m, k)
    b = randn(n, k) if trans_b else randn(k, n)
    want = (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b).astype(np.float64)
    for threads in (1, 2):
        close(K.gemm(a, b, trans_a, trans_b, threads=threads, path=path), want, k)


@pytest.mark.parametrize("path", ["auto", "blas", "small"])
@pytest.mark.parametrize("m,n,k", [(5, 3, 4), (33, 65, 17), (200, 120, 90)])
def test_gemm_alpha_beta(K, path, m, n, k):
    a, b, c = randn(m, k), randn(k, n), randn(m, n)
    want = 0.5 * (a.astype(np.float64) @ b) - 2.0 * c
    close(K.gemm(a, b, alpha=0.5, beta=-2.0, c=c, threads=2, path=path), want, k)


@pytest.mark.parametrize("path", ["auto", "blas", "small"])
def test_gemm_beta_zero_ignores_nan_in_c(K, path):
    a, b = randn(6, 5), randn(5, 4)
    c = np.full((6, 4), np.nan, np.float32)
    close(K.gemm(a, b, beta=0.0, c=c, path=path), a.astype(np.float64) @ b, 5)


def test_gemm_empty_k_scales_c(K):
    a, b, c = randn(3, 0), randn(0, 4), randn(3, 4)
    close(K.gemm(a, b, beta=3.0, c=c), 3.0 * c)


@pytest.mark.parametrize("batch_a,batch_b", [(1, 1), (5, 5), (1, 3), (4, 1)])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 9, 11), (128, 64, 64), (64, 128, 96)])
def test_gemm_batched(K, batch_a, batch_b, trans_b, m, n, k):
    a = randn(batch_a, m, k)
    b = randn(batch_b, n, k) if trans_b else randn(batch_b, k, n)
    want = np.matmul(a.astype(np.float64), np.swapaxes(b, 1, 2) if trans_b else b)
    for threads in (1, 2):
        close(K.gemm_batched(a, b, trans_b=trans_b, threads=threads), want, k)
