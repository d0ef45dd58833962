#include "reduce.h"

void flowc_reduce_trailing_f32(flowc_reduce_op op, int64_t outer, int64_t inner, const float* x,
                               float* y, const flowc_parallel* par) {
  const float scale = op == FLOWC_REDUCE_MEAN && inner > 0 ? 1.0f / (float)inner : 1.0f;
  flowc::parallel_for(par, outer, (1 << 14) / (inner + 1) + 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = flowc::sum_f32(inner, x + i * inner) * scale;
  });
}
