#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/hello_codec.h"
#include "common/host_name.h"
#include "common/stats_codec.h"
#include "server/shard_server_impl.h"

// The Hello reply (what this shard serves) and the Stats reply (its
// counters), and the plain OK reply header.

namespace shardps {

ShardHello ShardServer::Impl::BuildHello() const {
  const SegmentHeader& h = segment_->header();
  ShardHello hello;
  hello.model = h.model;
  hello.spec_hash = h.spec_hash;
  hello.shard = h.shard_index;
  hello.shards = h.shard_count;
  hello.block_floats = h.block_floats;
  hello.optimizer = h.optimizer;
  for (uint32_t i = 0; i < segment_->num_tensors(); ++i) {
    const TensorEntry& t = segment_->tensor(i);
    hello.tensors.push_back({t.name,
                             std::vector<uint64_t>(t.shape, t.shape + t.rank),
                             t.optimizer, clip_norms_[i]});
  }
  hello.segment = segment_path_;
  hello.hostname = HostName();
  hello.segment_id = segment_->identity();
  const ConsistencySpec& c = clocks_.spec();
  hello.consistency = c.ModeName();
  hello.workers = c.workers;
  for (uint32_t w = 0; w < c.workers; ++w)
    hello.clocks.push_back(clocks_.clock_of(static_cast<int>(w)));
  for (const TableSpec& t : options_.spec.tables)
    hello.tables.push_back(
        {t.name, t.dim, t.capacity, options_.spec.OptimizerFor(t).kind});
  return hello;
}

void ShardServer::Impl::HandleHello(const wire::Request& req,
                                    zmq::message_t& identity) {
  EncodeHelloReply(req.request_id(), BuildHello(), &builder_);
  SendReply(identity, builder_, nullptr);
}

void ShardServer::Impl::HandleStats(const wire::Request& req,
                                    zmq::message_t& identity) {
  const SegmentHeader& h = segment_->header();
  const auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_);
  const ConsistencySpec& c = clocks_.spec();
  const auto now = std::chrono::steady_clock::now();
  ShardStats stats;
  stats.shard = h.shard_index;
  stats.model = h.model;
  stats.blocks = h.num_blocks;
  stats.threads = pool_.writers();
  stats.pushes = pushes_;
  stats.pulls = pulls_;
  stats.updates_applied = h.updates_applied.load(std::memory_order_relaxed);
  stats.errors = errors_;
  stats.bytes_in = metrics_.bytes_in.value();
  stats.bytes_out = metrics_.bytes_out.value();
  stats.uptime_ms = static_cast<uint64_t>(uptime.count());
  stats.pid = ::getpid();
  stats.consistency = c.ModeName();
  stats.workers = c.workers;
  stats.applied_clock = clocks_.applied();
  for (uint32_t w = 0; w < c.workers; ++w) {
    WorkerStats ws;
    ws.clock = clocks_.clock_of(static_cast<int>(w));
    ws.state = static_cast<WorkerStats::State>(
        static_cast<uint8_t>(clocks_.state_of(static_cast<int>(w))));
    ws.idle_ms = clocks_.IdleMs(static_cast<int>(w), now);
    stats.workers_detail.push_back(ws);
  }
  stats.waiting = static_cast<uint32_t>(parked_.size());
  stats.duplicates =
      pool_.duplicates() + row_duplicates_ + queues_->duplicates();
  stats.exactly_once_clients = client_slots_.used();
  stats.auth_refusals = zap_ != nullptr ? zap_->refusals() : 0;
  stats.replicas = static_cast<uint32_t>(replica_feed_.subscribers());
  stats.replica_blocks = replica_feed_.blocks_sent();
  stats.replica_bytes = replica_feed_.bytes_sent();
  stats.early_applies = pool_.early_applies();
  const LatencyHistogram::Snapshot apply = pool_.ApplyLatency();
  stats.apply.count = apply.count;
  stats.apply.seconds = apply.sum_seconds;
  stats.apply.buckets.assign(apply.counts.begin(), apply.counts.end());
  const LatencyHistogram::Snapshot push =
      metrics_.replies.latency(wire::Op::Push);
  stats.push_latency.count = push.count;
  stats.push_latency.seconds = push.sum_seconds;
  const LatencyHistogram::Snapshot pull =
      metrics_.replies.latency(wire::Op::Pull);
  stats.pull_latency.count = pull.count;
  stats.pull_latency.seconds = pull.sum_seconds;
  stats.connected_clients = static_cast<uint32_t>(admission_.connections());
  stats.queues = queues_->Stats();
  EncodeStatsReply(req.request_id(), stats, &builder_);
  SendReply(identity, builder_, nullptr);
}

flatbuffers::FlatBufferBuilder& ShardServer::Impl::OkHeader(
    uint64_t request_id, const std::vector<uint32_t>* blocks) {
  builder_.Clear();
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> block_list;
  if (blocks != nullptr) block_list = builder_.CreateVector(*blocks);
  wire::ReplyBuilder reply(builder_);
  reply.add_request_id(request_id);
  if (blocks != nullptr) reply.add_blocks(block_list);
  builder_.Finish(reply.Finish());
  return builder_;
}

}  // namespace shardps
