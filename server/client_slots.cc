#include "server/client_slots.h"

#include <algorithm>
#include <limits>
#include <string>

namespace shardps {

namespace {

int64_t ClampHorizon(int64_t horizon_ms) {
  return horizon_ms <= 0 || horizon_ms > kMaxRetryHorizonMs ? kMaxRetryHorizonMs
                                                            : horizon_ms;
}

}  // namespace

ClientSlots::ClientSlots(Segment& segment)
    : segment_(segment),
      in_flight_(segment.dedupe_slots(), 0),
      release_pending_(segment.dedupe_slots(), false) {
  for (uint32_t i = 0; i < segment_.dedupe_slots(); ++i) {
    const uint64_t id =
        segment_.client_slot(i).client_id.load(std::memory_order_relaxed);
    if (id != 0) by_client_[id] = i;
  }
}

bool ClientSlots::Expired(uint32_t i, int64_t now_ms) const {
  if (in_flight_[i] != 0) return false;
  const ClientSlot& s = segment_.client_slot(i);
  const int64_t seen = s.last_seen_ms.load(std::memory_order_relaxed);
  const int64_t horizon =
      ClampHorizon(s.retry_horizon_ms.load(std::memory_order_relaxed));
  return now_ms - seen > horizon + kRetryHorizonMarginMs;
}

Result<uint32_t> ClientSlots::Acquire(uint64_t client, int64_t horizon_ms,
                                      int64_t now_ms) {
  horizon_ms = ClampHorizon(horizon_ms);
  auto it = by_client_.find(client);
  if (it != by_client_.end()) {
    ClientSlot& s = segment_.client_slot(it->second);
    s.last_seen_ms.store(now_ms, std::memory_order_relaxed);
    // The longest horizon any of its pushes was sent with.
    if (s.retry_horizon_ms.load(std::memory_order_relaxed) < horizon_ms)
      s.retry_horizon_ms.store(horizon_ms, std::memory_order_relaxed);
    // A push after its release (a late one): the slot stays its own.
    release_pending_[it->second] = false;
    ++in_flight_[it->second];
    return it->second;
  }
  // A free slot, else an expired one; and when none, how soon one expires.
  uint32_t pick = segment_.dedupe_slots();
  int64_t soonest_ms = std::numeric_limits<int64_t>::max();
  for (uint32_t i = 0; i < segment_.dedupe_slots(); ++i) {
    ClientSlot& s = segment_.client_slot(i);
    if (s.client_id.load(std::memory_order_relaxed) == 0) {
      pick = i;
      break;
    }
    // The clock went back (a restart on a host whose clock was stepped):
    // count from now rather than pin the slot until the clock catches up.
    if (s.last_seen_ms.load(std::memory_order_relaxed) > now_ms)
      s.last_seen_ms.store(now_ms, std::memory_order_relaxed);
    if (Expired(i, now_ms)) {
      if (pick == segment_.dedupe_slots()) pick = i;
      continue;
    }
    if (in_flight_[i] == 0)
      soonest_ms = std::min(
          soonest_ms,
          s.last_seen_ms.load(std::memory_order_relaxed) +
              ClampHorizon(s.retry_horizon_ms.load(std::memory_order_relaxed)) +
              kRetryHorizonMarginMs - now_ms);
  }
  if (pick == segment_.dedupe_slots()) {
    std::string when =
        soonest_ms == std::numeric_limits<int64_t>::max()
            ? "when one of their pushes finishes"
            : "in " +
                  std::to_string(std::max<int64_t>(soonest_ms, 0) / 1000 + 1) +
                  " s";
    return Status(
        Code::kResourceExhausted,
        "this shard already has " + std::to_string(segment_.dedupe_slots()) +
            " clients pushing exactly-once, each still able to retry; the "
            "first slot frees up " +
            when +
            " (a closed Client gives its slot back at once, a crashed one "
            "holds it for its request_timeout + " +
            std::to_string(kRetryHorizonMarginMs / 1000) +
            " s after its last push). Close clients you are done with, or "
            "reuse one Client per trainer process rather than one per push.");
  }
  ClientSlot& s = segment_.client_slot(pick);
  const uint64_t previous = s.client_id.load(std::memory_order_relaxed);
  if (previous != 0) by_client_.erase(previous);
  // The old client's windows stay in place; their client_id no longer
  // matches the slot's, so DedupeSeen treats them as empty.
  s.client_id.store(client, std::memory_order_relaxed);
  s.last_seen_ms.store(now_ms, std::memory_order_relaxed);
  s.retry_horizon_ms.store(horizon_ms, std::memory_order_relaxed);
  by_client_[client] = pick;
  release_pending_[pick] = false;
  in_flight_[pick] = 1;
  return pick;
}

void ClientSlots::PushDone(uint32_t slot) {
  if (slot >= in_flight_.size() || in_flight_[slot] == 0) return;
  if (--in_flight_[slot] == 0 && release_pending_[slot]) Free(slot);
}

bool ClientSlots::Release(uint64_t client) {
  auto it = by_client_.find(client);
  if (it == by_client_.end()) return false;
  const uint32_t slot = it->second;
  if (in_flight_[slot] != 0) {
    // Requests of one connection arrive in order, so this client's pushes
    // are all here; some are still being applied, and their windows are
    // the slot's until they finish.
    release_pending_[slot] = true;
    return true;
  }
  Free(slot);
  return true;
}

void ClientSlots::Free(uint32_t slot) {
  ClientSlot& s = segment_.client_slot(slot);
  by_client_.erase(s.client_id.load(std::memory_order_relaxed));
  release_pending_[slot] = false;
  s.client_id.store(0, std::memory_order_relaxed);
  s.last_seen_ms.store(0, std::memory_order_relaxed);
  s.retry_horizon_ms.store(0, std::memory_order_relaxed);
}

}  // namespace shardps
