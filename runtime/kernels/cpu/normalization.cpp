#include "normalization.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "schedule.h"
#include "vmath.h"

namespace {

namespace m = flowc::vmath;
namespace schedule = flowc::cpu::schedule;
constexpr int kLanes = schedule::normalization::kLanes;

// The larger of a running max and v, NaN once either is: m::max alone lets the next v replace a
// NaN.
inline float max_keeping_nan(float running, float v) {
  return m::select((running > v) | (running != running), running, v);
}

// numpy's softmax of a row whose max is NaN, -inf (all -inf) or +inf (exp(inf - inf)) is NaN
// throughout; the clamped m::exp would give finite values there instead.
inline bool finite_max(float mx) { return std::fabs(mx) <= FLT_MAX; }

// Max and sum of exp(x - max) of one row, each lane keeping its own running pair. The sum is NaN
// where the max is not finite, which makes every output of the row NaN.
void max_and_sum(int64_t n, const float* __restrict x, float* out_max, float* out_sum) {
  float mx[kLanes], sm[kLanes], total[kLanes];
  for (int j = 0; j < kLanes; ++j) mx[j] = -INFINITY, sm[j] = 0.0f, total[j] = 0.0f;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      float v = x[i + j], nm = m::max(mx[j], v);
      sm[j] = sm[j] * m::exp(mx[j] - nm) + m::exp(v - nm);
      mx[j] = nm;
      total[j] += v;
    }
  float row_max = -INFINITY, sum_x = 0.0f;
  for (int j = 0; j < kLanes; ++j) row_max = m::max(row_max, mx[j]), sum_x += total[j];
  for (int64_t k = i; k < n; ++k) row_max = m::max(row_max, x[k]), sum_x += x[k];
  // A NaN leaves no trace in the lane maxima (the next value replaces it) but makes the plain sum
  // of x NaN: one add per value where a max keeping NaN costs three. +inf with -inf make it NaN
  // too (the max is +inf anyway), as does a sum overflowing before it meets -inf: only then is the
  // row searched for a NaN.
  if (sum_x != sum_x)
    for (int64_t k = 0; k < n; ++k) row_max = max_keeping_nan(row_max, x[k]);
  if (!finite_max(row_max)) {
    *out_max = row_max;
    *out_sum = NAN;
    return;
  }
  float s = 0.0f;
  for (int j = 0; j < kLanes; ++j) s += mx[j] == -INFINITY ? 0.0f : sm[j] * m::exp(mx[j] - row_max);
  for (int64_t k = i; k < n; ++k) s += m::exp(x[k] - row_max);
  *out_max = row_max;
  *out_sum = s;
}

template <bool Log>
void softmax(int64_t rows, int64_t n, const float* x, float* y, const flowc_parallel* par) {
  flowc::parallel_for(par, rows, schedule::normalization::kGrain / (n + 1) + 1, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* xr = x + r * n;
      float* yr = y + r * n;
      float mx, sum;
      max_and_sum(n, xr, &mx, &sum);
      if (Log) {
        // x - max first, as numpy: max + log(sum) would round log(sum) away at large logits.
        const float log_sum = std::log(sum);
        for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - mx) - log_sum;
      } else {
        float inv = 1.0f / sum;
        for (int64_t i = 0; i < n; ++i) yr[i] = m::exp(xr[i] - mx) * inv;
      }
    }
  });
}

// Softmax over the middle axis of [rows, n, inner], in blocks of kBlock columns: a pass for the
// max, one for the sum, one to write, each a vector loop over the block.
template <bool Log>
void softmax_strided(int64_t rows, int64_t n, int64_t inner, const float* x, float* y,
                     const flowc_parallel* par) {
  constexpr int64_t kBlock = schedule::normalization::kColumns;
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  const int64_t min_jobs = schedule::normalization::kGrain / (n * kBlock) + 1;
  flowc::parallel_for(par, rows * blocks, min_jobs, [&](int64_t lo, int64_t hi) {
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t r = job / blocks, c0 = job % blocks * kBlock;
      const int64_t width = std::min(kBlock, inner - c0);
      const float* xb = x + r * n * inner + c0;
      float* yb = y + r * n * inner + c0;
      float mx[kBlock], sum[kBlock];
      for (int64_t j = 0; j < width; ++j) mx[j] = -INFINITY, sum[j] = 0.0f;
      for (int64_t k = 0; k < n; ++k) {
        const float* __restrict xr = xb + k * inner;
        for (int64_t j = 0; j < width; ++j) mx[j] = max_keeping_nan(mx[j], xr[j]);
      }
      for (int64_t k = 0; k < n; ++k) {
        const float* __restrict xr = xb + k * inner;
        for (int64_t j = 0; j < width; ++j) sum[j] += m::exp(xr[j] - mx[j]);
      }
      for (int64_t j = 0; j < width; ++j)
        if (!finite_max(mx[j])) sum[j] = NAN;
      if (Log) {
        for (int64_t j = 0; j < width; ++j) sum[j] = std::log(sum[j]);
        for (int64_t k = 0; k < n; ++k) {
          const float* __restrict xr = xb + k * inner;
          float* __restrict yr = yb + k * inner;
          for (int64_t j = 0; j < width; ++j) yr[j] = (xr[j] - mx[j]) - sum[j];
        }
      } else {
        for (int64_t j = 0; j < width; ++j) sum[j] = 1.0f / sum[j];
        for (int64_t k = 0; k < n; ++k) {
          const float* __restrict xr = xb + k * inner;
          float* __restrict yr = yb + k * inner;
          for (int64_t j = 0; j < width; ++j) yr[j] = m::exp(xr[j] - mx[j]) * sum[j];
        }
      }
    }
  });
}

}  // namespace

void flowc_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x, float* y,
                               const flowc_parallel* par) {
  softmax_strided<false>(rows, n, inner, x, y, par);
}

void flowc_log_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x,
                                   float* y, const flowc_parallel* par) {
  softmax_strided<true>(rows, n, inner, x, y, par);
}

void flowc_softmax_f32(int64_t rows, int64_t n, const float* x, float* y, const flowc_parallel* par) {
  softmax<false>(rows, n, x, y, par);
}

void flowc_log_softmax_f32(int64_t rows, int64_t n, const float* x, float* y,
                           const flowc_parallel* par) {
  softmax<true>(rows, n, x, y, par);
}

void flowc_layer_norm_f32(int64_t rows, int64_t n, const float* x, const float* gamma,
                          const float* beta, float epsilon, float* y, const flowc_parallel* par) {
  flowc::parallel_for(par, rows, schedule::normalization::kGrain / (n + 1) + 1, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* __restrict xr = x + r * n;
      float* yr = y + r * n;
      // Sums of x - x[0] rather than x keep var = E[d^2] - E[d]^2 free of cancellation
      // when the mean is large against the spread.
      const float shift = xr[0];
      float s1[kLanes] = {0}, s2[kLanes] = {0};
      int64_t i = 0;
      for (; i + kLanes <= n; i += kLanes)
        for (int j = 0; j < kLanes; ++j) {
          float d = xr[i + j] - shift;
          s1[j] += d;
          s2[j] += d * d;
        }
      float t1 = 0.0f, t2 = 0.0f;
      for (; i < n; ++i) {
        float d = xr[i] - shift;
        t1 += d;
        t2 += d * d;
      }
      for (int j = 0; j < kLanes; ++j) t1 += s1[j], t2 += s2[j];
      const float mean_d = t1 / (float)n;
      const float var = m::max(t2 / (float)n - mean_d * mean_d, 0.0f);
      const float inv = 1.0f / std::sqrt(var + epsilon);
      const float mean = shift + mean_d;
      if (beta) for (int64_t k = 0; k < n; ++k) yr[k] = (xr[k] - mean) * inv * gamma[k] + beta[k];
      else for (int64_t k = 0; k < n; ++k) yr[k] = (xr[k] - mean) * inv * gamma[k];
    }
  });
}
