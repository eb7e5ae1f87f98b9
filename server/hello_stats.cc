#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "server/shard_server_impl.h"

// The Hello reply (what this shard serves) and the Stats reply (its
// counters), and the plain OK reply header.

namespace shardps {

namespace {

std::string HostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

void ShardServer::Impl::HandleHello(const wire::Request& req,
                                    zmq::message_t& identity) {
  const SegmentHeader& h = segment_->header();
  builder_.Clear();
  std::vector<flatbuffers::Offset<wire::TensorInfo>> tensors;
  for (uint32_t i = 0; i < segment_->num_tensors(); ++i) {
    const TensorEntry& t = segment_->tensor(i);
    std::vector<uint64_t> shape(t.shape, t.shape + t.rank);
    tensors.push_back(wire::CreateTensorInfo(
        builder_, builder_.CreateString(t.name), builder_.CreateVector(shape),
        builder_.CreateString(t.optimizer), clip_norms_[i]));
  }
  const ConsistencySpec& c = clocks_.spec();
  std::vector<int64_t> clocks;
  for (uint32_t w = 0; w < c.workers; ++w)
    clocks.push_back(clocks_.clock_of(static_cast<int>(w)));
  std::vector<flatbuffers::Offset<wire::SparseTableInfo>> tables;
  for (const TableSpec& t : options_.spec.tables)
    tables.push_back(wire::CreateSparseTableInfo(
        builder_, builder_.CreateString(t.name), t.dim, t.capacity,
        builder_.CreateString(options_.spec.OptimizerFor(t).kind)));
  auto hello = wire::CreateHelloInfo(
      builder_, builder_.CreateString(h.model), h.spec_hash, h.shard_index,
      h.shard_count, h.block_floats, builder_.CreateString(h.optimizer),
      builder_.CreateVector(tensors), builder_.CreateString(segment_path_),
      builder_.CreateString(HostName()), builder_.CreateString(c.ModeName()),
      c.workers, builder_.CreateVector(clocks), builder_.CreateVector(tables),
      segment_->identity().hi, segment_->identity().lo);
  wire::ReplyBuilder reply(builder_);
  reply.add_request_id(req.request_id());
  reply.add_hello(hello);
  builder_.Finish(reply.Finish());
  SendReply(identity, builder_, nullptr);
}

// The counters are plain statistics: updates_applied (bumped by the writers,
// relaxed) is read relaxed too, as nothing else is ordered by it.
void ShardServer::Impl::HandleStats(const wire::Request& req,
                                    zmq::message_t& identity) {
  const SegmentHeader& h = segment_->header();
  const auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started_);
  builder_.Clear();
  const ConsistencySpec& c = clocks_.spec();
  const auto now = std::chrono::steady_clock::now();
  std::vector<int64_t> clocks, idle_ms;
  std::vector<uint8_t> states;
  for (uint32_t w = 0; w < c.workers; ++w) {
    clocks.push_back(clocks_.clock_of(static_cast<int>(w)));
    states.push_back(
        static_cast<uint8_t>(clocks_.state_of(static_cast<int>(w))));
    idle_ms.push_back(clocks_.IdleMs(static_cast<int>(w), now));
  }
  auto stats = wire::CreateShardStats(
      builder_, h.shard_index, builder_.CreateString(h.model), h.num_blocks,
      pool_.writers(), pushes_, pulls_,
      h.updates_applied.load(std::memory_order_relaxed), errors_, bytes_in_,
      bytes_out_, static_cast<uint64_t>(uptime.count()), ::getpid(),
      builder_.CreateString(c.ModeName()), c.workers, clocks_.applied(),
      builder_.CreateVector(clocks), builder_.CreateVector(states),
      builder_.CreateVector(idle_ms), static_cast<uint32_t>(parked_.size()),
      pool_.duplicates() + row_duplicates_ + queues_->duplicates(),
      client_slots_.used(),
      zap_ != nullptr ? zap_->refusals() : 0);
  wire::ReplyBuilder reply(builder_);
  reply.add_request_id(req.request_id());
  reply.add_stats(stats);
  builder_.Finish(reply.Finish());
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
