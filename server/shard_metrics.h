// ShardMetrics: what a shard server's frontend counts for /metrics and the
// Stats reply (docs/metrics.md lists every series).
//
// Thread-safety: the frontend thread is the one writer of every member;
// the metrics endpoint's threads read them (metric_counters.h). Values the
// frontend keeps in plain members of other objects (parked requests, worker
// clocks, the replica feed's counts) are copied into the Published gauges
// here once per poll-loop turn (ShardServer::Impl::PublishGauges), so a
// scrape reads only atomics and never waits for the frontend.
#ifndef SHARDPS_SERVER_SHARD_METRICS_H_
#define SHARDPS_SERVER_SHARD_METRICS_H_

#include <cstdint>
#include <vector>

#include "common/metric_counters.h"
#include "common/op_metrics.h"

namespace shardps {

struct ShardMetrics {
  explicit ShardMetrics(uint32_t workers) : workers(workers) {}

  // Replies by the op they answer and their code, and the time from the
  // request's arrival to its reply (ShardServer::Impl::ReplyScope).
  OpMetrics replies;
  static constexpr OpMetrics::Names kReplyNames = {
      "shardps_requests_total",
      "Requests answered, by operation and result code.",
      "shardps_request_duration_seconds",
      "Time from a request's arrival to its reply, as the shard sees it "
      "(bsp/ssp waits included)."};

  OwnedCounter bytes_in, bytes_out;
  // Frontend copies, refreshed once per loop turn.
  Published<uint64_t> parked, connected_clients, exactly_once_clients;
  Published<uint64_t> replica_subscribers, replica_blocks, replica_bytes;
  Published<uint64_t> duplicates;  // dense + rows + queues
  Published<int64_t> applied_clock;
  struct Worker {
    Published<int64_t> clock;
    Published<uint8_t> state;  // WorkerStats::State
  };
  std::vector<Worker> workers;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_SHARD_METRICS_H_
