// The helpers that generated elementwise code calls (codegen/cpu/elementwise.py's OPS table), for
// CUDA: flowc::vmath (runtime/kernels/cpu/vmath.h) as __host__ __device__ functions, and
// flowc::steps from runtime/kernels/cpu/scalar.h (shared with the CPU), so the same expression
// text compiles in a kernel. Same formulas as the CPU's, through CUDA's libm (expf, tanhf, erff) instead of vmath's
// polynomials: results agree within f32 rounding, except that exp here is not clamped (exp(100)
// is inf, exp(NaN) NaN, where vmath gives a large finite or a tiny value).
// Include it in place of vmath.h and flowc_steps.h, never next to them (same names).
//
// Half tensors (f16, bf16) are computed in float: flowc_round_* rounds an op's result to the type
// it is stored in, as the numpy reference rounds each op's half result.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "runtime/kernels/cpu/scalar.h"

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

FLOWC_HD float flowc_round_f16(float x) { return __half2float(__float2half_rn(x)); }
FLOWC_HD float flowc_round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

#undef FLOWC_HD
