#include "group_norm.h"

#include <cmath>

#include "schedule.h"

namespace {

namespace schedule = flowc::cpu::schedule;
constexpr int kLanes = schedule::group_norm::kLanes;

// Sum of (x - shift)^Power (Power 1 or 2) in kLanes partial sums (vectorises).
template <int Power>
float sum_of_deviations(int64_t n, const float* __restrict x, float shift) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float d = x[i + j] - shift;
      acc[j] += Power == 1 ? d : d * d;
    }
  float s = 0.0f;
  for (; i < n; ++i) s += Power == 1 ? x[i] - shift : (x[i] - shift) * (x[i] - shift);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

}  // namespace

void flowc_group_norm_f32(int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                          const float* x, const float* scale, const float* bias, float epsilon,
                          float* y, const flowc_parallel* par) {
  const int64_t per_group = channels / groups, n = per_group * spatial;
  // Two passes, the mean (as x[0] plus the mean of x - x[0]) then the mean square deviation from
  // it: little rounding when the mean is large against the spread.
  flowc::parallel_for(par, batch * groups, schedule::group_norm::kGrain / (n + 1) + 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const float* __restrict xg = x + t * n;
      float* __restrict yg = y + t * n;
      const float mean = xg[0] + sum_of_deviations<1>(n, xg, xg[0]) / (float)n;
      const float inv = 1.0f / std::sqrt(sum_of_deviations<2>(n, xg, mean) / (float)n + epsilon);
      const int64_t first = (t % groups) * per_group;
      for (int64_t c = 0; c < per_group; ++c) {
        const float a = inv * scale[first + c], b = bias[first + c];
        const float* __restrict xc = xg + c * spatial;
        float* __restrict yc = yg + c * spatial;
        for (int64_t s = 0; s < spatial; ++s) yc[s] = (xc[s] - mean) * a + b;  // no cancellation
      }
    }
  });
}
