// Branch-free float math that the compiler vectorises inside loops (libm calls block that).
// Errors are a few ulp for exp/tanh/sigmoid and below 2e-7 absolute for erf.
#pragma once

#include <cstdint>
#include <cstring>

namespace flowc::vmath {

inline float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, 4); return i; }

inline float abs(float x) { return bits_to_float(float_to_bits(x) & 0x7fffffff); }
// Sign of s on magnitude m (m >= 0), and c ? a : b, as bit operations: the vectoriser if-converts
// these where it gives up on float selects ("control flow in loop") at baseline x86-64.
inline float with_sign_of(float m, float s) {
  return bits_to_float(float_to_bits(m) | (float_to_bits(s) & int32_t(0x80000000)));
}
inline float select(bool c, float a, float b) {
  int32_t mask = -int32_t(c);
  return bits_to_float((float_to_bits(a) & mask) | (float_to_bits(b) & ~mask));
}
inline float min(float a, float b) { return select(a < b, a, b); }
inline float max(float a, float b) { return select(a > b, a, b); }

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent bits.
inline float exp(float x) {
  x = min(max(x, -87.33654f), 88.72283f);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  float t = x * 1.44269504f + magic;
  int32_t n = float_to_bits(t) - float_to_bits(magic);
  float nf = t - magic;
  float r = x - nf * 0.693145752f;
  r = r - nf * 1.42860677e-6f;
  float p = 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // n + 127 can reach 255 or 0 at the clamp bounds: split 2^n in two factors to stay finite.
  int32_t half = n >> 1;
  return p * bits_to_float((half + 127) << 23) * bits_to_float((n - half + 127) << 23);
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

inline float tanh(float x) {
  float a = abs(x);
  // Large |x|: 1 - 2/(e^2|x| + 1); small |x|: odd polynomial (cancellation would cost accuracy).
  float e = exp(2.0f * min(a, 10.0f));  // tanh(10) rounds to 1
  float big = 1.0f - 2.0f / (e + 1.0f);
  float z = x * x;
  float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                  1.33314422036e-1f) * z - 3.33332819422e-1f) * z * a + a;
  return with_sign_of(select(a < 0.625f, small, big), x);
}

// Abramowitz & Stegun 7.1.26 refined: |error| < 1.5e-7.
inline float erf(float x) {
  float a = abs(x);
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
             0.254829592f) * t;
  return with_sign_of(1.0f - p * exp(-a * a), x);
}

inline float relu(float x) { return max(x, 0.0f); }
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f)); }
// 0.5 x (1 + tanh(u)) written as x * sigmoid(2u): no 1 + tanh cancellation for large negative x.
inline float gelu_tanh(float x) {
  return x / (1.0f + exp(-1.5957691216057308f * (x + 0.044715f * x * x * x)));
}
inline float hardswish(float x) { return x * min(max(x + 3.0f, 0.0f), 6.0f) * (1.0f / 6.0f); }
inline float clip(float x, float lo, float hi) { return min(max(x, lo), hi); }

}  // namespace flowc::vmath
