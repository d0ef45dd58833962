// Reductions of f32 tensors viewed as [outer, r, inner] (r the reduced axes, merged), the index of
// the largest or smallest element along an axis, running sums along an axis, and top-k.
#pragma once

#include <cstdint>

#include "parallel.h"

// What a reduction computes over its r elements; numpy's semantics (NaN propagates through
// max and min), each kind's identity over no elements.
enum flowc_reduce_op {
  FLOWC_REDUCE_SUM,
  FLOWC_REDUCE_MEAN,
  FLOWC_REDUCE_MAX,
  FLOWC_REDUCE_MIN,
  FLOWC_REDUCE_PROD,
  FLOWC_REDUCE_SUM_SQUARE,
  FLOWC_REDUCE_L1,
  FLOWC_REDUCE_L2,
  FLOWC_REDUCE_LOG_SUM,
  FLOWC_REDUCE_LOG_SUM_EXP,  // log(sum(exp(x - m))) + m, m the largest finite element
};

// y[i] = op over x[i * inner .. (i + 1) * inner).
void flowc_reduce_trailing_f32(flowc_reduce_op op, int64_t outer, int64_t inner, const float* x,
                               float* y, const flowc_parallel* par);

// y[o, i] = op over k of x[o, k, i]: the reduced axes are not the last ones.
void flowc_reduce_middle_f32(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner,
                             const float* x, float* y, const flowc_parallel* par);

// y[o, i] = the k at which x[o, k, i] is largest (or smallest): the first one on ties, the last
// with `last`; a NaN counts as the extreme, as numpy's argmax does.
void flowc_arg_reduce_f32(bool largest, bool last, int64_t outer, int64_t n, int64_t inner,
                          const float* x, int64_t* y, const flowc_parallel* par);

// y[o, k, i] = sum of x[o, j, i] for j <= k (j < k when exclusive; from the end when reverse),
// summed in order as numpy's cumsum does. One function per dtype.
void flowc_cumsum_f32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const float* x, float* y, const flowc_parallel* par);
void flowc_cumsum_f64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const double* x, double* y, const flowc_parallel* par);
void flowc_cumsum_i32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const int32_t* x, int32_t* y, const flowc_parallel* par);
void flowc_cumsum_i64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const int64_t* x, int64_t* y, const flowc_parallel* par);

// The k largest (or smallest) of x[o, :, i] into values[o, :k, i], sorted, and their positions
// into indices; ties go to the lower position, a NaN counts as larger than any number.
void flowc_topk_f32(bool largest, int64_t outer, int64_t n, int64_t inner, int64_t k, const float* x,
                    float* values, int64_t* indices, const flowc_parallel* par);

namespace flowc {

// Sum of a contiguous run in 16 independent partial sums: vectorises, and keeps the error of a
// long row well below that of one running sum.
inline float sum_f32(int64_t n, const float* __restrict x) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += x[i];
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

}  // namespace flowc
