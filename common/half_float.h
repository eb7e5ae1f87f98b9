// 16-bit floats (IEEE 754 binary16 and bfloat16): the gradient conversions a
// client may use to halve its push traffic, and the server's widening of
// such a push before the optimizer step.
//
// Thread-safety: pure functions; any thread.
#ifndef SHARDPS_COMMON_HALF_FLOAT_H_
#define SHARDPS_COMMON_HALF_FLOAT_H_

#include <cstddef>
#include <cstdint>

namespace shardps {

// 16-bit gradients. Values are the raw bit patterns, in host byte order.
//
// Widening is exact: every binary16 / bfloat16 value (subnormals, infinities
// and NaN payloads included) is a float32 value.
// `in` may be unaligned: it is often a received ZeroMQ frame.
void WidenF16(const void* in, float* out, size_t n);
void WidenBf16(const void* in, float* out, size_t n);

// Narrowing rounds to nearest, ties to even. Values beyond the largest finite
// 16-bit value round to infinity as IEEE 754 says (binary16: |x| >= 65520).
// NaN stays NaN with as much of its payload as fits (the top mantissa bits);
// when none of those is set, the quiet bit is, so NaN never becomes infinity.
// Widening then narrowing gives back the original bits for all 65536 patterns.
void NarrowF16(const float* in, uint16_t* out, size_t n);
void NarrowBf16(const float* in, uint16_t* out, size_t n);

}  // namespace shardps

#endif  // SHARDPS_COMMON_HALF_FLOAT_H_
