"""Single ops on target cpu against the numpy reference (`flowc.ir.run`), f32 at rtol = atol =
1e-5 and other dtypes exactly, at odd, prime, unit and one larger shape each.

A C++ build costs a second or two, so each test builds one graph holding many cases, each
case its own node and output (named for the case, which failures print)."""
from __future__ import annotations

import numpy as np

from cases import Cases, floats, ints, refusal


# -- ops new to target cpu -------------------------------------------------------------

def test_pad(tmp_path, toolchain):
    c = Cases("pad")
    op = c.b.op
    x = c.input([2, 3, 7, 5])
    c["constant"] = op("Pad", x, ints(0, 0, 1, 2, 0, 1, 3, 0), floats(1.5))
    c["constant_crop"] = op("Pad", x, ints(0, -1, 2, -2, 0, 0, -3, 1))
    c["reflect"] = op("Pad", x, ints(0, 0, 2, 6, 0, 0, 3, 7), mode="reflect")     # wider than the axis
    c["reflect_crop"] = op("Pad", x, ints(0, 0, -2, 3, 0, 0, 1, -1), mode="reflect")
    c["edge"] = op("Pad", x, ints(1, 0, 2, 3, 0, 2, 1, 4), mode="edge")
    c["wrap"] = op("Pad", x, ints(0, 0, 8, 2, 0, 0, 9, 11), mode="wrap")
    c["axes"] = op("Pad", x, ints(2, 1, 3, 0), None, ints(-1, 1), mode="reflect")
    c["runtime_value"] = op("Pad", x, ints(0, 0, 1, 1, 0, 0, 2, 2), c.input([]))
    c["rank1_reflect"] = op("Pad", c.input([13]), ints(3, 12), mode="reflect")
    c["rank6_edge"] = op("Pad", c.input([2, 1, 3, 1, 2, 3]), ints(0, 1, 0, 2, 1, 0, 1, 0, 1, 0, 0, 2), mode="edge")
    c["unit_axis_reflect"] = op("Pad", c.input([3, 1, 6], "u8", low=0, high=255), ints(0, 2, 1, 0, 3, 1),
                                mode="reflect")
    c["i64_constant"] = op("Pad", c.input([4, 13], "i64"), ints(1, -2, 2, 3), np.array([7], np.int64))
    c["larger_reflect"] = op("Pad", c.input([1, 16, 64, 64]), ints(0, 0, 3, 3, 0, 0, 3, 3), mode="reflect")
    c.check(tmp_path)


def test_resize(tmp_path, toolchain):
    c = Cases("resize")
    op = c.b.op
    x = c.input([2, 3, 7, 5])
    up, down = floats(1, 1, 2, 3), floats(1, 1, 0.5, 0.5)
    for coords in ("half_pixel", "asymmetric", "align_corners"):
        for rounding in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
            c[f"nearest_{coords}_{rounding}"] = op("Resize", x, None, up, coordinate_transformation_mode=coords,
                                                   nearest_mode=rounding)
    for rounding in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        c[f"nearest_down_{rounding}"] = op("Resize", x, None, down, nearest_mode=rounding)
    for coords in ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"):
        c[f"linear_up_{coords}"] = op("Resize", x, None, floats(1, 1, 2, 1.6), mode="linear",
                                      coordinate_transformation_mode=coords)
        c[f"linear_down_{coords}"] = op("Resize", x, None, floats(1, 1, 0.6, 0.5), mode="linear",
                                        coordinate_transformation_mode=coords)
        c[f"cubic_{coords}"] = op("Resize", x, None, floats(1, 1, 1.5, 2), mode="cubic",
                                  coordinate_transformation_mode=coords)
    roi = floats(0, 0, -0.2, 0.1, 1, 1, 1.3, 0.9)   # reaches outside the input: extrapolated there
    for mode in ("nearest", "linear", "cubic"):
        c[f"tf_crop_{mode}"] = op("Resize", x, roi, None, ints(2, 3, 9, 11), mode=mode,
                                  coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=10.0)
    c["cubic_exclude_outside"] = op("Resize", x, None, floats(1, 1, 2.5, 1.5), mode="cubic", cubic_coeff_a=-0.5,
                                    exclude_outside=1)
    c["linear_antialias"] = op("Resize", x, None, floats(1, 1, 0.4, 0.6), mode="linear", antialias=1)
    c["cubic_antialias"] = op("Resize", x, None, floats(1, 1, 0.5, 0.7), mode="cubic", antialias=1)
    c["sizes_not_larger"] = op("Resize", x, None, None, ints(9, 13), axes=[2, 3], mode="linear",
                               keep_aspect_ratio_policy="not_larger")
    c["sizes_not_smaller"] = op("Resize", x, None, None, ints(9, 13), axes=[2, 3],
                                keep_aspect_ratio_policy="not_smaller")
    c["width_only"] = op("Resize", x, None, floats(3), axes=[3], mode="linear")
    c["height_only"] = op("Resize", x, None, floats(0.5), axes=[-2], mode="cubic")
    c["rank3_linear"] = op("Resize", c.input([3, 7, 13]), None, floats(1, 2, 0.5), mode="linear")
    c["rank5_nearest"] = op("Resize", c.input([1, 2, 3, 5, 4]), None, floats(1, 1, 1, 3, 2))
    c["rank2_cubic"] = op("Resize", c.input([7, 13]), None, None, ints(11, 6), mode="cubic")
    c["rank1_linear"] = op("Resize", c.input([13]), None, floats(2), mode="linear",
                           coordinate_transformation_mode="align_corners")
    c["unit_to_prime"] = op("Resize", c.input([1, 1, 1, 1]), None, None, ints(1, 1, 7, 13), mode="linear")
    c["i32_nearest"] = op("Resize", c.input([2, 3, 5, 4], "i32"), None, up)
    c["u8_nearest_crop"] = op("Resize", c.input([1, 2, 7, 5], "u8", low=0, high=255), floats(0.1, -0.3, 0.9, 1.2),
                              None, ints(5, 9), axes=[2, 3], coordinate_transformation_mode="tf_crop_and_resize",
                              extrapolation_value=7.0)
    big = c.input([1, 8, 32, 32])
    c["larger_bilinear"] = op("Resize", big, None, floats(1, 1, 2, 2), mode="linear")
    c["larger_nearest"] = op("Resize", big, None, floats(1, 1, 2, 2))
    c.check(tmp_path)


def test_conv_transpose(tmp_path, toolchain):
    c = Cases("conv_transpose")
    op = c.b.op
    x = c.input([2, 4, 5, 7])
    c["basic"] = op("ConvTranspose", x, c.weight([4, 3, 3, 3]))
    c["strided_padded"] = op("ConvTranspose", x, c.weight([4, 3, 3, 2]), c.weight([3]), strides=[2, 3],
                             pads=[1, 0, 1, 2], output_padding=[1, 2])
    c["dilated"] = op("ConvTranspose", x, c.weight([4, 2, 2, 3]), c.weight([2]), strides=[1, 2],
                      dilations=[2, 3], pads=[0, 1, 2, 0])
    c["grouped"] = op("ConvTranspose", x, c.weight([4, 3, 2, 3]), c.weight([6]), group=2, strides=[2, 2])
    c["depthwise"] = op("ConvTranspose", x, c.weight([4, 1, 3, 3]), c.weight([4]), group=4, strides=[2, 2],
                        pads=[1, 1, 1, 1], output_padding=[1, 1])
    c["pointwise"] = op("ConvTranspose", x, c.weight([4, 5, 1, 1]), c.weight([5]))
    c["output_shape"] = op("ConvTranspose", x, c.weight([4, 3, 3, 3]), strides=[2, 2], output_shape=[12, 15])
    c["same_upper"] = op("ConvTranspose", x, c.weight([4, 2, 3, 3]), strides=[2, 2], auto_pad="SAME_UPPER")
    c["one_d"] = op("ConvTranspose", c.input([2, 4, 13]), c.weight([4, 2, 3]), c.weight([2]), strides=[3],
                    pads=[1, 2])
    c["unit"] = op("ConvTranspose", c.input([1, 1, 1, 1]), c.weight([1, 1, 2, 2]))
    c["larger"] = op("ConvTranspose", c.input([1, 32, 16, 16]), c.weight([32, 16, 4, 4], 0.1), c.weight([16]),
                     strides=[2, 2], pads=[1, 1, 1, 1])
    c.check(tmp_path)


def test_softmax_on_any_axis(tmp_path, toolchain):
    c = Cases("softmax")
    op = c.b.op
    x = c.input([3, 7, 13, 5], scale=4.0)
    for axis in (0, 1, 2, -1):
        c[f"softmax_{axis}"] = op("Softmax", x, axis=axis)
    for axis in (1, 2):
        c[f"log_softmax_{axis}"] = op("LogSoftmax", x, axis=axis)
    wide = c.input([2, 5, 130], scale=30.0)   # columns past one block of the kernel; large logits
    c["softmax_wide"] = op("Softmax", wide, axis=1)
    c["log_softmax_wide"] = op("LogSoftmax", wide, axis=0)
    c["softmax_unit"] = op("Softmax", c.input([1, 1, 3]), axis=0)
    # logits far from 0: (x - max) - log(sum), not x - (max + log(sum)), which rounds log(sum) away
    far = np.array([[1000, 990, 995, 1000.5], [1e8, 1e8, 1e8, 1e8], [-3e4, -3e4 + 7, -3e4 + 1, -3e4]])
    big = c.input([2, 3, 4], data=np.stack([far, far[::-1]]))
    c["log_softmax_far_rows"] = op("LogSoftmax", big, axis=-1)
    c["log_softmax_far_columns"] = op("LogSoftmax", big, axis=1)
    c.check(tmp_path)


def test_maxpool_indices(tmp_path, toolchain):
    c = Cases("maxpool_indices")
    op = c.b.op
    x = c.input([2, 3, 7, 9])
    c["padded"], c["padded_i"] = op("MaxPool", x, outputs=2, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c["ceil_cm"], c["ceil_cm_i"] = op("MaxPool", x, outputs=2, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                                      storage_order=1)
    c["dilated"], c["dilated_i"] = op("MaxPool", x, outputs=2, kernel_shape=[2, 3], strides=[1, 2],
                                      dilations=[2, 1], pads=[0, 1, 1, 0])
    c["one_d"], c["one_d_i"] = op("MaxPool", c.input([2, 3, 13]), outputs=2, kernel_shape=[3], strides=[2],
                                  ceil_mode=1)
    ties = c.b.op("Floor", c.input([1, 2, 5, 5], scale=0.7))   # equal values: the first maximum wins
    c["ties"], c["ties_i"] = op("MaxPool", ties, outputs=2, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    c.check(tmp_path)


def test_attention(tmp_path, toolchain):
    """QK^T, scale and mask, softmax, xV: one FusedAttention step (fuse-attention), over row
    blocks of 32 queries (37 rows: a partial block), masks broadcast along heads and rows."""
    c = Cases("attention")
    op = c.op
    for rows in (7, 37):
        q, kt, v = c.input([2, 3, rows, 5]), c.input([2, 3, 5, 11]), c.input([2, 3, 11, 4])
        mask = c.input([2, 1, 1, 11], scale=3.0)
        scores = op("Add", op("Mul", op("MatMul", q, kt), np.array(0.5, np.float32)), mask)
        c[f"attention_{rows}"] = op("MatMul", op("Softmax", scores, axis=-1), v)
        q, kt, v = c.input([1, rows, 13]), c.input([1, 13, 6]), c.input([1, 6, 9])
        c[f"attention_plain_{rows}"] = op("MatMul", op("Softmax", op("MatMul", q, kt)), v)
    c.check(tmp_path)
    source = next(tmp_path.glob("model.c*")).read_text()   # model.cpp, or model.cu on target cuda
    assert source.count("// FusedAttention") == 4 and "// Softmax" not in source


# -- kernels target cpu had before, at odd and prime shapes ----------------------------

def test_matmul_conv_pool_norm_reduce(tmp_path, toolchain):
    c = Cases("compute")
    op = c.b.op
    c["matmul_batched"] = op("MatMul", c.input([2, 3, 7, 5]), c.input([2, 3, 5, 13]))
    c["matmul_broadcast_b"] = op("MatMul", c.input([2, 3, 7, 5]), c.input([5, 11]))
    c["matmul_broadcast_a"] = op("MatMul", c.input([7, 5]), c.input([3, 5, 13]))
    c["matmul_cross_batch"] = op("MatMul", c.input([2, 1, 7, 5]), c.input([1, 3, 5, 4]))
    c["matmul_vector"] = op("MatMul", c.input([13]), c.input([2, 13, 7]))
    c["matmul_weight"] = op("MatMul", c.input([2, 7, 13]), c.weight([13, 11]))
    c["matmul_unit"] = op("MatMul", c.input([1, 1]), c.input([1, 1]))
    w = c.input([11, 13])   # read transposed by the GEMM (absorb-transposes), with and without an epilogue
    c["matmul_trans_b"] = op("MatMul", c.input([2, 7, 13]), op("Transpose", w, perm=[1, 0]))
    c["matmul_trans_b_bias_relu"] = op("Relu", op("Add", op("MatMul", c.input([5, 13]), op("Transpose", w)),
                                                  c.weight([11])))
    x = c.input([2, 6, 11, 13])
    c["conv_grouped"] = op("Conv", x, c.weight([9, 2, 3, 3]), c.weight([9]), group=3, strides=[2, 1],
                           pads=[1, 2, 0, 1], dilations=[1, 2])
    c["conv_depthwise3_s2"] = op("Conv", x, c.weight([6, 1, 3, 3]), c.weight([6]), group=6, strides=[2, 2],
                                 pads=[1, 1, 1, 1])
    c["conv_depthwise5"] = op("Conv", x, c.weight([6, 1, 5, 5]), group=6, pads=[2, 2, 2, 2])
    c["conv_pointwise"] = op("Conv", x, c.weight([7, 6, 1, 1]))
    c["conv_strided_dilated"] = op("Conv", x, c.weight([5, 6, 3, 2]), strides=[3, 2], dilations=[2, 3],
                                   pads=[2, 0, 1, 3])
    c["conv_1d"] = op("Conv", c.input([2, 3, 17]), c.weight([4, 3, 5]), c.weight([4]), strides=[2], pads=[2, 1])
    c["maxpool_ceil_pads"] = op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0], ceil_mode=1)
    c["maxpool_1d"] = op("MaxPool", c.input([2, 3, 13]), kernel_shape=[2], strides=[2], ceil_mode=1)
    for include in (0, 1):
        c[f"avgpool_ceil_pads_{include}"] = op("AveragePool", x, kernel_shape=[3, 2], strides=[2, 3],
                                               pads=[1, 0, 1, 1], ceil_mode=1, count_include_pad=include)
    c["avgpool_1d"] = op("AveragePool", c.input([2, 3, 13]), kernel_shape=[3], strides=[2], pads=[1, 1])
    c["global_avgpool"] = op("GlobalAveragePool", x)
    y = c.input([3, 7, 13])
    c["layer_norm_last"] = op("LayerNormalization", y, c.weight([13]), c.weight([13]))
    c["layer_norm_two_axes"] = op("LayerNormalization", y, c.weight([7, 13]), axis=1, epsilon=1e-3)
    z = c.input([3, 7, 13, 5])
    c["reduce_mean_middle"] = op("ReduceMean", z, ints(1), keepdims=0)
    c["reduce_sum_middle_two"] = op("ReduceSum", z, ints(1, 2))
    c["reduce_mean_first"] = op("ReduceMean", z, ints(0))
    c["reduce_sum_last"] = op("ReduceSum", z, ints(-1), keepdims=0)
    c["reduce_mean_larger"] = op("ReduceMean", c.input([4, 257, 31]), ints(1))
    c.check(tmp_path)


def test_data_movement(tmp_path, toolchain):
    c = Cases("data_movement")
    op = c.b.op
    x = c.input([2, 3, 7, 5])
    c["transpose_nhwc"] = op("Transpose", x, perm=[0, 2, 3, 1])
    c["transpose_mixed"] = op("Transpose", x, perm=[3, 1, 0, 2])
    c["transpose_default"] = op("Transpose", c.input([13, 7]))
    c["transpose_i64"] = op("Transpose", c.input([3, 1, 11], "i64"), perm=[2, 0, 1])
    c["transpose_larger"] = op("Transpose", c.input([67, 129]))
    c["gather_axis1"] = op("Gather", x, np.array([[0, -1], [2, 1]], np.int64), axis=1)
    c["gather_last_i32"] = op("Gather", x, np.array([4, 0, -2], np.int32), axis=-1)
    c["gather_scalar"] = op("Gather", x, np.array(1, np.int64), axis=0)
    c["gather_runtime"] = op("Gather", x, c.input([5], "i64", low=-7, high=7), axis=2)
    c["concat_axis1"] = op("Concat", x, c.input([2, 1, 7, 5]), c.input([2, 5, 7, 5]), axis=1)
    c["concat_last"] = op("Concat", x, c.input([2, 3, 7, 2]), axis=-1)
    c["concat_first_i32"] = op("Concat", c.input([1, 13], "i32"), c.input([2, 13], "i32"), axis=0)
    c["split_a"], c["split_b"] = op("Split", x, ints(2, 5), axis=2)
    c["split_c"], c["split_d"], c["split_e"] = op("Split", c.input([13, 3]), axis=0, num_outputs=3)
    c["slice_steps"] = op("Slice", x, ints(1, 6), ints(7, -100), ints(2, 3), ints(2, -2))
    c["slice_step3"] = op("Slice", x, ints(0, 1), ints(100, 3), ints(1, 0), ints(3, 1))
    c["slice_negative_start"] = op("Slice", c.input([13]), ints(-4), ints(-14), None, ints(-3))
    c.check(tmp_path)


# -- what target cpu refuses ------------------------------------------------------------


def test_refusals_name_the_case(tmp_path):
    def channels(b):
        return b.op("Resize", b.input("x", "f32", [1, 3, 4, 4]), None, floats(1, 2, 2, 2), name="up")
    assert refusal(channels, tmp_path) == ('op Resize (node "up") is not supported by target cpu yet: it resizes '
                                           'f32[1,3,4,4] to f32[1,6,8,8] (target cpu resizes the last two axes only)')

    def linear_int(b):
        return b.op("Resize", b.input("x", "i32", [1, 3, 4, 4]), None, floats(1, 1, 2, 2), mode="linear", name="up")
    assert refusal(linear_int, tmp_path) == ('op Resize (node "up") is not supported by target cpu yet: mode linear '
                                             'on i32[1,3,4,4] (target cpu interpolates f32; nearest takes any dtype)')

    def conv3d(b):
        x = b.input("x", "f32", [1, 2, 3, 3, 3])
        return b.op("ConvTranspose", x, np.ones((2, 1, 2, 2, 2), np.float32), name="ct")
    assert refusal(conv3d, tmp_path) == ('op ConvTranspose (node "ct") is not supported by target cpu yet: 3-D '
                                         'transposed convolution (target cpu has 1-D and 2-D)')

    def pad_empty(b):
        return b.op("Pad", b.input("x", "f32", [2, 3]), ints(0, -3, 0, 1), mode="edge", name="p")
    assert refusal(pad_empty, tmp_path) == ('Pad node "p": mode \'edge\' cannot pad an axis cropped to nothing '
                                            '(sizes left after the negative pads: [2, 0])')

    def pad_past(b):
        return b.op("Pad", b.input("x", "f32", [3, 2]), ints(0, 5, 0, -4), mode="edge", name="p")
    assert refusal(pad_past, tmp_path) == ('Pad node "p": mode \'edge\' cannot pad an axis cropped to nothing '
                                           '(sizes left after the negative pads: [3, -2])')
