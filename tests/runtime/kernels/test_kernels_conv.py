"""conv2d (im2col + GEMM, grouped, direct depthwise) and pooling against flowc.ir's Conv, MaxPool,
AveragePool and GlobalAveragePool references; f32 at rtol 1e-4, atol 1e-5 * sqrt(taps)."""
import numpy as np
import pytest
from single_op import run

rng = np.random.default_rng(1)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(got, want, taps=1):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, np.sqrt(taps)))


def reference_conv(x, w, b, strides, pads, dilations, group):
    attrs = {"strides": list(strides), "pads": list(pads), "dilations": list(dilations), "group": group}
    return run("Conv", x, w, *([b] if b is not None else []), attrs=attrs)


# (N, C, H, W, K, R, S, strides, pads [t, l, b, r], dilations, group)
CONVS = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (1, 3, 7, 7, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (2, 4, 8, 9, 6, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),
    (1, 3, 13, 11, 4, 5, 3, (2, 1), (2, 0, 1, 2), (1, 1), 1),
    (1, 5, 17, 17, 7, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),
    (3, 8, 5, 5, 16, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (1, 8, 9, 9, 4, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1),
    (1, 3, 31, 29, 8, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1),
    (2, 8, 10, 10, 12, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),
    (1, 6, 11, 7, 9, 3, 2, (1, 2), (0, 1, 1, 0), (1, 1), 3),
    (1, 4, 9, 9, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),  # depthwise, multiplier 2
    (2, 32, 14, 14, 64, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 32),
    (1, 64, 56, 56, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    # larger odd shapes: padding on one side only, stride 2 with dilation, a 7x7 stem
    (2, 40, 37, 41, 13, 3, 3, (1, 1), (1, 0, 2, 1), (1, 1), 1),
    (1, 48, 45, 39, 7, 3, 3, (2, 2), (1, 1, 1, 1), (2, 2), 1),
    (1, 3, 67, 71, 8, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1),
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n,c,h,w_,k,r,s,strides,pads,dil,group", CONVS)
def test_conv2d_im2col_matches_reference(K, bias, n, c, h, w_, k, r, s, strides, pads, dil, group):
    x, w = randn(n, c, h, w_), randn(k, c // group, r, s)
    b = randn(k) if bias else None
    want = reference_conv(x, w, b, strides, pads, dil, group)
    taps = c // group * r * s
    for threads in (1, 2):
        for path in ("auto", "im2col"):
            got = K.conv2d(x, w, b, strides=strides, pads=pads, dilations=dil, group=group,
                           threads=threads, path=path)
            close(got, want, taps)


# (N, C, H, W, kernel, stride, pads [t, l, b, r])
DEPTHWISE = [
    (1, 1, 1, 1, 3, 1, (1, 1, 1, 1)),
    (1, 2, 2, 3, 3, 1, (1, 1, 1, 1)),
    (2, 3, 7, 7, 3, 1, (1, 1, 1, 1)),
    (1, 5, 8, 9, 3, 2, (1, 1, 1, 1)),
    (1, 4, 13, 17, 5, 1, (2, 2, 2, 2)),
    (1, 4, 13, 17, 5, 2, (2, 2, 2, 2)),
    (1, 3, 11, 10, 3, 2, (0, 1, 1, 0)),
    (1, 6, 9, 12, 5, 2, (1, 2, 2, 1)),
    (1, 3, 6, 6, 3, 1, (0, 0, 0, 0)),
    (1, 2, 4, 4, 5, 1, (3, 3, 3, 3)),  # pads wider than the kernel's reach: all-pad rows and columns
    (2, 32, 112, 112, 3, 1, (1, 1, 1, 1)),
    (1, 96, 56, 56, 3, 2, (0, 0, 1, 1)),
    (1, 7, 31, 37, 5, 2, (2, 2, 2, 2)),
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n,c,h,w_,kernel,stride,pads", DEPTHWISE)
def test_conv2d_depthwise_matches_reference(K, bias, n, c, h, w_, kernel, stride, pads):
    x, w = randn(n, c, h, w_), randn(c, 1, kernel, kernel)
    b = randn(c) if bias else None
    strides = (stride, stride)
    assert K.conv2d_is_depthwise_direct(x, w, list(strides), list(pads), [1, 1], c)
    want = reference_conv(x, w, b, strides, pads, (1, 1), c)
    for threads in (1, 2):
        for path in ("depthwise", "im2col"):
            got = K.conv2d(x, w, b, strides=strides, pads=pads, group=c, threads=threads, path=path)
            close(got, want, kernel * kernel)


def test_depthwise_dispatch_rules(K):
    x = randn(1, 4, 8, 8)
    d = K.conv2d_is_depthwise_direct
    assert d(x, randn(4, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 4)
    assert not d(x, randn(4, 1, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 4)  # dilated: im2col
    assert not d(x, randn(4, 1, 7, 7), [1, 1], [3, 3, 3, 3], [1, 1], 4)  # 7x7: im2col
    assert not d(x, randn(8, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 4)  # multiplier 2: im2col
    assert not d(x, randn(4, 1, 3, 3), [3, 3], [1, 1, 1, 1], [1, 1], 4)  # stride 3: im2col


# (N, C, H, W, kernel, strides, pads, dilations, ceil_mode)
POOLS = [
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False),
    (1, 2, 5, 5, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False),
    (1, 2, 5, 5, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), True),
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    (2, 3, 7, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True),
    (1, 4, 12, 13, (3, 2), (1, 2), (1, 0, 2, 1), (1, 1), False),
    (1, 3, 11, 11, (5, 5), (3, 3), (2, 2, 2, 2), (1, 1), True),
    (1, 2, 13, 13, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), False),
    (1, 64, 112, 112, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
]


@pytest.mark.parametrize("n,c,h,w,kernel,strides,pads,dil,ceil", POOLS)
def test_maxpool_matches_reference(K, n, c, h, w, kernel, strides, pads, dil, ceil):
    x = randn(n, c, h, w)
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": list(pads),
             "dilations": list(dil), "ceil_mode": int(ceil)}
    want = run("MaxPool", x, attrs=attrs)
    for threads in (1, 2):
        got = K.pool2d("max", x, kernel, strides, pads, dil, ceil, threads=threads)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("n,c,h,w,kernel,strides,pads,dil,ceil", [p for p in POOLS if p[7] == (1, 1)])
def test_avgpool_matches_reference(K, include_pad, n, c, h, w, kernel, strides, pads, dil, ceil):
    x = randn(n, c, h, w)
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": list(pads),
             "ceil_mode": int(ceil), "count_include_pad": int(include_pad)}
    want = run("AveragePool", x, attrs=attrs)
    for threads in (1, 2):
        got = K.pool2d("avg", x, kernel, strides, pads, dil, ceil, include_pad, threads=threads)
        close(got, want)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 7, 7), (1, 512, 7, 7), (3, 5, 2, 3, 4), (4, 6, 97)])
def test_global_avgpool_matches_reference(K, shape):
    x = randn(*shape) + 3.0
    want = run("GlobalAveragePool", x)
    for threads in (1, 2):
        close(K.global_avgpool(x, threads=threads), want)
