// The helpers that generated elementwise code calls (codegen/cpu/elementwise.py's OPS table), for
// CUDA: flowc::vmath (runtime/kernels/cpu/vmath.h) and flowc::steps (the CPU template
// flowc_steps.h) as __host__ __device__ functions, so the same expression text compiles in a
// kernel. Same formulas as the CPU's, through CUDA's libm (expf, tanhf, erff) instead of vmath's
// polynomials: results agree within f32 rounding, except that exp here is not clamped (exp(100)
// is inf, exp(NaN) NaN, where vmath gives a large finite or a tiny value).
// Include it in place of vmath.h and flowc_steps.h, never next to them (same names).
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#define FLOWC_HD __host__ __device__ __forceinline__

namespace flowc::vmath {

FLOWC_HD float abs(float x) { return ::fabsf(x); }
FLOWC_HD float select(bool c, float a, float b) { return c ? a : b; }
// As vmath: a > b ? a : b, so a NaN first operand yields the second.
FLOWC_HD float min(float a, float b) { return a < b ? a : b; }
FLOWC_HD float max(float a, float b) { return a > b ? a : b; }
FLOWC_HD float exp(float x) { return ::expf(x); }
FLOWC_HD float sigmoid(float x) { return 1.0f / (1.0f + ::expf(-x)); }
FLOWC_HD float tanh(float x) { return ::tanhf(x); }
FLOWC_HD float erf(float x) { return ::erff(x); }
FLOWC_HD float relu(float x) { return max(x, 0.0f); }
FLOWC_HD float gelu_erf(float x) { return 0.5f * x * (1.0f + ::erff(x * 0.70710678118654752f)); }
// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u), as vmath: no cancellation for large negative x.
FLOWC_HD float gelu_tanh(float x) {
  return x / (1.0f + ::expf(-1.5957691216057308f * (x + 0.044715f * x * x * x)));
}
FLOWC_HD float hardswish(float x) { return x * min(max(x + 3.0f, 0.0f), 6.0f) * (1.0f / 6.0f); }
FLOWC_HD float clip(float x, float lo, float hi) { return min(max(x, lo), hi); }

}  // namespace flowc::vmath

namespace flowc::steps {

// numpy's max/min: a NaN operand wins.
template <class T>
FLOWC_HD T nan_max(T a, T b) { return (a != a || a > b) ? a : b; }
template <class T>
FLOWC_HD T nan_min(T a, T b) { return (a != a || a < b) ? a : b; }

// numpy's mod: the remainder takes the divisor's sign; 0 for an integer divisor of 0.
template <class T>
FLOWC_HD T py_mod(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    T r;
    if constexpr (std::is_same_v<T, float>) r = ::fmodf(a, b);
    else r = ::fmod(double(a), double(b));
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  } else {
    if (b == 0) return T(0);
    T r = T(a % b);
    return (r != 0 && ((r < 0) != (b < 0))) ? T(r + b) : r;
  }
}

template <class T>
FLOWC_HD T int_div(T a, T b) { return b == 0 ? T(0) : T(a / b); }

template <class T>
FLOWC_HD T int_fmod(T a, T b) { return b == 0 ? T(0) : T(a % b); }

template <class T>
FLOWC_HD T softplus(T x) {
  if constexpr (std::is_same_v<T, float>) return x > 0 ? x + ::log1pf(::expf(-x)) : ::log1pf(::expf(x));
  else return x > 0 ? x + ::log1p(::exp(-x)) : ::log1p(::exp(x));
}

template <class T>
FLOWC_HD T sign(T x) { return x > 0 ? T(1) : x < 0 ? T(-1) : x; }

}  // namespace flowc::steps

#undef FLOWC_HD
