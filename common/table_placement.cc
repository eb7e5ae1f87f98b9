// Where sparse-table rows live: jump consistent hashing of ids over shards,
// and how many rows each shard reserves.
#include <cmath>

#include "shardps/model_spec.h"

namespace shardps {

// Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
// (2014): a linear congruential walk that jumps from bucket to bucket; the
// last bucket before passing `shards` is the key's.
uint32_t JumpHash(uint64_t key, uint32_t shards) {
  int64_t bucket = -1, next = 0;
  while (next < static_cast<int64_t>(shards)) {
    bucket = next;
    key = key * 2862933555777941757ULL + 1;
    next = static_cast<int64_t>(static_cast<double>(bucket + 1) *
                                (static_cast<double>(1LL << 31) /
                                 static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<uint32_t>(bucket);
}

uint64_t TableSpec::RowsPerShard(uint32_t shards) const {
  if (shards <= 1) return capacity;
  // A shard's count of `capacity` random ids is binomial: mean m =
  // capacity/shards, deviation about sqrt(m). Six deviations plus a little
  // keep a shard from filling up before the table's total is reached.
  const double mean = static_cast<double>(capacity) / shards;
  return static_cast<uint64_t>(std::ceil(mean + 6 * std::sqrt(mean) + 16));
}

}  // namespace shardps
