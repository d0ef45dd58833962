// Elementwise kernels over contiguous f32 buffers, and numpy-style broadcasting binary ops.
#pragma once

#include <cstdint>

#include "parallel.h"
#include "vmath.h"

enum flowc_unary_op {
  FLOWC_UNARY_RELU,
  FLOWC_UNARY_GELU_ERF,
  FLOWC_UNARY_GELU_TANH,
  FLOWC_UNARY_SIGMOID,
  FLOWC_UNARY_TANH,
  FLOWC_UNARY_HARDSWISH,
  FLOWC_UNARY_CLIP,  // uses lo, hi
  FLOWC_UNARY_EXP,
  FLOWC_UNARY_ERF,
};

enum flowc_binary_op { FLOWC_BINARY_ADD, FLOWC_BINARY_SUB, FLOWC_BINARY_MUL, FLOWC_BINARY_DIV };

constexpr int FLOWC_MAX_RANK = 6;

// y[i] = op(x[i]) for i < n; y may equal x.
void flowc_unary_f32(flowc_unary_op op, int64_t n, const float* x, float* y, float lo, float hi,
                     const flowc_parallel* par);

// y = a op b with numpy broadcasting: a_shape and b_shape have `rank` dims each (left-pad with 1s),
// y has their broadcast shape. y may equal a or b when that operand has y's shape.
void flowc_binary_f32(flowc_binary_op op, int rank, const int64_t* a_shape, const float* a,
                      const int64_t* b_shape, const float* b, float* y, const flowc_parallel* par);

namespace flowc {

// The inner loops, header-only so the generated fused kernels inline them.
template <class F>
inline void map_f32(int64_t n, const float* __restrict x, float* __restrict y, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
template <class F>
inline void map_inplace_f32(int64_t n, float* __restrict y, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(y[i]);
}
template <class F>
inline void zip_f32(int64_t n, const float* __restrict a, const float* __restrict b,
                    float* __restrict y, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}
template <class F>
inline void zip_scalar_b_f32(int64_t n, const float* __restrict a, float b, float* __restrict y, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b);
}
template <class F>
inline void zip_scalar_a_f32(int64_t n, float a, const float* __restrict b, float* __restrict y, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(a, b[i]);
}

}  // namespace flowc
