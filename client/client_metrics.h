// ClientMetrics: what a client's I/O thread counts about its requests, for
// ClientOptions::metrics_listen and Client::CollectMetrics
// (docs/metrics.md). One request is one shard's part of a call.
//
// Thread-safety: the I/O thread is the one writer (metric_counters.h);
// Collect runs on any thread.
#ifndef SHARDPS_CLIENT_CLIENT_METRICS_H_
#define SHARDPS_CLIENT_CLIENT_METRICS_H_

#include "common/metric_counters.h"
#include "common/metrics_export.h"
#include "common/op_metrics.h"

namespace shardps::client_internal {

struct ClientMetrics {
  // By op and final code; latency from when the I/O thread took the part
  // to its reply, error or deadline (retries included).
  OpMetrics requests;
  OwnedCounter bytes_sent;      // payload frames (gradients, rows, batches)
  OwnedCounter bytes_received;  // reply frames (headers and payloads)
  OwnedCounter retries;         // sends of a part after its first
  OwnedCounter timeouts;        // parts failed at their deadline
  Published<uint64_t> in_flight;

  void Collect(MetricFamilies& out) const;
};

}  // namespace shardps::client_internal

#endif  // SHARDPS_CLIENT_CLIENT_METRICS_H_
