// 16-bit floats: widening is exact for every pattern, narrowing rounds to
// nearest even (at every boundary, and as the compiler's _Float16 does),
// widen-then-narrow is the identity, and NaN never becomes infinity.
#include "common/half_float.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace shardps {
namespace {

float Bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

uint32_t BitsOf(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

float WidenOneF16(uint16_t h) {
  float f;
  WidenF16(&h, &f, 1);
  return f;
}

float WidenOneBf16(uint16_t h) {
  float f;
  WidenBf16(&h, &f, 1);
  return f;
}

uint16_t NarrowOneF16(float f) {
  uint16_t h;
  NarrowF16(&f, &h, 1);
  return h;
}

uint16_t NarrowOneBf16(float f) {
  uint16_t h;
  NarrowBf16(&f, &h, 1);
  return h;
}

std::vector<uint16_t> AllPatterns() {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  return all;
}

// binary16 by its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m when
// e = 0; e = 31 is infinity (m = 0) or NaN.
double F16Value(uint16_t h) {
  const int e = (h >> 10) & 0x1f;
  const int m = h & 0x3ff;
  const double sign = (h & 0x8000) != 0 ? -1.0 : 1.0;
  if (e == 31) {
    return m == 0 ? sign * HUGE_VAL : std::numeric_limits<double>::quiet_NaN();
  }
  if (e == 0) return sign * std::ldexp(m, -24);
  return sign * std::ldexp(1024 + m, e - 25);
}

TEST_CASE("WidenF16 gives every binary16 value exactly", "[half_float]") {
  const std::vector<uint16_t> all = AllPatterns();
  std::vector<float> wide(all.size());
  WidenF16(all.data(), wide.data(), all.size());
  for (uint32_t i = 0; i < 65536; ++i) {
    INFO("pattern 0x" << std::hex << i);
    const double expected = F16Value(all[i]);
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(wide[i]));
    } else {
      REQUIRE(double{wide[i]} == expected);
      REQUIRE(std::signbit(wide[i]) == ((i & 0x8000) != 0));  // -0 too
    }
  }
}

TEST_CASE("known binary16 and bfloat16 values", "[half_float]") {
  CHECK(WidenOneF16(0x3c00) == 1.0f);
  CHECK(WidenOneF16(0xc000) == -2.0f);
  CHECK(WidenOneF16(0x7bff) == 65504.0f);
  CHECK(WidenOneF16(0x0001) == std::ldexp(1.0f, -24));     // smallest subnormal
  CHECK(WidenOneF16(0x03ff) == std::ldexp(1023.0f, -24));  // largest one
  CHECK(WidenOneF16(0x0400) == std::ldexp(1.0f, -14));     // smallest normal
  CHECK(WidenOneF16(0x3555) == 0.333251953125f);
  CHECK(WidenOneF16(0x7c00) == HUGE_VALF);
  CHECK(WidenOneF16(0xfc00) == -HUGE_VALF);
  CHECK(std::isnan(WidenOneF16(0x7e00)));
  CHECK(BitsOf(WidenOneF16(0x8000)) == 0x80000000u);  // -0

  CHECK(NarrowOneF16(1.0f) == 0x3c00);
  CHECK(NarrowOneF16(-2.0f) == 0xc000);
  CHECK(NarrowOneF16(65504.0f) == 0x7bff);
  CHECK(NarrowOneF16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(NarrowOneF16(0.1f) == 0x2e66);
  CHECK(NarrowOneF16(-0.0f) == 0x8000);

  CHECK(WidenOneBf16(0x3f80) == 1.0f);
  CHECK(WidenOneBf16(0xc000) == -2.0f);
  CHECK(WidenOneBf16(0x7f7f) == Bits(0x7f7f0000));        // largest, ~3.39e38
  CHECK(WidenOneBf16(0x0001) == std::ldexp(1.0f, -133));  // smallest subnormal
  CHECK(WidenOneBf16(0x7f80) == HUGE_VALF);
  CHECK(NarrowOneBf16(1.0f) == 0x3f80);
  CHECK(NarrowOneBf16(-2.0f) == 0xc000);
  CHECK(NarrowOneBf16(0.1f) == 0x3dcd);  // 0x3dcccccd rounds up
  CHECK(NarrowOneBf16(std::ldexp(1.0f, -133)) == 0x0001);
}

TEST_CASE("widen then narrow returns all 65536 patterns; NaN stays NaN",
          "[half_float]") {
  const std::vector<uint16_t> all = AllPatterns();
  std::vector<float> wide(all.size());
  std::vector<uint16_t> back(all.size());

  SECTION("binary16") {
    WidenF16(all.data(), wide.data(), all.size());
    NarrowF16(wide.data(), back.data(), all.size());
    for (uint32_t i = 0; i < 65536; ++i) {
      INFO("pattern 0x" << std::hex << i);
      const bool nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff) != 0;
      REQUIRE(std::isnan(wide[i]) == nan);
      REQUIRE(std::isnan(WidenOneF16(back[i])) == nan);
      // Non-NaN values must come back bit for bit; NaN payloads do too,
      // since widening keeps all 10 payload bits.
      REQUIRE(back[i] == all[i]);
    }
  }
  SECTION("bfloat16") {
    WidenBf16(all.data(), wide.data(), all.size());
    NarrowBf16(wide.data(), back.data(), all.size());
    for (uint32_t i = 0; i < 65536; ++i) {
      INFO("pattern 0x" << std::hex << i);
      const bool nan = (i & 0x7f80) == 0x7f80 && (i & 0x7f) != 0;
      REQUIRE(std::isnan(wide[i]) == nan);
      REQUIRE(std::isnan(WidenOneBf16(back[i])) == nan);
      REQUIRE(back[i] == all[i]);
    }
  }
}

TEST_CASE("narrowing a NaN never makes an infinity", "[half_float]") {
  // Payload only in the low float bits, which neither format keeps: the
  // quiet bit is set instead.
  const float low_nan = Bits(0x7f800001);
  CHECK(NarrowOneF16(low_nan) == 0x7e00);
  CHECK(NarrowOneBf16(low_nan) == 0x7fc0);
  CHECK(NarrowOneF16(-std::numeric_limits<float>::quiet_NaN()) == 0xfe00);
  CHECK(std::isnan(WidenOneBf16(NarrowOneBf16(Bits(0xff800001)))));
}

TEST_CASE("narrowing rounds to nearest, ties to even", "[half_float]") {
  SECTION("binary16 examples") {
    // 1 + 2^-11 is half way between 0x3c00 (even) and 0x3c01.
    CHECK(NarrowOneF16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
    // 1 + 3 * 2^-11 is half way between 0x3c01 and 0x3c02 (even).
    CHECK(NarrowOneF16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
    // Just past half way rounds up.
    CHECK(NarrowOneF16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)) ==
          0x3c01);
    // Carry into the exponent: just under 2 rounds to 2.
    CHECK(NarrowOneF16(std::nextafter(2.0f, 0.0f)) == 0x4000);
    // 65520 is half way between 65504 (odd mantissa) and 65536: infinity.
    CHECK(NarrowOneF16(65519.0f) == 0x7bff);
    CHECK(NarrowOneF16(65520.0f) == 0x7c00);
    CHECK(NarrowOneF16(-1e10f) == 0xfc00);
    CHECK(NarrowOneF16(std::numeric_limits<float>::max()) == 0x7c00);
    CHECK(NarrowOneF16(HUGE_VALF) == 0x7c00);
    // Subnormals: 2^-25 is half way between 0 (even) and 2^-24.
    CHECK(NarrowOneF16(std::ldexp(1.0f, -25)) == 0x0000);
    CHECK(NarrowOneF16(-std::ldexp(1.0f, -25)) == 0x8000);
    CHECK(NarrowOneF16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
    CHECK(NarrowOneF16(3 * std::ldexp(1.0f, -25)) == 0x0002);
    // Rounding up from the largest subnormal gives the smallest normal.
    CHECK(NarrowOneF16(std::ldexp(1023.75f, -24)) == 0x0400);
    // Float subnormals are far below binary16's smallest: 0, sign kept.
    CHECK(NarrowOneF16(std::numeric_limits<float>::denorm_min()) == 0x0000);
    CHECK(NarrowOneF16(-std::numeric_limits<float>::denorm_min()) == 0x8000);
  }
  SECTION("bfloat16 examples") {
    CHECK(NarrowOneBf16(Bits(0x3f808000)) == 0x3f80);  // tie, down to even
    CHECK(NarrowOneBf16(Bits(0x3f818000)) == 0x3f82);  // tie, up to even
    CHECK(NarrowOneBf16(Bits(0x3f808001)) == 0x3f81);
    CHECK(NarrowOneBf16(Bits(0x3f807fff)) == 0x3f80);
    CHECK(NarrowOneBf16(std::numeric_limits<float>::max()) == 0x7f80);
    CHECK(NarrowOneBf16(-HUGE_VALF) == 0xff80);
    CHECK(NarrowOneBf16(Bits(0x80008000)) == 0x8000);  // tie at -0
  }
}

// For every pair of adjacent finite 16-bit values a < b (both signs), the
// midpoint goes to whichever has an even pattern, and a float one step either
// side of it goes to the nearer. `next_after_max` is the value one step past
// the largest finite one, where a finite value stops rounding down.
template <typename Widen, typename Narrow>
void CheckAllMidpoints(uint16_t max_finite, double next_after_max, Widen widen,
                       Narrow narrow) {
  for (uint32_t h = 0; h <= max_finite; ++h) {
    const double a = widen(static_cast<uint16_t>(h));
    const double b =
        h == max_finite ? next_after_max : widen(static_cast<uint16_t>(h + 1));
    // The midpoint needs one bit more than the 16-bit format: exact in float.
    const auto mid = static_cast<float>((a + b) / 2);
    REQUIRE(double{mid} == (a + b) / 2);
    const uint32_t even = (h & 1) == 0 ? h : h + 1;
    for (const float sign : {1.0f, -1.0f}) {
      INFO("pattern 0x" << std::hex << h << ", sign " << sign);
      const uint32_t s = sign < 0 ? 0x8000 : 0;
      REQUIRE(narrow(sign * static_cast<float>(a)) == (s | h));
      REQUIRE(narrow(sign * mid) == (s | even));
      REQUIRE(narrow(sign * std::nextafter(mid, 0.0f)) == (s | h));
      REQUIRE(narrow(sign * std::nextafter(mid, HUGE_VALF)) == (s | (h + 1)));
    }
  }
}

TEST_CASE("every rounding boundary narrows correctly", "[half_float]") {
  SECTION("binary16") {
    CheckAllMidpoints(0x7bff, 65536.0, WidenOneF16, NarrowOneF16);
  }
  SECTION("bfloat16") {
    // One step past the largest finite bfloat16 (0x7f7f) is 2^128, which no
    // float can hold, but the midpoint (a + b) / 2 is still exact in double
    // and a float.
    CheckAllMidpoints(0x7f7f, std::ldexp(1.0, 128), WidenOneBf16,
                      NarrowOneBf16);
  }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__FLT16_MANT_DIG__)
// An independent opinion where the compiler has one: GCC's _Float16
// conversion (IEEE, round to nearest even), on random floats: half with
// any bit pattern (mostly far outside binary16's range), half with an
// exponent from 2^-32 to 2^18, around binary16's range.
TEST_CASE("NarrowF16 agrees with the compiler's _Float16", "[half_float]") {
  std::mt19937 rng(31);
  std::uniform_int_distribution<uint32_t> exponent(127 - 32, 127 + 18);
  for (int i = 0; i < 1000000; ++i) {
    uint32_t bits = static_cast<uint32_t>(rng());
    if (i % 2 == 1) bits = (bits & 0x807fffff) | (exponent(rng) << 23);
    const float f = Bits(bits);
    if (std::isnan(f)) continue;
    const auto h = static_cast<_Float16>(f);
    uint16_t expected;
    std::memcpy(&expected, &h, sizeof expected);
    INFO("float bits 0x" << std::hex << bits);
    REQUIRE(NarrowOneF16(f) == expected);
  }
}
#endif

}  // namespace
}  // namespace shardps
