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

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/metric_counters.h"
#include "common/metrics_export.h"
#include "protocol_generated.h"
#include "shardps/status.h"

namespace shardps {

class ShardMetrics {
 public:
  explicit ShardMetrics(uint32_t workers);

  // One reply to a request of `op` with `code`; `start_ns` (MetricNowNs)
  // is when the request arrived, 0 when unknown (then no latency is
  // recorded). Frontend thread only.
  void CountReply(wire::Op op, Code code, uint64_t start_ns);

  // Adds the request and latency families to `out`. Any thread.
  void CollectRequests(MetricFamilies& out) const;
  // Replies sent to `op` with any code, and those not OK. Any thread.
  uint64_t replies(wire::Op op) const;
  uint64_t error_replies() const;
  // Request latency of `op` so far (every code). Any thread.
  LatencyHistogram::Snapshot latency(wire::Op op) const {
    return latency_[std::min(static_cast<size_t>(op), kOps - 1)].Read();
  }

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
  std::vector<Worker>& workers() { return workers_; }
  const std::vector<Worker>& workers() const { return workers_; }

 private:
  // Op and Code values beyond these are counted in the last slot ("other").
  static constexpr size_t kOps = 16;
  static constexpr size_t kCodes = static_cast<size_t>(kLastCode) + 1;
  std::array<std::array<OwnedCounter, kCodes>, kOps> replies_;
  std::array<LatencyHistogram, kOps> latency_;
  std::vector<Worker> workers_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_SHARD_METRICS_H_
