#include "elementwise.h"

#include <algorithm>

#include "schedule.h"

namespace {

using namespace flowc;

constexpr int64_t kMinPerThread = flowc::cpu::schedule::elementwise::kGrain;  // elements a task

template <class F>
void unary(int64_t n, const float* x, float* y, const flowc_parallel* par, F f) {
  parallel_for(par, n, kMinPerThread, [&](int64_t b, int64_t e) {
    if (x == y) map_inplace_f32(e - b, y + b, f);
    else map_f32(e - b, x + b, y + b, f);
  });
}

// Aliasing y with a or b is allowed, so the loops below index rather than use restrict pointers
// when they alias; the common non-aliased case takes the restrict path.
template <class F>
void zip(int64_t n, const float* a, int64_t as, const float* b, int64_t bs, float* y, F f) {
  if (as == 1 && bs == 1) {
    if (y != a && y != b) zip_f32(n, a, b, y, f);
    else for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (as == 1) {
    float bv = b[0];
    if (y != a) zip_scalar_b_f32(n, a, bv, y, f);
    else for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], bv);
  } else if (bs == 1) {
    float av = a[0];
    if (y != b) zip_scalar_a_f32(n, av, b, y, f);
    else for (int64_t i = 0; i < n; ++i) y[i] = f(av, b[i]);
  } else {
    float v = f(a[0], b[0]);
    for (int64_t i = 0; i < n; ++i) y[i] = v;
  }
}

template <class F>
void binary(int rank, const int64_t* a_shape, const float* a, const int64_t* b_shape, const float* b,
            float* y, const flowc_parallel* par, F f) {
  // Strides (0 where broadcast), then merge neighbouring dims whose strides chain.
  int64_t shape[FLOWC_MAX_RANK], as[FLOWC_MAX_RANK], bs[FLOWC_MAX_RANK];
  int64_t sa = 1, sb = 1;
  int64_t dims[FLOWC_MAX_RANK], das[FLOWC_MAX_RANK], dbs[FLOWC_MAX_RANK];
  for (int d = rank - 1; d >= 0; --d) {
    dims[d] = std::max(a_shape[d], b_shape[d]);
    das[d] = a_shape[d] == 1 ? 0 : sa;
    dbs[d] = b_shape[d] == 1 ? 0 : sb;
    sa *= a_shape[d];
    sb *= b_shape[d];
  }
  int r = 0;
  for (int d = 0; d < rank; ++d) {
    if (dims[d] == 1) continue;
    if (r > 0 && as[r - 1] == das[d] * dims[d] && bs[r - 1] == dbs[d] * dims[d]) {
      shape[r - 1] *= dims[d];
      as[r - 1] = das[d];
      bs[r - 1] = dbs[d];
    } else {
      shape[r] = dims[d], as[r] = das[d], bs[r] = dbs[d];
      ++r;
    }
  }
  if (r == 0) { y[0] = f(a[0], b[0]); return; }
  int64_t inner = shape[r - 1], ias = as[r - 1] ? 1 : 0, ibs = bs[r - 1] ? 1 : 0;
  int64_t rows = 1;
  for (int d = 0; d < r - 1; ++d) rows *= shape[d];
  if (rows == 1) {
    parallel_for(par, inner, kMinPerThread, [&](int64_t lo, int64_t hi) {
      zip(hi - lo, a + lo * ias, ias, b + lo * ibs, ibs, y + lo, f);
    });
    return;
  }
  parallel_for(par, rows, std::max<int64_t>(1, kMinPerThread / inner), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      int64_t oa = 0, ob = 0, rem = row;
      for (int d = r - 2; d >= 0; --d) {
        int64_t i = rem % shape[d];
        rem /= shape[d];
        oa += i * as[d];
        ob += i * bs[d];
      }
      zip(inner, a + oa, ias, b + ob, ibs, y + row * inner, f);
    }
  });
}

}  // namespace

void flowc_unary_f32(flowc_unary_op op, int64_t n, const float* x, float* y, float lo, float hi,
                     const flowc_parallel* par) {
  namespace m = flowc::vmath;
  switch (op) {
    case FLOWC_UNARY_RELU: return unary(n, x, y, par, [](float v) { return m::relu(v); });
    case FLOWC_UNARY_GELU_ERF: return unary(n, x, y, par, [](float v) { return m::gelu_erf(v); });
    case FLOWC_UNARY_GELU_TANH: return unary(n, x, y, par, [](float v) { return m::gelu_tanh(v); });
    case FLOWC_UNARY_SIGMOID: return unary(n, x, y, par, [](float v) { return m::sigmoid(v); });
    case FLOWC_UNARY_TANH: return unary(n, x, y, par, [](float v) { return m::tanh(v); });
    case FLOWC_UNARY_HARDSWISH: return unary(n, x, y, par, [](float v) { return m::hardswish(v); });
    case FLOWC_UNARY_CLIP: return unary(n, x, y, par, [lo, hi](float v) { return m::clip(v, lo, hi); });
    case FLOWC_UNARY_EXP: return unary(n, x, y, par, [](float v) { return m::exp(v); });
    case FLOWC_UNARY_ERF: return unary(n, x, y, par, [](float v) { return m::erf(v); });
  }
}

void flowc_binary_f32(flowc_binary_op op, int rank, const int64_t* a_shape, const float* a,
                      const int64_t* b_shape, const float* b, float* y, const flowc_parallel* par) {
  switch (op) {
    case FLOWC_BINARY_ADD: return binary(rank, a_shape, a, b_shape, b, y, par, [](float p, float q) { return p + q; });
    case FLOWC_BINARY_SUB: return binary(rank, a_shape, a, b_shape, b, y, par, [](float p, float q) { return p - q; });
    case FLOWC_BINARY_MUL: return binary(rank, a_shape, a, b_shape, b, y, par, [](float p, float q) { return p * q; });
    case FLOWC_BINARY_DIV: return binary(rank, a_shape, a, b_shape, b, y, par, [](float p, float q) { return p / q; });
  }
}
