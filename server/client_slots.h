// ClientSlots: which exactly-once clients own which dedupe window columns
// of this shard (ClientSlot in the segment).
//
// A client gets a slot on its first numbered push and keeps it while it
// pushes. Slots are persistent (a restarted server finds its clients'
// windows where they were); a slot idle for kDedupeSlotIdleMs can be given
// to a new client, long after any retry of the old one could arrive.
//
// Thread-safety: frontend thread only.
#ifndef SHARDPS_SERVER_CLIENT_SLOTS_H_
#define SHARDPS_SERVER_CLIENT_SLOTS_H_

#include <cstdint>
#include <unordered_map>

#include "common/segment.h"
#include "shardps/status.h"

namespace shardps {

class ClientSlots {
 public:
  // Reads the slots the segment already has. `segment` must outlive this.
  explicit ClientSlots(Segment& segment);

  // The slot of `client`, claiming a free or long-idle one for a new client,
  // and marks it seen at `now_ms` (unix ms). kResourceExhausted when every
  // slot belongs to a client active within kDedupeSlotIdleMs.
  // REQUIRES: client != 0.
  Result<uint32_t> Acquire(uint64_t client, int64_t now_ms);

  // Slots in use.
  uint32_t used() const { return static_cast<uint32_t>(by_client_.size()); }

 private:
  Segment& segment_;
  std::unordered_map<uint64_t, uint32_t> by_client_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_CLIENT_SLOTS_H_
