// 2-D max/average pooling over NCHW f32 tensors, and global average pooling.
#pragma once

#include <cstdint>

#include "parallel.h"

struct flowc_pool2d_params {
  int64_t batch, channels, in_h, in_w;
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left, pad_bottom, pad_right;
  int64_t dilation_h, dilation_w;
  int64_t out_h, out_w;  // as the shape rule computed them (ceil_mode already applied)
};

// Windows lying wholly in padding give -inf, as ONNX's reference does.
void flowc_maxpool2d_f32(const flowc_pool2d_params* p, const float* x, float* y,
                         const flowc_parallel* par);

// MaxPool with its Indices output: the flat position in x of each maximum (row-major, or with
// column_major the first spatial axis fastest, as storage_order 1), the first maximum in the
// window's row-major tap order winning ties. As ONNX's reference: a tap in the padding reads
// -inf, and a window whose taps are all -inf keeps its first tap (which may lie in the padding).
void flowc_maxpool2d_indices_f32(const flowc_pool2d_params* p, bool column_major, const float* x,
                                 float* y, int64_t* indices, const flowc_parallel* par);

// count_include_pad: divide by the window's taps inside the padded input (ONNX's rule; a window
// reaching past the bottom/right pad under ceil_mode still excludes that part), else by its taps
// inside the input.
void flowc_avgpool2d_f32(const flowc_pool2d_params* p, bool count_include_pad, const float* x,
                         float* y, const flowc_parallel* par);

// y[n, c] = mean of x[n, c, :, :] (any spatial rank: `spatial` = product of the spatial dims).
void flowc_global_avgpool_f32(int64_t batch_channels, int64_t spatial, const float* x, float* y,
                              const flowc_parallel* par);
