// OpMetrics: requests (or replies) counted by wire op and status code, with
// a latency histogram per op. The shard counts what it answered with one,
// the client what its requests came back with (docs/metrics.md).
//
// Thread-safety: one writer thread (metric_counters.h); Collect and the
// readers from any thread.
#ifndef SHARDPS_COMMON_OP_METRICS_H_
#define SHARDPS_COMMON_OP_METRICS_H_

#include <array>
#include <cstdint>
#include <string>

#include "common/metric_counters.h"
#include "common/metrics_export.h"
#include "protocol_generated.h"
#include "shardps/status.h"

namespace shardps {

class OpMetrics {
 public:
  // What the families are called: e.g. "shardps_requests_total" and
  // "shardps_request_duration_seconds", with their help texts.
  struct Names {
    const char* count;
    const char* count_help;
    const char* duration;
    const char* duration_help;
  };

  // One request of `op` finished with `code`; `start_ns` (MetricNowNs) is
  // when it started, 0 when unknown (then no latency is recorded).
  void Count(wire::Op op, Code code, uint64_t start_ns) {
    const size_t o = OpSlot(op);
    const size_t c = static_cast<size_t>(code) < kCodes
                         ? static_cast<size_t>(code)
                         : kCodes - 1;
    counts_[o][c].Add();
    if (start_ns != 0) latency_[o].ObserveNs(MetricNowNs() - start_ns);
  }

  // Every code of `op`, and every code but OK over all ops.
  uint64_t count(wire::Op op) const;
  uint64_t errors() const;
  LatencyHistogram::Snapshot latency(wire::Op op) const {
    return latency_[OpSlot(op)].Read();
  }

  // Push, Pull, PushPull and Clock always appear (so rate() works from the
  // first scrape); other ops once seen. Unknown ops are labelled "other".
  void Collect(const Names& names, MetricFamilies& out) const;

 private:
  static constexpr size_t kOps = 16;  // the last slot: op values beyond
  static constexpr size_t kCodes = static_cast<size_t>(kLastCode) + 1;
  static size_t OpSlot(wire::Op op) {
    return static_cast<size_t>(op) < kOps - 1 ? static_cast<size_t>(op)
                                              : kOps - 1;
  }
  std::array<std::array<OwnedCounter, kCodes>, kOps> counts_;
  std::array<LatencyHistogram, kOps> latency_;
};

}  // namespace shardps

#endif  // SHARDPS_COMMON_OP_METRICS_H_
