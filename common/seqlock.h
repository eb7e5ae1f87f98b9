// Per-block seqlock over BlockVersion (see segment_format.h).
//
// One writer per block (the update-pool thread that owns it) brackets every
// change with BeginWrite/EndWrite; any number of readers, in any process, use
// TryReadConsistent to take a copy that no write tore.
//
// Memory order follows Boehm, "Can seqlocks get along with programming
// language memory models?" (MSPC 2012): the writer's release fence after the
// odd store keeps the data stores after it; the reader's acquire fence keeps
// the data loads before its second version load.
#ifndef SHARDPS_COMMON_SEQLOCK_H_
#define SHARDPS_COMMON_SEQLOCK_H_

#include <atomic>
#include <cstdint>
#include <cstring>

#include "common/segment_format.h"

namespace shardps {

// REQUIRES: the caller is the block's only writer.
inline void BeginWrite(BlockVersion& v) {
  const uint64_t s = v.seq.load(std::memory_order_relaxed);
  v.seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

// REQUIRES: paired with the caller's BeginWrite on the same block.
inline void EndWrite(BlockVersion& v) {
  const uint64_t s = v.seq.load(std::memory_order_relaxed);
  v.seq.store(s + 1, std::memory_order_release);
}

// Copies `bytes` from `src` to `dst` once; returns true if no writer was
// inside the block during the copy (the copy is then a consistent snapshot).
// `*version` receives the version the copy corresponds to.
inline bool TryReadConsistent(const BlockVersion& v, const void* src, void* dst,
                              size_t bytes, uint64_t* version) {
  const uint64_t before = v.seq.load(std::memory_order_acquire);
  if (before & 1) return false;
  std::memcpy(dst, src, bytes);
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t after = v.seq.load(std::memory_order_relaxed);
  *version = before;
  return before == after;
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_SEQLOCK_H_
