// Client::Impl: what a Client holds behind its public header. Connect
// (connect.cc) fills it; the calls (client.cc) read it.
//
// Thread-safety: every field but clock_ (and replica_gate_'s own cache) is set
// by Connect before the Client is returned and never changed after, so any
// thread may read them; io_'s own methods say which threads may call them.
#ifndef SHARDPS_CLIENT_CLIENT_IMPL_H_
#define SHARDPS_CLIENT_CLIENT_IMPL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "client/io_thread.h"
#include "client/replica_clock_gate.h"
#include "common/metrics_export.h"
#include "common/segment_id.h"
#include "shardps/client.h"

namespace shardps {

class Client::Impl {
 public:
  // Push, Pull and PushPull of a whole tensor (client.cc).
  Handle Dense(wire::Op op, std::string_view tensor, const float* grad,
               float* out, size_t count);
  // PushRows (push) and PullRows of a sparse table (client.cc).
  Handle Rows(bool push, std::string_view table, const uint64_t* ids, size_t n,
              const float* grads, float* out);

  std::unique_ptr<client_internal::IoThread> io_;
  uint64_t spec_hash_ = 0;
  std::string consistency_ = "async";
  std::vector<float> clip_norms_;  // by tensor index; 0 = no clip_norm
  std::vector<TableInfo> tables_;
  // The worker's current clock, stamped on every request. Relaxed is
  // enough: it publishes no other memory. The order that matters, a push
  // before or after a Clock, is program order on the one thread that calls
  // both (Client::Clock's REQUIRES), and Connect's store reaches other
  // threads with the Client itself, through whatever hands them the
  // pointer.
  std::atomic<int64_t> clock_{0};
  std::vector<std::string> local_segments_;
  // By shard: the identity of the segment at local_segments_[i] as the shard
  // reported it at Connect (empty where the shard is not local), so a
  // ModelView can tell that the file is still that segment.
  std::vector<SegmentId> local_segment_ids_;
  // bsp with ClientOptions::replica_storage and some shard not local: what
  // each Clock() waits for after the shards (nullptr otherwise).
  std::shared_ptr<client_internal::ReplicaClockGate> replica_gate_;
  // The series' constant labels (model, worker), and the endpoint serving
  // them (ClientOptions::metrics_listen). Declared after io_, so it stops
  // before the counters it reads go.
  MetricLabels metric_labels_;
  std::unique_ptr<MetricsEndpoint> metrics_;
};

}  // namespace shardps

#endif  // SHARDPS_CLIENT_CLIENT_IMPL_H_
