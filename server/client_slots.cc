#include "server/client_slots.h"

#include <string>

namespace shardps {

ClientSlots::ClientSlots(Segment& segment) : segment_(segment) {
  for (uint32_t i = 0; i < segment_.dedupe_slots(); ++i) {
    const uint64_t id =
        segment_.client_slot(i).client_id.load(std::memory_order_relaxed);
    if (id != 0) by_client_[id] = i;
  }
}

Result<uint32_t> ClientSlots::Acquire(uint64_t client, int64_t now_ms) {
  auto it = by_client_.find(client);
  if (it != by_client_.end()) {
    segment_.client_slot(it->second)
        .last_seen_ms.store(now_ms, std::memory_order_relaxed);
    return it->second;
  }
  // A free slot, else the one idle longest if it has been idle long enough.
  uint32_t pick = segment_.dedupe_slots();
  int64_t oldest = now_ms;
  for (uint32_t i = 0; i < segment_.dedupe_slots(); ++i) {
    ClientSlot& s = segment_.client_slot(i);
    if (s.client_id.load(std::memory_order_relaxed) == 0) {
      pick = i;
      break;
    }
    const int64_t seen = s.last_seen_ms.load(std::memory_order_relaxed);
    if (seen <= oldest) {
      oldest = seen;
      pick = i;
    }
  }
  if (pick == segment_.dedupe_slots())
    return Status(Code::kResourceExhausted, "no exactly-once slot");
  ClientSlot& s = segment_.client_slot(pick);
  const uint64_t previous = s.client_id.load(std::memory_order_relaxed);
  if (previous != 0) {
    const int64_t idle = now_ms - s.last_seen_ms.load(std::memory_order_relaxed);
    if (idle < kDedupeSlotIdleMs)
      return Status(Code::kResourceExhausted,
                    "this shard already has " +
                        std::to_string(segment_.dedupe_slots()) +
                        " clients pushing exactly-once, the least recently "
                        "active " +
                        std::to_string(idle / 1000) +
                        " s ago; a slot frees up after " +
                        std::to_string(kDedupeSlotIdleMs / 1000) +
                        " s idle. Reuse one Client per trainer process "
                        "rather than one per push.");
    by_client_.erase(previous);
  }
  // The old client's windows stay in place; their client_id no longer
  // matches the slot's, so DedupeSeen treats them as empty.
  s.client_id.store(client, std::memory_order_relaxed);
  s.last_seen_ms.store(now_ms, std::memory_order_relaxed);
  by_client_[client] = pick;
  return pick;
}

}  // namespace shardps
