#include "server/replica_metrics.h"

#include <algorithm>

#include "common/futex.h"
#include "common/replica_state.h"

namespace shardps {

namespace {

// How far one copy is behind its shard: blocks whose newest announced
// version it does not hold yet, and the age of the oldest such gap (0 when
// it holds everything announced).
struct Lag {
  uint32_t behind = 0;
  double oldest_s = 0;
  double heard_age_s = -1;  // since the shard was last heard; -1 never
};

Lag LagOf(const ReplicaState& fresh) {
  Lag lag;
  const int64_t now = MonotonicNs();
  int64_t oldest = 0;
  for (uint32_t b = 0; b < fresh.num_blocks(); ++b) {
    const int64_t since =
        fresh.block(b).behind_since_ns.load(std::memory_order_relaxed);
    if (since == 0) continue;
    ++lag.behind;
    if (oldest == 0 || since < oldest) oldest = since;
  }
  if (oldest != 0) lag.oldest_s = static_cast<double>(now - oldest) * 1e-9;
  const int64_t heard = fresh.header().heard_ns.load(std::memory_order_relaxed);
  if (heard != 0) lag.heard_age_s = static_cast<double>(now - heard) * 1e-9;
  return lag;
}

}  // namespace

void CollectReplicaMetrics(const std::string& storage, const std::string& model,
                           uint32_t shards,
                           const std::vector<ReplicaShardStats>& stats,
                           MetricFamilies& out) {
  for (const ReplicaShardStats& s : stats) {
    const MetricLabels shard = {{"model", model},
                                {"shard", std::to_string(s.shard)}};
    out.Gauge("shardps_replica_shard_local",
              "1 when the shard's segment is on this host (mapped directly, "
              "not copied).",
              s.local ? 1 : 0, shard);
    out.Gauge("shardps_replica_mirrored",
              "1 while this replica holds an open copy of the shard.",
              s.mirrored ? 1 : 0, shard);
    out.Gauge("shardps_replica_subscribed",
              "1 when the shard answered the replica's last Subscribe.",
              s.subscribed ? 1 : 0, shard);
    out.Counter("shardps_replica_received_blocks_total",
                "Blocks received from the shard's stream.",
                static_cast<double>(s.blocks_received), shard);
    out.Counter("shardps_replica_received_bytes_total",
                "Bytes of blocks received from the shard's stream.",
                static_cast<double>(s.bytes_received), shard);
    out.Counter("shardps_replica_subscribes_total",
                "Subscribe requests sent (the first and every re-subscribe "
                "after silence).",
                static_cast<double>(s.subscribes), shard);
    if (s.held_clock >= 0)
      out.Gauge("shardps_replica_held_clock",
                "bsp: the newest clock every block of the copy holds.",
                static_cast<double>(s.held_clock), shard);
    if (!s.mirrored) continue;
    auto fresh = ReplicaState::OpenReadOnly(
        ReplicaState::PathFor(storage, model, s.shard, shards));
    if (!fresh.ok()) continue;
    const Lag lag = LagOf(**fresh);
    out.Gauge("shardps_replica_lag_seconds",
              "Age of the oldest change the shard announced that the copy "
              "does not hold yet; 0 when it holds everything announced.",
              lag.oldest_s, shard);
    out.Gauge("shardps_replica_behind_blocks",
              "Blocks whose newest announced version the copy lacks.",
              lag.behind, shard);
    if (lag.heard_age_s >= 0)
      out.Gauge("shardps_replica_heard_age_seconds",
                "Seconds since the shard's stream was last heard.",
                lag.heard_age_s, shard);
  }
  out.ProcessMetrics();
}

}  // namespace shardps
