// Reductions over the trailing axes of f32 tensors, viewed as [outer, inner].
#pragma once

#include <cstdint>

#include "parallel.h"

enum flowc_reduce_op { FLOWC_REDUCE_SUM, FLOWC_REDUCE_MEAN };

// y[i] = sum (or mean) of x[i * inner .. (i + 1) * inner).
void flowc_reduce_trailing_f32(flowc_reduce_op op, int64_t outer, int64_t inner, const float* x,
                               float* y, const flowc_parallel* par);

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
