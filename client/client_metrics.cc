#include "client/client_metrics.h"

namespace shardps::client_internal {

void ClientMetrics::Collect(MetricFamilies& out) const {
  static constexpr OpMetrics::Names kNames = {
      "shardps_client_requests_total",
      "Requests to shards (one per shard of a call), by operation and "
      "final result code.",
      "shardps_client_request_duration_seconds",
      "Time from sending a request to its shard's answer, retries and "
      "waits included."};
  requests.Collect(kNames, out);
  out.Counter("shardps_client_sent_bytes_total",
              "Payload bytes sent to shards (gradients, rows, batches).",
              static_cast<double>(bytes_sent.value()));
  out.Counter("shardps_client_received_bytes_total",
              "Bytes of replies received from shards.",
              static_cast<double>(bytes_received.value()));
  out.Counter("shardps_client_retries_total",
              "Requests sent again (after a lost connection or an attempt "
              "timeout).",
              static_cast<double>(retries.value()));
  out.Counter("shardps_client_timeouts_total",
              "Requests that failed at their deadline.",
              static_cast<double>(timeouts.value()));
  out.Gauge("shardps_client_in_flight_requests",
            "Requests sent or waiting to be sent, not yet answered.",
            static_cast<double>(in_flight.value()));
}

}  // namespace shardps::client_internal
