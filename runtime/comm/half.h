#ifndef FLOWC_COMM_HALF_H_
#define FLOWC_COMM_HALF_H_

// f16 (IEEE binary16) and bf16 to and from float on the host, for the communicators that sum
// half types in float: plain C++, since the host runtime builds without CUDA. Widening is
// exact. Narrowing rounds to nearest even whatever the FPU's rounding mode, keeps infinities,
// keeps NaNs NaN (made quiet), and gives f16 subnormals (or a signed zero) below 2^-14.

#include <cstdint>
#include <cstring>

namespace flowc {

inline uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

inline float bf16_to_float(uint16_t h) { return float_from_bits(uint32_t(h) << 16); }

inline uint16_t float_to_bf16(float value) {
  uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x0040u);
  // Adding just under half the dropped part, plus its kept neighbour's last bit, breaks ties to
  // even; a carry out of the largest finite values makes infinity, as it should.
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

inline float f16_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    float magnitude = float(mantissa) * 0x1p-24f;  // a subnormal (or zero): exact in float
    return sign ? -magnitude : magnitude;
  }
  return float_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline uint16_t float_to_f16(float value) {
  uint32_t bits = float_bits(value);
  auto sign = uint16_t((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  if (magnitude >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // 65520 and up (and inf) round to inf
  if (magnitude >= 0x38800000u) {                                  // 2^-14 and up: normal
    magnitude += 0xfffu + ((magnitude >> 13) & 1u);
    return uint16_t(sign | ((magnitude - 0x38000000u) >> 13));
  }
  uint32_t exponent = magnitude >> 23;
  if (exponent < 102) return sign;  // below 2^-25, at most half the smallest subnormal: zero
  // value = significand * 2^(exponent - 150), or significand >> (126 - exponent) units of 2^-24.
  uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126 - exponent;
  uint32_t units = significand >> shift, rest = significand & ((1u << shift) - 1), half = 1u << (shift - 1);
  units += rest > half || (rest == half && (units & 1u));  // 1024 units is 2^-14, the smallest normal
  return uint16_t(sign | units);
}

}  // namespace flowc

#endif  // FLOWC_COMM_HALF_H_
