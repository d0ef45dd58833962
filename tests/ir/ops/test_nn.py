"""nn ops: inferred types (symbolic dims included), references against torch.nn.functional (or numpy
written independently), odd sizes, and the exact message of each error."""
import numpy as np
import pytest

import flowc
from flowc.ir import tensor_type
from single_op import Const, run, out_type, error_of

torch = pytest.importorskip("torch")
F = torch.nn.functional

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def close(got, want, rtol=1e-4, atol=1e-5):
    want = want.numpy() if isinstance(want, torch.Tensor) else want
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)


# -- Conv -----------------------------------------------------------------------------

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

# (input shape, weight shape, group, strides, dilations, pads begin+end)
CONVS = [
    ((2, 3, 11), (4, 3, 3), 1, (2,), (1,), (1, 1)),
    ((1, 4, 9, 7), (6, 2, 3, 2), 2, (1, 2), (2, 1), (1, 0, 1, 0)),
    ((2, 6, 8, 9), (6, 1, 3, 3), 6, (2, 2), (1, 1), (1, 1, 1, 1)),       # depthwise
    ((2, 6, 8, 9), (12, 1, 3, 3), 6, (1, 1), (1, 1), (0, 0, 0, 0)),      # depthwise, multiplier 2
    ((1, 2, 5, 6, 7), (3, 2, 2, 3, 1), 1, (1, 2, 3), (2, 1, 1), (1, 0, 2, 1, 0, 2)),
    ((3, 3, 13, 13), (5, 3, 5, 5), 1, (3, 2), (1, 2), (2, 1, 0, 3)),     # asymmetric pads
]


@pytest.mark.parametrize("xs,ws,group,strides,dilations,pads", CONVS)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_matches_torch(xs, ws, group, strides, dilations, pads, bias):
    x, w, b = randn(*xs), randn(*ws), randn(ws[0])
    attrs = {"group": group, "strides": strides, "dilations": dilations, "pads": pads}
    got = run("Conv", x, Const(w), *([Const(b)] if bias else []), attrs=attrs)
    n = len(strides)
    padded = F.pad(t(x), [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])])
    want = TORCH_CONV[n](padded, t(w), t(b) if bias else None, strides, 0, dilations, group)
    close(got, want)


@pytest.mark.parametrize("auto_pad,begin,end", [("SAME_UPPER", 1, 2), ("SAME_LOWER", 2, 1), ("VALID", 0, 0)])
def test_conv_auto_pad(auto_pad, begin, end):
    x, w = randn(1, 2, 7, 7), randn(3, 2, 4, 4)
    got = run("Conv", x, Const(w), attrs={"auto_pad": auto_pad, "strides": [2, 2]})
    close(got, F.conv2d(F.pad(t(x), [begin, end, begin, end]), t(w), stride=2))
    assert got.shape == ((1, 3, 4, 4) if auto_pad != "VALID" else (1, 3, 2, 2))


def test_conv_f16_computes_in_f32():
    x, w = randn(1, 3, 6, 6, dtype=np.float16), randn(4, 3, 3, 3, dtype=np.float16)
    got = run("Conv", x, Const(w), attrs={"pads": [1, 1, 1, 1]})
    assert got.dtype == np.float16
    close(got, F.conv2d(t(x).float(), t(w).float(), padding=1), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("xs,attrs,want", [
    (["B", 3, 224, 224], {"strides": [2, 2], "pads": [3, 3, 3, 3]}, "f32[B,64,112,112]"),
    (["B", 3, "H", "W"], {"pads": [3, 3, 3, 3]}, "f32[B,64,H,W]"),
    (["B", 3, "H", "W"], {"auto_pad": "SAME_UPPER"}, "f32[B,64,H,W]"),
    (["B", 3, "H", 17], {"strides": [2, 2], "pads": [3, 3, 3, 3]}, "f32[B,64,?,9]"),
    (["B", 3, "H", 17], {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, "f32[B,64,?,9]"),
])
def test_conv_types_keep_symbols(xs, attrs, want):
    w = Const(np.zeros((64, 3, 7, 7), np.float32))
    assert out_type("Conv", [tensor_type("f32", xs), w], attrs) == want


X4 = tensor_type("f32", [1, 4, 8, 8])
CONV_ERRORS = [
    ([X4, tensor_type("f32", [6, 3, 3, 3])], {"group": 1},
     'Conv node "n": input "x0" has 4 channels, but weight "x1": f32[6,3,3,3] expects 3 per group x group 1 = 3'),
    ([X4, tensor_type("f32", [6, 1, 3, 3])], {"group": 2},
     'Conv node "n": input "x0" has 4 channels, but weight "x1": f32[6,1,3,3] expects 1 per group x group 2 = 2'),
    ([X4, tensor_type("f32", [6, 1, 3, 3])], {"group": 4},
     'Conv node "n": weight "x1" has 6 output channels, not divisible by group 4'),
    ([X4, tensor_type("f32", [6, 4, 3])], {},
     'Conv node "n": input "x0" is f32[1,4,8,8] and weight "x1" is f32[6,4,3]: expected the same rank '
     '([N,C,spatial...] and [M,C/group,kernel...])'),
    ([X4, tensor_type("f32", [6, 4, 3, 3])], {"kernel_shape": [5, 5]},
     'Conv node "n": kernel_shape [5, 5] does not match the weight "x1": f32[6,4,3,3]'),
    ([X4, tensor_type("f32", [6, 4, 3, 3])], {"strides": [2]},
     'Conv node "n": strides has 1 values, expected 2 (one per spatial axis)'),
    ([X4, tensor_type("f32", [6, 4, 3, 3])], {"pads": [1, 1]},
     'Conv node "n": pads has 2 values, expected 4 (begin and end per spatial axis)'),
    ([X4, tensor_type("f32", [6, 4, 9, 3])], {},
     'Conv node "n": spatial axis 0 has size 8, smaller than the window (kernel 9, dilation 1) with pads 0+0'),
    ([X4, tensor_type("f32", [6, 4, 3, 3])], {"auto_pad": "SAME"},
     "Conv node \"n\": auto_pad must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, got 'SAME'"),
    ([X4, tensor_type("f32", [6, 4, 3, 3]), tensor_type("f32", [4])], {},
     'Conv node "n": bias "x2" must have shape [6] (one per channel), got f32[4]'),
    ([tensor_type("i64", [1, 4, 8, 8]), tensor_type("i64", [6, 4, 3, 3])], {},
     'Conv node "n": input "x0" must be a float tensor, got i64[1,4,8,8]'),
]


@pytest.mark.parametrize("inputs,attrs,message", CONV_ERRORS)
def test_conv_errors(inputs, attrs, message):
    assert error_of("Conv", inputs, attrs) == message


# -- ConvTranspose --------------------------------------------------------------------

TORCH_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}

# (input shape, weight shape, group, strides, dilations, pads (symmetric), output_padding)
CONV_TRANSPOSES = [
    ((2, 3, 7), (3, 4, 3), 1, (2,), (1,), (1,), (1,)),
    ((1, 4, 5, 6), (4, 3, 3, 2), 2, (2, 3), (1, 2), (1, 0), (1, 2)),
    ((2, 2, 3, 4, 5), (2, 2, 2, 3, 2), 1, (1, 2, 2), (2, 1, 1), (0, 1, 0), (0, 1, 1)),
    ((1, 6, 5, 5), (6, 1, 3, 3), 6, (2, 2), (1, 1), (1, 1), (0, 0)),
]


@pytest.mark.parametrize("xs,ws,group,strides,dilations,pads,output_padding", CONV_TRANSPOSES)
def test_conv_transpose_matches_torch(xs, ws, group, strides, dilations, pads, output_padding):
    x, w, b = randn(*xs), randn(*ws), randn(ws[1] * group)
    attrs = {"group": group, "strides": strides, "dilations": dilations, "pads": pads * 2,
             "output_padding": output_padding}
    got = run("ConvTranspose", x, Const(w), Const(b), attrs=attrs)
    want = TORCH_CONV_T[len(strides)](t(x), t(w), t(b), strides, pads, output_padding, group, dilations)
    close(got, want)


def test_conv_transpose_output_shape_and_same():
    x, w = randn(1, 2, 4, 5), randn(2, 3, 3, 3)
    # the full result is 9x11; output_shape 8x10 leaves 1 padding per axis, at the start unless SAME_UPPER
    got = run("ConvTranspose", x, Const(w), attrs={"strides": [2, 2], "output_shape": [8, 10]})
    full = F.conv_transpose2d(t(x), t(w), stride=2)
    close(got, full[:, :, 1:, 1:])
    got = run("ConvTranspose", x, Const(w), attrs={"strides": [2, 2], "auto_pad": "SAME_UPPER"})
    close(got, full[:, :, :8, :10])


@pytest.mark.parametrize("xs,attrs,want", [
    (["B", 8, "H", "W"], {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, "f32[B,4,2*H,2*W]"),
    (["B", 8, "H", 5], {"pads": [1, 1, 1, 1]}, "f32[B,4,H,5]"),
    (["B", 8, "H", 5], {"strides": [2, 2]}, "f32[B,4,?,11]"),
    (["B", 8, "H", "W"], {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, "f32[B,4,2*H,2*W]"),
    (["B", 8, "H", "W"], {"strides": [2, 2], "output_shape": [17, 19]}, "f32[B,4,17,19]"),
])
def test_conv_transpose_types(xs, attrs, want):
    w = Const(np.zeros((8, 2, 3, 3), np.float32))
    assert out_type("ConvTranspose", [tensor_type("f32", xs), w], {"group": 2, **attrs}) == want


def test_conv_transpose_errors():
    assert error_of("ConvTranspose", [tensor_type("f32", [1, 4, 5, 5]), tensor_type("f32", [3, 2, 3, 3])]) == (
        'ConvTranspose node "n": input "x0" has 4 channels, but weight "x1": f32[3,2,3,3] expects 3, '
        "divisible by group 1")
    assert error_of("ConvTranspose", [tensor_type("f32", [1, 3, 1, 1]), tensor_type("f32", [3, 2, 3, 3])],
                    {"pads": [2, 2, 2, 2]}) == (
        'ConvTranspose node "n": spatial axis 0: the output size -1 is not positive (input 1, stride 1, '
        "kernel 3, pads 2+2)")


# -- pooling --------------------------------------------------------------------------

# (input shape, kernel, strides, pads (symmetric), dilations, ceil_mode)
POOLS = [
    ((2, 3, 9), (3,), (2,), (1,), (1,), 0),
    ((1, 2, 7, 8), (3, 2), (2, 2), (1, 0), (1, 1), 1),
    ((2, 3, 10, 9), (3, 3), (2, 3), (1, 1), (2, 1), 1),
    ((1, 2, 6, 7, 5), (2, 3, 2), (2, 1, 2), (1, 1, 0), (1, 1, 1), 0),
    ((1, 1, 5, 5), (2, 2), (2, 2), (1, 1), (1, 1), 1),   # last window starts on the padding: dropped
]
TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def pool_attrs(kernel, strides, pads, dilations, ceil_mode):
    return {"kernel_shape": kernel, "strides": strides, "pads": pads * 2, "dilations": dilations,
            "ceil_mode": ceil_mode}


@pytest.mark.parametrize("xs,kernel,strides,pads,dilations,ceil_mode", POOLS)
def test_max_pool_and_indices_match_torch(xs, kernel, strides, pads, dilations, ceil_mode):
    x = randn(*xs)
    y, idx = run("MaxPool", x, attrs=pool_attrs(kernel, strides, pads, dilations, ceil_mode), num_outputs=2)
    want, want_idx = TORCH_MAX[len(kernel)](t(x), kernel, strides, pads, dilations, bool(ceil_mode),
                                            return_indices=True)
    close(y, want)
    plane = int(np.prod(xs[2:]))    # torch counts within each (n, c) plane, ONNX over the whole tensor
    offsets = np.arange(xs[0] * xs[1]).reshape(xs[:2] + (1,) * len(kernel)) * plane
    np.testing.assert_array_equal(idx, want_idx.numpy() + offsets)


def test_max_pool_column_major_indices_and_u8():
    x = rng.integers(0, 255, (2, 3, 5, 4)).astype(np.uint8)
    y, idx = run("MaxPool", x, attrs={"kernel_shape": [2, 2], "storage_order": 1}, num_outputs=2)
    want, want_idx = F.max_pool2d(t(x).float(), 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, want.numpy().astype(np.uint8))
    h, w = np.divmod(want_idx.numpy(), 4)
    np.testing.assert_array_equal(idx % 20, h + w * 5)


@pytest.mark.parametrize("xs,kernel,strides,pads,dilations,ceil_mode", [p for p in POOLS if p[4] == (1,) * len(p[1])])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_average_pool_matches_torch(xs, kernel, strides, pads, dilations, ceil_mode, count_include_pad):
    x = randn(*xs)
    got = run("AveragePool", x, attrs={**pool_attrs(kernel, strides, pads, dilations, ceil_mode),
                                       "count_include_pad": count_include_pad})
    close(got, TORCH_AVG[len(kernel)](t(x), kernel, strides, pads, bool(ceil_mode), bool(count_include_pad)))


def test_average_pool_dilated_same_upper_counts_only_the_input():
    x = randn(1, 1, 6, 6)
    got = run("AveragePool", x, attrs={"kernel_shape": [3, 3], "dilations": [2, 2], "auto_pad": "SAME_UPPER"})
    # SAME_UPPER: window span 5, total padding 4 -> 2 and 2; average over the taps inside the input
    padded = np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)], constant_values=np.nan)
    want = np.stack([np.nanmean(padded[0, 0, i:i + 5:2, j:j + 5:2]) for i in range(6) for j in range(6)])
    close(got, want.reshape(1, 1, 6, 6))


@pytest.mark.parametrize("p", [2, 3])
def test_lp_pool_matches_torch(p):
    x = np.abs(randn(2, 3, 7, 6))
    got = run("LpPool", x, attrs={"kernel_shape": [3, 2], "strides": [2, 2], "p": p})
    close(got, F.lp_pool2d(t(x), p, (3, 2), (2, 2)))


def test_lp_pool_pads_count_as_zeros():
    x = randn(1, 1, 4)
    got = run("LpPool", x, attrs={"kernel_shape": [3], "pads": [1, 1]})
    padded = np.pad(x[0, 0], 1)
    close(got[0, 0], np.array([np.sqrt((padded[i:i + 3] ** 2).sum()) for i in range(4)]))


@pytest.mark.parametrize("op,fn", [("GlobalAveragePool", lambda x: x.mean((2, 3, 4), keepdims=True)),
                                   ("GlobalMaxPool", lambda x: x.max((2, 3, 4), keepdims=True)),
                                   ("GlobalLpPool", lambda x: np.sqrt((x * x).sum((2, 3, 4), keepdims=True)))])
def test_global_pools(op, fn):
    x = randn(2, 3, 4, 5, 3)
    close(run(op, x), fn(x.astype(np.float64)))
    assert out_type(op, [tensor_type("f16", ["B", 3, "H", "W"])]) == "f16[B,3,1,1]"


@pytest.mark.parametrize("xs,attrs,want", [
    (["B", 64, 112, 112], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, "f32[B,64,56,56]"),
    (["B", 64, "H", "W"], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, "f32[B,64,H,W]"),
    (["B", 64, "H", 8], {"kernel_shape": [2, 2], "strides": [2, 2]}, "f32[B,64,?,4]"),
    (["B", 1, 5, 5], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, "f32[B,1,3,3]"),
    (["B", 1, 5, 5], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1, "pads": [1, 1, 1, 1]},
     "f32[B,1,3,3]"),
])
def test_pool_types(xs, attrs, want):
    assert out_type("MaxPool", [tensor_type("f32", xs)], attrs) == want
    assert out_type("MaxPool", [tensor_type("f32", xs)], attrs, num_outputs=2) == [want, "i64" + want[3:]]


POOL_ERRORS = [
    ("MaxPool", tensor_type("f32", [1, 1, 4, 4]), {"kernel_shape": [2]},
     'MaxPool node "n": kernel_shape has 1 values, but the input has 2 spatial axes'),
    ("MaxPool", tensor_type("f32", [1, 4]), {"kernel_shape": [2]},
     'MaxPool node "n": input "x0" must have rank >= 3, got f32[1,4]'),
    ("MaxPool", tensor_type("i64", [1, 1, 4]), {"kernel_shape": [2]},
     'MaxPool node "n": input "x0" must be a float, i8 or u8 tensor, got i64[1,1,4]'),
    ("MaxPool", tensor_type("f32", [1, 1, 4]), {"kernel_shape": [2], "storage_order": 2},
     'MaxPool node "n": storage_order must be 0 (row major) or 1 (column major), got 2'),
    ("AveragePool", tensor_type("f32", [1, 1, 4]), {"kernel_shape": [0]},
     'AveragePool node "n": kernel [0], strides [1] and dilations [1] must be positive and pads [0, 0] not negative'),
    ("AveragePool", tensor_type("f32", [1, 1, 4]), {},
     "AveragePool node \"n\": required attribute 'kernel_shape' is missing"),
    ("LpPool", tensor_type("f32", [1, 1, 4]), {"kernel_shape": [2], "p": 0},
     'LpPool node "n": p must be positive, got 0'),
    ("GlobalLpPool", tensor_type("f32", [1, 1, 4]), {"p": -1}, 'GlobalLpPool node "n": p must be positive, got -1'),
]


@pytest.mark.parametrize("op,xt,attrs,message", POOL_ERRORS)
def test_pool_errors(op, xt, attrs, message):
    assert error_of(op, [xt], attrs) == message


# -- normalization --------------------------------------------------------------------

def test_batch_norm_matches_torch():
    x = randn(3, 5, 4, 3)
    scale, b, mean, var = randn(5), randn(5), randn(5), np.abs(randn(5)) + 0.1
    got = run("BatchNormalization", x, Const(scale), Const(b), Const(mean), Const(var), attrs={"epsilon": 1e-3})
    close(got, F.batch_norm(t(x), t(mean), t(var), t(scale), t(b), eps=1e-3))


def test_batch_norm_f16_with_f32_statistics():
    x = randn(2, 3, 5, dtype=np.float16)
    scale, b, mean, var = randn(3), randn(3), randn(3), np.abs(randn(3)) + 0.1
    got = run("BatchNormalization", x, scale, b, mean, var)
    assert got.dtype == np.float16
    close(got, F.batch_norm(t(x).float(), t(mean), t(var), t(scale), t(b)), rtol=2e-3, atol=2e-3)


def test_batch_norm_errors():
    p = tensor_type("f32", [4])
    x = tensor_type("f32", ["B", 3, 8, 8])
    assert error_of("BatchNormalization", [x, p, p, p, p]) == (
        'BatchNormalization node "n": scale "x1" must have shape [3] (one per channel), got f32[4]')
    assert error_of("BatchNormalization", [x] + [tensor_type("f32", [3])] * 4, {"training_mode": 1}) == (
        'BatchNormalization node "n": training_mode=1 (batch statistics and running-stat updates) is not '
        "supported; export the model in eval mode")
    assert error_of("BatchNormalization", [x] + [tensor_type("f32", [3])] * 4, num_outputs=3) == (
        'BatchNormalization node "n": running_mean and running_var are outputs of training mode only; '
        "in inference mode the node has one output")


def test_instance_norm_matches_torch():
    x, scale, b = randn(2, 3, 5, 7), randn(3), randn(3)
    got = run("InstanceNormalization", x, Const(scale), Const(b), attrs={"epsilon": 1e-4})
    close(got, F.instance_norm(t(x), weight=t(scale), bias=t(b), eps=1e-4))


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
def test_layer_norm_matches_torch_with_statistics(axis):
    x = randn(2, 3, 5)
    normalized = x.shape[axis % 3:]
    scale, b = randn(*normalized), randn(*normalized)
    y, mean, inv_std = run("LayerNormalization", x, Const(scale), Const(b), attrs={"axis": axis}, num_outputs=3)
    close(y, F.layer_norm(t(x), normalized, t(scale), t(b)))
    axes = tuple(range(axis % 3, 3))
    close(mean, x.mean(axes, keepdims=True))
    close(inv_std, 1 / np.sqrt(x.astype(np.float64).var(axes, keepdims=True) + 1e-5))


def test_layer_norm_types():
    x = tensor_type("f16", ["B", "S", 64])
    assert out_type("LayerNormalization", [x, tensor_type("f16", [64])], num_outputs=3) == [
        "f16[B,S,64]", "f32[B,S,1]", "f32[B,S,1]"]
    assert out_type("LayerNormalization", [x, tensor_type("f16", [64])], {"axis": 1, "stash_type": 11},
                    num_outputs=2) == ["f16[B,S,64]", "f64[B,1,1]"]
    assert error_of("LayerNormalization", [x, tensor_type("f16", [32])]) == (
        'LayerNormalization node "n": scale "x1" is f16[32], which does not broadcast to [64]')
    assert error_of("LayerNormalization", [x, tensor_type("f16", [64])], {"stash_type": 7}) == (
        'LayerNormalization node "n": stash_type must name a float element type (1 = f32, 10 = f16, 11 = f64, '
        "16 = bf16), got 7")


def test_layer_norm_f16_statistics_in_f32():
    x = (randn(4, 64) * 100 + 1000).astype(np.float16)
    y = run("LayerNormalization", x, np.ones(64, np.float16))
    close(y, F.layer_norm(t(x).float(), (64,)), rtol=5e-3, atol=5e-3)


def test_group_norm_matches_torch():
    x, scale, b = randn(2, 6, 4, 3), randn(6), randn(6)
    got = run("GroupNormalization", x, Const(scale), Const(b), attrs={"num_groups": 3, "epsilon": 1e-3})
    close(got, F.group_norm(t(x), 3, t(scale), t(b), eps=1e-3))


def test_group_norm_errors():
    x = tensor_type("f32", ["B", 6, 4, 4])
    assert error_of("GroupNormalization", [x, tensor_type("f32", [6]), tensor_type("f32", [6])],
                    {"num_groups": 4}) == (
        'GroupNormalization node "n": num_groups 4 must be positive and divide the 6 channels of "x0": f32[B,6,4,4]')
    assert error_of("GroupNormalization", [x, tensor_type("f32", [3]), tensor_type("f32", [3])],
                    {"num_groups": 3}) == (
        'GroupNormalization node "n": scale "x1" has num_groups=3 elements, the opset-18 form; since opset 21 it '
        "has one per channel (6)")


@pytest.mark.parametrize("size", [3, 5])
def test_lrn_matches_torch(size):
    x = randn(2, 7, 4, 3)
    got = run("LRN", x, attrs={"size": size, "alpha": 1e-2, "beta": 0.6, "bias": 2.0})
    close(got, F.local_response_norm(t(x), size, 1e-2, 0.6, 2.0))


def test_lrn_even_size_window():
    # ONNX sums channels c - floor((size-1)/2) .. c + ceil((size-1)/2): for size 4, one before and two after
    x = randn(1, 5, 2, dtype=np.float64)
    got = run("LRN", x, attrs={"size": 4, "alpha": 0.5})
    sq = np.pad(x ** 2, [(0, 0), (1, 2), (0, 0)])
    want = x / (1 + 0.5 / 4 * np.stack([sq[:, c:c + 4].sum(1) for c in range(5)], 1)) ** 0.75
    close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p,axis", [(1, 0), (2, -1), (2, 1)])
def test_lp_normalization(p, axis):
    x = randn(3, 4)
    x[1] = 0
    got = run("LpNormalization", x, attrs={"p": p, "axis": axis})
    norm = np.linalg.norm(x.astype(np.float64), ord=p, axis=axis, keepdims=True)
    close(got, x / np.where(norm == 0, 1, norm))
    assert error_of("LpNormalization", [x], {"p": 3}) == 'LpNormalization node "n": p must be 1 or 2, got 3'


# -- dropout --------------------------------------------------------------------------

def test_dropout_is_identity_with_mask():
    x = randn(2, 3)
    y, mask = run("Dropout", x, Const(np.float32(0.3)), num_outputs=2)
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == bool and mask.all()
    assert out_type("Dropout", [tensor_type("bf16", ["B", 3])], num_outputs=2) == ["bf16[B,3]", "bool[B,3]"]


def test_dropout_training_is_rejected_unless_ratio_is_zero():
    x = randn(4)
    np.testing.assert_array_equal(run("Dropout", x, Const(np.float32(0)), Const(np.bool_(True))), x)
    message = ('Dropout node "n": training_mode=True drops elements at random, which flowc does not support; '
               "export the model in eval mode")
    assert error_of("Dropout", [x, None, Const(np.bool_(True))]) == message
    with pytest.raises(flowc.CompileError) as e:   # training_mode fed at run time
        run("Dropout", x, Const(np.float32(0.5)), np.bool_(True))
    assert str(e.value) == message


# -- pad ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes_match_numpy(mode):
    x = randn(3, 4, 5)
    pads = [1, 0, 2, 2, 3, 1]
    got = run("Pad", x, Const(np.array(pads, np.int64)), Const(np.float32(1.5)), attrs={"mode": mode})
    kwargs = {"constant_values": 1.5} if mode == "constant" else {}
    np.testing.assert_array_equal(got, np.pad(x, [(1, 2), (0, 3), (2, 1)], mode=mode, **kwargs))


def test_pad_negative_pads_crop_and_axes():
    x = randn(4, 5, 6)
    got = run("Pad", x, Const(np.array([-1, 2, 1, -2], np.int64)), None, Const(np.array([0, -1], np.int64)),
              attrs={"mode": "edge"})
    np.testing.assert_array_equal(got, np.pad(x[1:, :, :-2], [(0, 1), (0, 0), (2, 0)], mode="edge"))


def test_pad_types():
    x = tensor_type("f32", ["B", 3, "H", 7])
    pads = Const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
    assert out_type("Pad", [x, pads]) == "f32[B,3,?,9]"
    assert out_type("Pad", [x, Const(np.array([2, 3], np.int64)), None, Const(np.array([-1], np.int64))]) == \
        "f32[B,3,H,12]"
    assert out_type("Pad", [x, tensor_type("i64", [8])]) == "f32[?,?,?,?]"
    assert out_type("Pad", [x, tensor_type("i64", [2]), None, Const(np.array([1], np.int64))]) == "f32[B,?,H,7]"
    assert error_of("Pad", [x, Const(np.array([1, 1], np.int64))]) == (
        'Pad node "n": pads has 2 values, expected 8 (begin and end for each of 4 axes)')
    assert error_of("Pad", [x, Const(np.array([0, -4, 0, -4], np.int64)), None, Const(np.array([0, 3]))]) == (
        'Pad node "n": pads [0, -4, 0, -4] crop f32[B,3,H,7] below size 0')
    assert error_of("Pad", [x, pads], {"mode": "symmetric"}) == (
        "Pad node \"n\": mode must be one of constant, reflect, edge, wrap, got 'symmetric'")
    assert error_of("Pad", [x, pads, Const(np.float64(0))]) == (
        'Pad node "n": constant_value "c2" is f64[], expected f32 like the data')


# -- resize ---------------------------------------------------------------------------

def resize(x, attrs, scales=None, sizes=None):
    return run("Resize", x, None, Const(np.array(scales, np.float32)) if scales is not None else None,
               *([Const(np.array(sizes, np.int64))] if sizes is not None else []), attrs=attrs)


# torch mode, align_corners -> the ONNX attributes torch exports for it
TORCH_RESIZE = [
    ("nearest", None, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}),
    ("nearest-exact", None, {"mode": "nearest", "nearest_mode": "round_prefer_ceil"}),
    ("bilinear", False, {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}),
    ("bilinear", True, {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
    ("bicubic", False, {"mode": "cubic", "coordinate_transformation_mode": "pytorch_half_pixel"}),
    ("bicubic", True, {"mode": "cubic", "coordinate_transformation_mode": "align_corners"}),
]


@pytest.mark.parametrize("mode,align_corners,attrs", TORCH_RESIZE)
@pytest.mark.parametrize("size", [(10, 14), (3, 5), (7, 7)])
def test_resize_sizes_match_torch_interpolate(mode, align_corners, attrs, size):
    x = randn(2, 3, 5, 7)
    got = resize(x, attrs, sizes=[2, 3, *size])
    close(got, F.interpolate(t(x), size=size, mode=mode, align_corners=align_corners), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode,align_corners,attrs", TORCH_RESIZE)
@pytest.mark.parametrize("scales", [(2, 3), (1.5, 0.6)])
def test_resize_scales_match_torch_interpolate(mode, align_corners, attrs, scales):
    if align_corners and scales == (1.5, 0.6):
        pytest.skip("5 * 1.5 and 7 * 0.6 are not whole: flowc follows the ONNX conformance tests there, "
                    "which divide by the fractional length; torch divides by the rounded one")
    x = randn(1, 2, 5, 7)
    got = resize(x, attrs, scales=[1, 1, *scales])
    want = F.interpolate(t(x), scale_factor=scales, mode=mode, align_corners=align_corners)
    close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_resize_antialias_matches_torch(mode):
    # torch's antialiasing filter (PIL's) skips taps outside the input and uses a = -0.5 for cubic
    x = randn(1, 2, 17, 12)
    attrs = {"mode": "linear" if mode == "bilinear" else "cubic", "antialias": 1, "exclude_outside": 1,
             "cubic_coeff_a": -0.5}
    got = resize(x, {**attrs, "axes": [2, 3]}, sizes=[5, 7])
    close(got, F.interpolate(t(x), size=(5, 7), mode=mode, antialias=True), rtol=1e-4, atol=1e-4)


def test_resize_trilinear_and_u8():
    x = randn(1, 1, 3, 4, 5)
    got = resize(x, {"mode": "linear"}, scales=[1, 1, 2, 1.5, 0.6])
    close(got, F.interpolate(t(x), size=(6, 6, 3), mode="trilinear"), rtol=1e-4, atol=1e-4)
    img = rng.integers(0, 255, (1, 1, 4, 4)).astype(np.uint8)
    got = resize(img, {"mode": "linear"}, scales=[1, 1, 2, 2])
    want = F.interpolate(t(img).float(), scale_factor=2, mode="bilinear").numpy()
    np.testing.assert_array_equal(got, np.clip(np.rint(want), 0, 255).astype(np.uint8))


def test_resize_keep_aspect_ratio_and_crop():
    x = randn(1, 1, 4, 6)
    assert resize(x, {"keep_aspect_ratio_policy": "not_larger", "axes": [2, 3]}, sizes=[8, 9]).shape == (1, 1, 6, 9)
    assert resize(x, {"keep_aspect_ratio_policy": "not_smaller", "axes": [2, 3]}, sizes=[8, 9]).shape == (1, 1, 8, 12)
    roi = Const(np.array([0.25, 0.5, 0.75, 1.0], np.float32))
    got = run("Resize", x, roi, None, Const(np.array([3, 2], np.int64)),
              attrs={"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize", "axes": [2, 3],
                     "extrapolation_value": -1.0})
    rows, cols = np.array([0.75, 1.5, 2.25]), np.array([2.5, 5.0])   # start * (len-1) + i * (end-start) * ...
    lo_r, lo_c = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = (rows - lo_r)[:, None], (cols - lo_c)[None, :]
    hi_r, hi_c = np.minimum(lo_r + 1, 3), np.minimum(lo_c + 1, 5)
    v = x[0, 0]
    want = ((1 - fr) * ((1 - fc) * v[lo_r][:, lo_c] + fc * v[lo_r][:, hi_c])
            + fr * ((1 - fc) * v[hi_r][:, lo_c] + fc * v[hi_r][:, hi_c]))
    close(got[0, 0], want)


def test_resize_types():
    x = tensor_type("f32", ["B", 3, "H", 20])
    assert out_type("Resize", [x, None, Const(np.array([1, 1, 2, 1.5], np.float32))]) == "f32[B,3,2*H,30]"
    assert out_type("Resize", [x, None, Const(np.array([1, 1, 0.5, 0.5], np.float32))]) == "f32[B,3,?,10]"
    assert out_type("Resize", [x, None, None, Const(np.array([64, 64], np.int64))], {"axes": [-2, -1]}) == \
        "f32[B,3,64,64]"
    assert out_type("Resize", [x, None, tensor_type("f32", [2])], {"axes": [2, 3]}) == "f32[B,3,?,?]"
    assert out_type("Resize", [x, None, Const(np.zeros(0, np.float32)), Const(np.array([1, 3, 8, 8]))]) == \
        "f32[1,3,8,8]"


RESIZE_ERRORS = [
    ([None, None], {}, 'Resize node "n": exactly one of scales and sizes must be given, got neither'),
    ([None, Const(np.ones(4, np.float32)), Const(np.ones(4, np.int64))], {},
     'Resize node "n": exactly one of scales and sizes must be given, got both'),
    ([None, Const(np.ones(3, np.float32))], {},
     'Resize node "n": scales has 3 values, expected 4 (one per resized axis)'),
    ([None, Const(np.array([1, 1, 0, 2], np.float32))], {},
     'Resize node "n": scales must be positive, got [1.0, 1.0, 0.0, 2.0]'),
    ([None, Const(np.ones(4, np.float32))], {"mode": "bilinear"},
     "Resize node \"n\": mode must be one of nearest, linear, cubic, got 'bilinear'"),
    ([None, Const(np.ones(4, np.float32))], {"antialias": 1},
     'Resize node "n": antialias applies to modes linear and cubic only, not nearest'),
    ([None, Const(np.ones(4, np.float32))], {"coordinate_transformation_mode": "tf_crop_and_resize"},
     'Resize node "n": coordinate_transformation_mode tf_crop_and_resize needs the roi input'),
    ([None, Const(np.ones(2, np.float32))], {"axes": [2, -2]}, 'Resize node "n": axes [2, -2] name an axis twice'),
    ([None, Const(np.ones(2, np.float32))], {"axes": [2, 4]}, 'Resize node "n": axis 4 is out of range for rank 4'),
]


@pytest.mark.parametrize("rest,attrs,message", RESIZE_ERRORS)
def test_resize_errors(rest, attrs, message):
    assert error_of("Resize", [tensor_type("f32", [1, 3, 4, 4])] + rest, attrs) == message
