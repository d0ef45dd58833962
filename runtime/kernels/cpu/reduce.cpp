#include "reduce.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "schedule.h"

namespace {

namespace schedule = flowc::cpu::schedule;
constexpr int kLanes = schedule::reduce::kLanes;
// Columns one task of a middle-axis loop keeps in its accumulators.
constexpr int64_t kBlock = schedule::reduce::kColumns;

// A reduction is a map of each element, then a combine of the mapped values from an identity.
struct Same { static float map(float v) { return v; } };
struct Square { static float map(float v) { return v * v; } };
struct Abs { static float map(float v) { return std::fabs(v); } };

struct Add {
  static float identity() { return 0.0f; }
  static float combine(float a, float b) { return a + b; }
};
struct Multiply {
  static float identity() { return 1.0f; }
  static float combine(float a, float b) { return a * b; }
};
// A NaN, once met, stays (numpy's max and min propagate it).
struct Max {
  static float identity() { return -INFINITY; }
  static float combine(float a, float b) { return (b > a || b != b) ? b : a; }
};
struct Min {
  static float identity() { return INFINITY; }
  static float combine(float a, float b) { return (b < a || b != b) ? b : a; }
};

// Calls run(Map{}, Combine{}) for `op` (all kinds but LOG_SUM_EXP).
template <class Run>
void dispatch(flowc_reduce_op op, Run&& run) {
  switch (op) {
    case FLOWC_REDUCE_MAX: return run(Same{}, Max{});
    case FLOWC_REDUCE_MIN: return run(Same{}, Min{});
    case FLOWC_REDUCE_PROD: return run(Same{}, Multiply{});
    case FLOWC_REDUCE_SUM_SQUARE:
    case FLOWC_REDUCE_L2: return run(Square{}, Add{});
    case FLOWC_REDUCE_L1: return run(Abs{}, Add{});
    default: return run(Same{}, Add{});  // SUM, MEAN, LOG_SUM
  }
}

float finish(flowc_reduce_op op, float v, int64_t r) {
  switch (op) {
    case FLOWC_REDUCE_MEAN: return v / (float)r;  // 0 / 0: NaN over no elements, as numpy
    case FLOWC_REDUCE_L2: return std::sqrt(v);
    case FLOWC_REDUCE_LOG_SUM: return std::log(v);
    default: return v;
  }
}

// One contiguous row in kLanes independent partial results (vectorises; shorter error chains).
template <class Map, class Combine>
float fold_row(int64_t n, const float* __restrict x) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = Combine::identity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = Combine::combine(acc[j], Map::map(x[i + j]));
  float s = Combine::identity();
  for (; i < n; ++i) s = Combine::combine(s, Map::map(x[i]));
  for (int j = 0; j < kLanes; ++j) s = Combine::combine(s, acc[j]);
  return s;
}

// acc[i] = fold over k < r of x[k * stride + i], for i < count: each row adds to all columns.
template <class Map, class Combine>
void fold_columns(int64_t r, int64_t stride, int64_t count, const float* __restrict x, float* __restrict acc) {
  for (int64_t i = 0; i < count; ++i) acc[i] = Combine::identity();
  for (int64_t k = 0; k < r; ++k) {
    const float* __restrict row = x + k * stride;
    for (int64_t i = 0; i < count; ++i) acc[i] = Combine::combine(acc[i], Map::map(row[i]));
  }
}

// The shift of log-sum-exp: the largest finite element, 0 when there is none (all infinite or
// no elements), so exp never sees inf - inf. A NaN is skipped here and poisons the sum instead.
inline float shift_of(float largest_finite) { return largest_finite == -INFINITY ? 0.0f : largest_finite; }
inline bool finite_above(float v, float m) { return v > m && v < INFINITY; }

float log_sum_exp_row(int64_t n, const float* x) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = finite_above(x[i], m) ? x[i] : m;
  m = shift_of(m);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  return std::log(s) + m;
}

void log_sum_exp_columns(int64_t r, int64_t stride, int64_t count, const float* x, float* y) {
  float m[kBlock];
  for (int64_t i = 0; i < count; ++i) m[i] = -INFINITY, y[i] = 0.0f;
  for (int64_t k = 0; k < r; ++k)
    for (int64_t i = 0; i < count; ++i) m[i] = finite_above(x[k * stride + i], m[i]) ? x[k * stride + i] : m[i];
  for (int64_t i = 0; i < count; ++i) m[i] = shift_of(m[i]);
  for (int64_t k = 0; k < r; ++k)
    for (int64_t i = 0; i < count; ++i) y[i] += std::exp(x[k * stride + i] - m[i]);
  for (int64_t i = 0; i < count; ++i) y[i] = std::log(y[i]) + m[i];
}

// Runs body(o, first column, column count) over [outer, inner] in blocks of kBlock columns.
template <class Body>
void column_blocks(const flowc_parallel* par, int64_t outer, int64_t inner, int64_t work_per_column, Body&& body) {
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  flowc::parallel_for(par, outer * blocks, schedule::reduce::kGrain / (work_per_column * kBlock + 1) + 1,
                      [&](int64_t lo, int64_t hi) {
                        for (int64_t t = lo; t < hi; ++t) {
                          const int64_t o = t / blocks, first = (t % blocks) * kBlock;
                          body(o, first, std::min(kBlock, inner - first));
                        }
                      });
}

// Whether v displaces the best so far: strictly better (or as good, for the last on ties); the
// first NaN (or the last) wins outright.
template <bool Largest, bool Last>
inline bool displaces(float v, float best) {
  if (v != v) return Last || best == best;
  if (Last) return Largest ? v >= best : v <= best;
  return Largest ? v > best : v < best;
}

template <bool Largest, bool Last>
void arg_reduce(int64_t outer, int64_t n, int64_t inner, const float* x, int64_t* y, const flowc_parallel* par) {
  if (inner == 1) {
    flowc::parallel_for(par, outer, schedule::reduce::kGrain / (n + 1) + 1, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        const float* row = x + o * n;
        float best = row[0];
        int64_t at = 0;
        for (int64_t k = 1; k < n; ++k)
          if (displaces<Largest, Last>(row[k], best)) best = row[k], at = k;
        y[o] = at;
      }
    });
    return;
  }
  column_blocks(par, outer, inner, n, [&](int64_t o, int64_t first, int64_t count) {
    float best[kBlock];
    const float* base = x + o * n * inner + first;
    int64_t* at = y + o * inner + first;
    for (int64_t i = 0; i < count; ++i) best[i] = base[i], at[i] = 0;
    for (int64_t k = 1; k < n; ++k)
      for (int64_t i = 0; i < count; ++i) {
        const float v = base[k * inner + i];
        if (displaces<Largest, Last>(v, best[i])) best[i] = v, at[i] = k;
      }
  });
}

template <class T>
void cumsum(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse, const T* x, T* y,
            const flowc_parallel* par) {
  column_blocks(par, outer, inner, n, [&](int64_t o, int64_t first, int64_t count) {
    T acc[kBlock];
    for (int64_t i = 0; i < count; ++i) acc[i] = T(0);
    for (int64_t s = 0; s < n; ++s) {
      const int64_t k = reverse ? n - 1 - s : s;
      const T* xr = x + (o * n + k) * inner + first;
      T* yr = y + (o * n + k) * inner + first;
      if (exclusive) {
        for (int64_t i = 0; i < count; ++i) {
          const T v = xr[i];
          yr[i] = acc[i];
          acc[i] = T(acc[i] + v);
        }
      } else {
        for (int64_t i = 0; i < count; ++i) yr[i] = acc[i] = T(acc[i] + xr[i]);
      }
    }
  });
}

// a > b with a NaN above every number.
inline bool above(float a, float b) { return a != a ? b == b : a > b; }

}  // namespace

void flowc_reduce_trailing_f32(flowc_reduce_op op, int64_t outer, int64_t inner, const float* x,
                               float* y, const flowc_parallel* par) {
  flowc::parallel_for(par, outer, schedule::reduce::kGrain / (inner + 1) + 1, [&](int64_t lo, int64_t hi) {
    if (op == FLOWC_REDUCE_LOG_SUM_EXP) {
      for (int64_t i = lo; i < hi; ++i) y[i] = log_sum_exp_row(inner, x + i * inner);
      return;
    }
    dispatch(op, [&](auto map, auto combine) {
      using M = decltype(map);
      using C = decltype(combine);
      for (int64_t i = lo; i < hi; ++i) y[i] = finish(op, fold_row<M, C>(inner, x + i * inner), inner);
    });
  });
}

void flowc_reduce_middle_f32(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner,
                             const float* x, float* y, const flowc_parallel* par) {
  column_blocks(par, outer, inner, r, [&](int64_t o, int64_t first, int64_t count) {
    const float* base = x + o * r * inner + first;
    float* out = y + o * inner + first;
    if (op == FLOWC_REDUCE_LOG_SUM_EXP) {
      log_sum_exp_columns(r, inner, count, base, out);
      return;
    }
    dispatch(op, [&](auto map, auto combine) {
      fold_columns<decltype(map), decltype(combine)>(r, inner, count, base, out);
    });
    for (int64_t i = 0; i < count; ++i) out[i] = finish(op, out[i], r);
  });
}

void flowc_arg_reduce_f32(bool largest, bool last, int64_t outer, int64_t n, int64_t inner,
                          const float* x, int64_t* y, const flowc_parallel* par) {
  if (largest)
    (last ? arg_reduce<true, true> : arg_reduce<true, false>)(outer, n, inner, x, y, par);
  else
    (last ? arg_reduce<false, true> : arg_reduce<false, false>)(outer, n, inner, x, y, par);
}

void flowc_cumsum_f32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const float* x, float* y, const flowc_parallel* par) {
  cumsum(outer, n, inner, exclusive, reverse, x, y, par);
}
void flowc_cumsum_f64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const double* x, double* y, const flowc_parallel* par) {
  cumsum(outer, n, inner, exclusive, reverse, x, y, par);
}
void flowc_cumsum_i32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const int32_t* x, int32_t* y, const flowc_parallel* par) {
  cumsum(outer, n, inner, exclusive, reverse, x, y, par);
}
void flowc_cumsum_i64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                      const int64_t* x, int64_t* y, const flowc_parallel* par) {
  cumsum(outer, n, inner, exclusive, reverse, x, y, par);
}

void flowc_topk_f32(bool largest, int64_t outer, int64_t n, int64_t inner, int64_t k, const float* x,
                    float* values, int64_t* indices, const flowc_parallel* par) {
  flowc::parallel_for(par, outer * inner, schedule::reduce::kTopkGrain / (n + 1) + 1, [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / inner, i = t % inner;
      const float* column = x + o * n * inner + i;
      std::iota(order.begin(), order.end(), int64_t{0});
      auto before = [&](int64_t a, int64_t b) {
        const float va = column[a * inner], vb = column[b * inner];
        if (largest) return above(va, vb) || (!above(vb, va) && a < b);
        return above(vb, va) || (!above(va, vb) && a < b);
      };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      for (int64_t j = 0; j < k; ++j) {
        values[(o * k + j) * inner + i] = column[order[size_t(j)] * inner];
        indices[(o * k + j) * inner + i] = order[size_t(j)];
      }
    }
  });
}
