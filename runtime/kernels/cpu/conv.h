// 2-D convolution over NCHW f32 tensors, weights OIHW (O = out channels, I = in channels / group).
#pragma once

#include <cstdint>

#include "parallel.h"

struct flowc_conv2d_params {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t group;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left, pad_bottom, pad_right;
  int64_t dilation_h, dilation_w;
  int64_t out_h, out_w;  // as the shape rule computed them (pads and strides already applied)
};

// Floats of scratch that flowc_conv2d_f32 needs (0 when it needs none); the memory plan gives it.
int64_t flowc_conv2d_workspace_f32(const flowc_conv2d_params* p, const flowc_parallel* par);

// y = conv(x, w) + bias (bias may be null). Depthwise 3x3/5x5 convs (group == in == out
// channels, dilation 1, stride 1 or 2) run a direct kernel; everything else im2col + GEMM.
void flowc_conv2d_f32(const flowc_conv2d_params* p, const float* x, const float* w,
                      const float* bias, float* y, float* workspace, const flowc_parallel* par);

// The two paths, callable directly for tests and benchmarks.
bool flowc_conv2d_is_depthwise_direct(const flowc_conv2d_params* p);
void flowc_conv2d_depthwise_f32(const flowc_conv2d_params* p, const float* x, const float* w,
                                const float* bias, float* y, const flowc_parallel* par);
void flowc_conv2d_im2col_f32(const flowc_conv2d_params* p, const float* x, const float* w,
                             const float* bias, float* y, float* workspace,
                             const flowc_parallel* par);

// 2-D transposed convolution over NCHW f32, weights [in_channels, out_channels / group, kh, kw].
struct flowc_conv_transpose2d_params {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t group;
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left;  // negative when output_shape asks for more than the full result
  int64_t dilation_h, dilation_w;
  int64_t out_h, out_w;  // as the shape rule computed them (output_padding already applied)
};

// Floats of scratch that flowc_conv_transpose2d_f32 needs (0 when it needs none).
int64_t flowc_conv_transpose2d_workspace_f32(const flowc_conv_transpose2d_params* p,
                                             const flowc_parallel* par);

// y = conv_transpose(x, w) + bias (bias may be null): per image and group, GEMM
// col[(m, r, s), (ih, iw)] = w_g^T @ x_g, then col2im adds each column into the output pixel
// (ih * stride - pad + r * dilation, ...) it lands on.
void flowc_conv_transpose2d_f32(const flowc_conv_transpose2d_params* p, const float* x,
                                const float* w, const float* bias, float* y, float* workspace,
                                const flowc_parallel* par);
