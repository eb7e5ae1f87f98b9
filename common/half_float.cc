#include "common/half_float.h"

#include <algorithm>
#include <cstring>

namespace shardps {
namespace {

uint32_t FloatBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

float BitsFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// float32: 1 sign, 8 exponent (bias 127), 23 mantissa bits.
// binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
// Rebiasing an exponent from binary16 to float32 adds 127 - 15 = 112.
constexpr uint32_t kF32Infinity = 0x7f800000;
constexpr uint32_t kF32MinHalfNormal = 0x38800000;  // 2^-14
constexpr uint32_t kRebias = 112;
constexpr uint32_t kHalfInfinity = 0x7c00;
constexpr uint32_t kHalfQuietBit = 0x0200;
constexpr int kMantissaShift = 23 - 10;

// v >> shift rounded to nearest, ties to even; 1 <= shift <= 31.
uint32_t ShiftRightRoundEven(uint32_t v, int shift) {
  const uint32_t kept = v >> shift;
  const uint32_t rest = v & ((uint32_t{1} << shift) - 1);
  const uint32_t half = uint32_t{1} << (shift - 1);
  const bool up = rest > half || (rest == half && (kept & 1) != 0);
  return kept + (up ? 1 : 0);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  if (exponent == 0x1f) {  // infinity or NaN; the payload moves up unchanged
    return BitsFloat(sign | kF32Infinity | (mantissa << kMantissaShift));
  }
  if (exponent != 0) {  // normal
    return BitsFloat(sign | ((exponent + kRebias) << 23) |
                     (mantissa << kMantissaShift));
  }
  if (mantissa == 0) return BitsFloat(sign);  // +-0
  // Subnormal: mantissa * 2^-24. Shift until the leading 1 reaches the
  // implicit-bit position (bit 10), lowering the exponent once per shift,
  // starting from 2^-14 (biased 127 - 14 = 113).
  uint32_t biased = kRebias + 1;
  while ((mantissa & 0x400) == 0) {
    mantissa <<= 1;
    --biased;
  }
  return BitsFloat(sign | (biased << 23) | ((mantissa & 0x3ff) << 13));
}

// |x| >= 2^-14 (magnitude bits). The rounding carry may ripple into the
// exponent, which is exactly right (0x3bff + 1 = 0x3c00 is 1.0); anything that
// lands on or past the infinity pattern is infinity.
uint16_t NormalToHalf(uint32_t magnitude) {
  const uint32_t rebiased = magnitude - (kRebias << 23);
  const uint32_t h = ShiftRightRoundEven(rebiased, kMantissaShift);
  return static_cast<uint16_t>(std::min(h, kHalfInfinity));
}

// |x| < 2^-14: a binary16 subnormal (units of 2^-24), or 0. With the implicit
// bit m = 1.mantissa * 2^23 and biased exponent e, |x| = m * 2^(e - 150), so
// |x| / 2^-24 = m >> (126 - e). A shift of 25 or more leaves less than half a
// unit (m < 2^24): 0. Rounding up from 0x3ff gives 0x400, the smallest normal.
uint16_t SubnormalToHalf(uint32_t magnitude) {
  const int biased = static_cast<int>(magnitude >> 23);
  const int shift = 126 - biased;
  if (shift > 24) return 0;
  const uint32_t m = (magnitude & 0x7fffff) | 0x800000;
  return static_cast<uint16_t>(ShiftRightRoundEven(m, shift));
}

uint16_t FloatToHalf(float f) {
  const uint32_t bits = FloatBits(f);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7fffffff;
  if (magnitude > kF32Infinity) {  // NaN: keep the top payload bits
    const uint32_t payload = (magnitude >> kMantissaShift) & 0x3ff;
    return static_cast<uint16_t>(sign | kHalfInfinity |
                                 (payload != 0 ? payload : kHalfQuietBit));
  }
  const uint16_t rounded = magnitude >= kF32MinHalfNormal
                               ? NormalToHalf(magnitude)
                               : SubnormalToHalf(magnitude);
  return static_cast<uint16_t>(sign | rounded);
}

// bfloat16 is the top half of a float32, so only the rounding needs care.
uint16_t FloatToBf16(float f) {
  const uint32_t bits = FloatBits(f);
  if ((bits & 0x7fffffff) > kF32Infinity) {  // NaN: keep the top payload bits
    const auto top = static_cast<uint16_t>(bits >> 16);
    return (top & 0x7f) != 0 ? top : static_cast<uint16_t>(top | 0x40);
  }
  // Round to nearest even: add just under half a unit, plus one when the kept
  // part is odd, and truncate. Overflow carries into the exponent and ends at
  // the infinity pattern, as it should; nothing passes bit 31 since the
  // largest finite magnitude is 0x7f7fffff.
  const uint32_t odd = (bits >> 16) & 1;
  return static_cast<uint16_t>((bits + 0x7fff + odd) >> 16);
}

// The i-th 16-bit value of `in`, which may be unaligned (a received frame).
uint16_t Load16(const void* in, size_t i) {
  uint16_t v;
  std::memcpy(&v, static_cast<const char*>(in) + 2 * i, sizeof(v));
  return v;
}

}  // namespace

void WidenF16(const void* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = HalfToFloat(Load16(in, i));
}

void WidenBf16(const void* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    out[i] = BitsFloat(static_cast<uint32_t>(Load16(in, i)) << 16);
  }
}

void NarrowF16(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = FloatToHalf(in[i]);
}

void NarrowBf16(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = FloatToBf16(in[i]);
}

}  // namespace shardps
