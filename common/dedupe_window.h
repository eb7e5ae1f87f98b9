// Exactly-once bookkeeping for one (block, client) pair: which of the
// client's push sequence numbers the block has had applied.
//
// A client numbers its pushes to each shard 1, 2, 3, ... and keeps fewer
// than kDedupeWindow of them unacknowledged, retrying each with its number
// until the shard answers. So a retry is never more than kDedupeWindow - 1
// below the highest number a block has seen, and 64 bits of history tell
// every retry apart from a first attempt.
//
// Thread-safety: none; a window is touched only by its block's writer.
#ifndef SHARDPS_COMMON_DEDUPE_WINDOW_H_
#define SHARDPS_COMMON_DEDUPE_WINDOW_H_

#include <cstdint>

#include "common/segment_format.h"

namespace shardps {

// True when push `seq` of `client` was already applied to the block this
// window belongs to. A number further back than the window can hold also
// counts as applied: only a client breaking the protocol sends one, and
// refusing it is the side that cannot apply a push twice.
// REQUIRES: seq >= 1, client != 0.
inline bool DedupeSeen(const DedupeWindow& w, uint64_t client, uint64_t seq) {
  if (w.client_id != client || w.high == 0) return false;  // stale or empty
  if (seq > w.high) return false;
  const uint64_t back = w.high - seq;
  if (back >= kDedupeWindow) return true;
  return (w.bits >> back) & 1;
}

// Records push `seq` of `client` as applied. A window left by another
// client (its slot was reassigned) starts over.
// REQUIRES: seq >= 1, client != 0.
inline void DedupeRecord(DedupeWindow& w, uint64_t client, uint64_t seq) {
  if (w.client_id != client || w.high == 0) {
    w.client_id = client;
    w.high = seq;
    w.bits = 1;
    return;
  }
  if (seq > w.high) {
    const uint64_t shift = seq - w.high;
    w.bits = shift >= 64 ? 0 : w.bits << shift;
    w.bits |= 1;
    w.high = seq;
    return;
  }
  const uint64_t back = w.high - seq;
  if (back < kDedupeWindow) w.bits |= uint64_t{1} << back;
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_DEDUPE_WINDOW_H_
