// numpy's scalar rules that generated elementwise code calls as flowc::steps::<name> (see
// codegen/cpu/elementwise.py's OPS table): one definition for both targets, host functions on
// the CPU and __host__ __device__ ones in a CUDA translation unit.
#pragma once

#include <cmath>
#include <type_traits>

#ifdef __CUDACC__
#define FLOWC_SCALAR __host__ __device__ __forceinline__
#else
#define FLOWC_SCALAR inline
#endif

namespace flowc::steps {

// numpy's max/min: a NaN operand wins.
template <class T>
FLOWC_SCALAR T nan_max(T a, T b) { return (a != a || a > b) ? a : b; }
template <class T>
FLOWC_SCALAR T nan_min(T a, T b) { return (a != a || a < b) ? a : b; }

// numpy's mod: the remainder takes the divisor's sign; 0 for an integer divisor of 0.
template <class T>
FLOWC_SCALAR T py_mod(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    T r = std::fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  } else {
    if (b == 0) return T(0);
    T r = T(a % b);
    return (r != 0 && ((r < 0) != (b < 0))) ? T(r + b) : r;
  }
}

template <class T>
FLOWC_SCALAR T int_div(T a, T b) { return b == 0 ? T(0) : T(a / b); }

template <class T>
FLOWC_SCALAR T int_fmod(T a, T b) { return b == 0 ? T(0) : T(a % b); }

template <class T>
FLOWC_SCALAR T softplus(T x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

template <class T>
FLOWC_SCALAR T sign(T x) { return x > 0 ? T(1) : x < 0 ? T(-1) : x; }

}  // namespace flowc::steps

#undef FLOWC_SCALAR
