// ClientSlots: which exactly-once clients own which dedupe window columns
// of this shard (ClientSlot in the segment).
//
// A client gets a slot on its first numbered push and keeps it until
//   * it releases it (a closing Client sends Release), which frees the slot
//     as soon as none of its pushes is still being applied, or
//   * no retry of its pushes can still arrive: a client retries a push only
//     until its retry horizon (request_timeout) after first sending it, so
//     a slot whose last push arrived more than horizon +
//     kRetryHorizonMarginMs ago can be given to a new client. That is what
//     frees the slot of a client that crashed.
// Slots are persistent (a restarted server finds its clients' windows, last
// pushes and horizons where they were, and counts from the stored last
// push, by its own clock).
//
// Thread-safety: frontend thread only.
#ifndef SHARDPS_SERVER_CLIENT_SLOTS_H_
#define SHARDPS_SERVER_CLIENT_SLOTS_H_

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/segment.h"
#include "shardps/status.h"

namespace shardps {

class ClientSlots {
 public:
  // Reads the slots the segment already has. `segment` must outlive this.
  explicit ClientSlots(Segment& segment);

  // A numbered push of `client` starts: returns its slot, claiming a free
  // or expired one for a new client, and records the push's arrival at
  // `now_ms` (unix ms) and the client's retry horizon (`horizon_ms`, 0 or
  // above kMaxRetryHorizonMs: kMaxRetryHorizonMs). The caller must call
  // PushDone(slot) when the push has been applied (or skipped).
  // kResourceExhausted (nothing changed) when every slot belongs to a live
  // client. REQUIRES: client != 0.
  Result<uint32_t> Acquire(uint64_t client, int64_t horizon_ms, int64_t now_ms);

  // A push that Acquire started has finished; frees the slot if its client
  // released it meanwhile.
  void PushDone(uint32_t slot);

  // `client` closed: its slot is freed now, or when its pushes still being
  // applied have finished. False when the client holds no slot here (a
  // release of an unknown or another client's id changes nothing).
  bool Release(uint64_t client);

  // Slots in use.
  uint32_t used() const { return static_cast<uint32_t>(by_client_.size()); }

 private:
  // True when slot `i` may be given to a new client at `now_ms`.
  bool Expired(uint32_t i, int64_t now_ms) const;
  void Free(uint32_t slot);

  Segment& segment_;
  std::unordered_map<uint64_t, uint32_t> by_client_;
  std::vector<uint32_t> in_flight_;    // by slot: pushes being applied
  std::vector<bool> release_pending_;  // by slot: freed when in_flight_ is 0
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_CLIENT_SLOTS_H_
