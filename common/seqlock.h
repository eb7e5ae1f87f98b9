// Per-block seqlock over BlockVersion (see segment_format.h).
//
// One writer per block (the update-pool thread that owns it) brackets every
// change with BeginWrite/EndWrite; any number of readers, in any process, use
// ReadConsistent (or one TryReadConsistent) to take a copy that no write
// tore.
//
// Memory order follows Boehm, "Can seqlocks get along with programming
// language memory models?" (MSPC 2012): the writer's release fence after the
// odd store keeps the data stores after it; the reader's acquire fence keeps
// the data loads before its second version load.
#ifndef SHARDPS_COMMON_SEQLOCK_H_
#define SHARDPS_COMMON_SEQLOCK_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>

#include "common/segment_format.h"
#include "shardps/status.h"

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

// Takes a consistent copy of a block, retrying until `deadline`: the one
// retry loop every reader uses. The first attempt costs what
// TryReadConsistent costs; after that it yields, then sleeps with a backoff
// capped at 1 ms, because the writer may be another process we cannot wait
// on.
//
// Returns OK with `*version` set to the copy's version. Past the deadline:
// kCorrupt when the version stayed odd at one value the whole time (the
// block stayed mid-update: its writer is stuck or dead, as after a crash
// inside an update), kTimeout when it kept changing (live writers never let
// a copy finish). The message names the version; callers add which block.
// `dst` then holds a torn copy.
inline Status ReadConsistent(const BlockVersion& v, const void* src, void* dst,
                             size_t bytes,
                             std::chrono::steady_clock::time_point deadline,
                             uint64_t* version) {
  if (TryReadConsistent(v, src, dst, bytes, version)) return Status::Ok();
  const uint64_t first = v.seq.load(std::memory_order_relaxed);
  bool stuck = (first & 1) != 0;
  auto pause = std::chrono::microseconds(1);
  for (int attempt = 1;; ++attempt) {
    if (attempt < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
    if (TryReadConsistent(v, src, dst, bytes, version)) return Status::Ok();
    const uint64_t now = v.seq.load(std::memory_order_relaxed);
    stuck = stuck && now == first;
    if (std::chrono::steady_clock::now() >= deadline) {
      if (stuck)
        return Status(Code::kCorrupt,
                      "the block stayed mid-update (seqlock version " +
                          std::to_string(now) +
                          " odd until the deadline): its writer is stuck "
                          "or died inside an update");
      return Status(Code::kTimeout,
                    "the block kept changing until the deadline (seqlock "
                    "version " +
                        std::to_string(now) + ")");
    }
  }
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_SEQLOCK_H_
