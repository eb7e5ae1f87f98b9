// ShardStats: one shard's counters, as Client::Stats returns them and
// `shardps status` shows them. Shared by the server, which encodes them, and
// the client, which decodes them (common/stats_codec.h).
#ifndef SHARDPS_SHARD_STATS_H_
#define SHARDPS_SHARD_STATS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace shardps {

// One worker as a shard sees it (bsp/ssp models, or async with workers).
struct WorkerStats {
  enum class State : uint8_t { kNeverSeen = 0, kConnected = 1, kGone = 2 };
  int64_t clock = 0;  // Clock calls this shard has recorded
  State state = State::kNeverSeen;
  int64_t idle_ms = -1;  // since its last request to this shard; -1 never
};

// One batch queue a shard hosts (`shardps serve --queue`), as
// BatchQueue::Stats reports it on the shard.
struct HostedQueueStats {
  std::string name;
  uint32_t slots = 0;
  uint64_t queued = 0;    // committed batches not yet taken
  uint64_t produced = 0;  // batches committed, ever
  uint64_t consumed = 0;  // batches released, ever
  double producer_blocked_s = 0;
  double consumer_starved_s = 0;
  bool closed = false;
};

// A latency histogram as a shard reports it: `buckets[i]` observations at
// most kLatencyBoundsSeconds[i] (not cumulative), the last entry above the
// last bound. Empty buckets: not reported (an older server).
inline constexpr double kLatencyBoundsSeconds[] = {
    10e-6, 25e-6, 50e-6,  100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3,
    25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0,    2.5,  5.0,    10.0};
struct LatencyStats {
  uint64_t count = 0;
  double seconds = 0;  // summed
  std::vector<uint64_t> buckets;
};

// One shard's counters, as `shardps status` and `shardps top` show them.
// Counters count since the server process started unless they say
// otherwise; fields an older server does not send read as 0 / empty.
struct ShardStats {
  uint32_t shard = 0;
  std::string endpoint;  // set by the client (where it asked); not on the wire
  std::string model;
  uint32_t blocks = 0;
  uint32_t threads = 0;
  uint64_t pushes = 0;
  uint64_t pulls = 0;
  uint64_t updates_applied = 0;
  uint64_t errors = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t uptime_ms = 0;
  int32_t pid = 0;
  std::string consistency;  // "async", "bsp" or "ssp:S"
  uint32_t workers = 0;
  int64_t applied_clock = 0;                // bsp: clocks applied on this shard
  std::vector<WorkerStats> workers_detail;  // one per worker
  uint32_t waiting = 0;  // requests parked for slower workers
  // Retries skipped because the shard already had that exactly-once push
  // (per block for dense pushes, per push for PushRows and QueuePush), and
  // clients holding an exactly-once slot on the shard.
  uint64_t duplicates = 0;
  uint32_t exactly_once_clients = 0;
  // CURVE handshakes this shard refused (unknown key, or no CURVE); 0 when
  // it runs without CURVE or is older than this field.
  uint64_t auth_refusals = 0;
  // Host replicas subscribed to this shard, and the blocks (and bytes)
  // streamed to them so far (docs/multihost.md).
  uint32_t replicas = 0;
  uint64_t replica_blocks = 0;
  uint64_t replica_bytes = 0;
  // bsp apply = "block": blocks applied as soon as every worker's gradient
  // was in, before their clock ended.
  uint64_t early_applies = 0;
  // Block applies: count, summed seconds and histogram buckets.
  LatencyStats apply;
  // Push and Pull requests answered (any code), with their summed time from
  // arrival to reply (no buckets).
  LatencyStats push_latency, pull_latency;
  uint32_t connected_clients = 0;
  std::vector<HostedQueueStats> queues;
};

}  // namespace shardps

#endif  // SHARDPS_SHARD_STATS_H_
