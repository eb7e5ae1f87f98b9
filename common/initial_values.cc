// Initial values are counter-based rather than drawn from a sequential RNG:
// element i depends only on (init, seed, tensor name, i). A shard can then
// initialise any block on its own, and the model comes out identical whatever
// the shard count or block size.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

#include "shardps/model_spec.h"

namespace shardps {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;  // splitmix64 increment
constexpr double kTwoPi = 6.283185307179586476925286766559;

// splitmix64's output function: a bijection with good avalanche, so nearby
// counters give unrelated bits.
uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : s) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// One key per (seed, name): tensors sharing a seed still get unrelated
// streams, and so do equal names under different seeds.
uint64_t StreamKey(const std::string& name, uint64_t seed) {
  return Mix64(Fnv1a(name) ^ Mix64(seed + kGolden));
}

uint64_t StreamKey(const TensorSpec& tensor) {
  return StreamKey(tensor.name, tensor.seed);
}

// The counter-th output of a splitmix64 stream started at `key`.
uint64_t Bits(uint64_t key, uint64_t counter) {
  return Mix64(key + (counter + 1) * kGolden);
}

// Top 53 bits as a double in [0, 1).
double Fraction(uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1p-53;
}

// a + (b - a) * u rounded to float, kept inside [a, b). Rounding to float can
// land on b (or a hair outside either end when a or b is not a float); one
// step towards the inside fixes it whenever a float lies in [a, b).
float Uniform(double a, double b, double u) {
  float v = static_cast<float>(a + (b - a) * u);
  if (static_cast<double>(v) < a) {
    v = std::nextafter(v, std::numeric_limits<float>::infinity());
  }
  if (static_cast<double>(v) >= b) {
    v = std::nextafter(v, -std::numeric_limits<float>::infinity());
  }
  return v;
}

// Box-Muller from two counters of the same stream; only the cosine half is
// used so that element i needs nothing from element i + 1.
float Normal(double stddev, uint64_t key, uint64_t index) {
  // Shifted to (0, 1] so the log never sees 0.
  const double u1 = Fraction(Bits(key, 2 * index)) + 0x1p-53;
  const double u2 = Fraction(Bits(key, 2 * index + 1));
  const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
  return static_cast<float>(stddev * z);
}

float ValueAt(const InitSpec& init, uint64_t key, uint64_t index) {
  switch (init.kind) {
    case InitSpec::Kind::kZeros:
      return 0.0f;
    case InitSpec::Kind::kConstant:
      return static_cast<float>(init.a);
    case InitSpec::Kind::kUniform:
      return Uniform(init.a, init.b, Fraction(Bits(key, index)));
    case InitSpec::Kind::kNormal:
      return Normal(init.a, key, index);
  }
  return 0.0f;
}

}  // namespace

float InitialValue(const TensorSpec& tensor, uint64_t index) {
  return ValueAt(tensor.init, StreamKey(tensor), index);
}

void FillInitialValues(const TensorSpec& tensor, uint64_t first, float* out,
                       uint64_t count) {
  const uint64_t key = StreamKey(tensor);
  for (uint64_t i = 0; i < count; ++i) {
    out[i] = ValueAt(tensor.init, key, first + i);
  }
}

void FillInitialRow(const TableSpec& table, uint64_t id, float* out) {
  // Each row its own stream, so a row's values do not depend on dim's
  // neighbours or on which rows exist.
  const uint64_t key = Mix64(StreamKey(table.name, table.seed) ^ Mix64(id));
  for (uint64_t j = 0; j < table.dim; ++j) out[j] = ValueAt(table.init, key, j);
}

}  // namespace shardps
