#include "common/stats_codec.h"

#include <algorithm>
#include <vector>

namespace shardps {

void EncodeStatsReply(uint64_t request_id, const ShardStats& stats,
                      flatbuffers::FlatBufferBuilder* builder) {
  builder->Clear();
  std::vector<int64_t> clocks, idle_ms;
  std::vector<uint8_t> states;
  for (const WorkerStats& w : stats.workers_detail) {
    clocks.push_back(w.clock);
    states.push_back(static_cast<uint8_t>(w.state));
    idle_ms.push_back(w.idle_ms);
  }
  auto encoded = wire::CreateShardStats(
      *builder, stats.shard, builder->CreateString(stats.model), stats.blocks,
      stats.threads, stats.pushes, stats.pulls, stats.updates_applied,
      stats.errors, stats.bytes_in, stats.bytes_out, stats.uptime_ms, stats.pid,
      builder->CreateString(stats.consistency), stats.workers,
      stats.applied_clock, builder->CreateVector(clocks),
      builder->CreateVector(states), builder->CreateVector(idle_ms),
      stats.waiting, stats.duplicates, stats.exactly_once_clients,
      stats.auth_refusals, stats.replicas, stats.replica_blocks,
      stats.replica_bytes, stats.early_applies);
  wire::ReplyBuilder reply(*builder);
  reply.add_request_id(request_id);
  reply.add_stats(encoded);
  builder->Finish(reply.Finish());
}

Result<ShardStats> DecodeStats(const wire::Reply& reply) {
  const wire::ShardStats* s = reply.stats();
  if (s == nullptr) return Status(Code::kBadMessage, "Stats reply empty");
  ShardStats out;
  out.shard = s->shard();
  out.model = s->model() ? s->model()->str() : "";
  out.blocks = s->blocks();
  out.threads = s->threads();
  out.pushes = s->pushes();
  out.pulls = s->pulls();
  out.updates_applied = s->updates_applied();
  out.errors = s->errors();
  out.bytes_in = s->bytes_in();
  out.bytes_out = s->bytes_out();
  out.uptime_ms = s->uptime_ms();
  out.pid = s->pid();
  out.consistency = s->consistency() ? s->consistency()->str() : "";
  out.workers = s->workers();
  out.applied_clock = s->applied_clock();
  const size_t n = s->workers();
  if ((s->clocks() && s->clocks()->size() != n) ||
      (s->worker_state() && s->worker_state()->size() != n) ||
      (s->worker_idle_ms() && s->worker_idle_ms()->size() != n))
    return Status(Code::kBadMessage,
                  "Stats reply: per-worker lists "
                  "do not match the worker count");
  out.workers_detail.resize(n);
  for (size_t w = 0; w < n; ++w) {
    WorkerStats& ws = out.workers_detail[w];
    if (s->clocks()) ws.clock = s->clocks()->Get(static_cast<uint32_t>(w));
    if (s->worker_state())
      ws.state = static_cast<WorkerStats::State>(std::min<uint8_t>(
          s->worker_state()->Get(static_cast<uint32_t>(w)), 2));
    ws.idle_ms = s->worker_idle_ms()
                     ? s->worker_idle_ms()->Get(static_cast<uint32_t>(w))
                     : -1;
  }
  out.waiting = s->waiting();
  out.duplicates = s->duplicates();
  out.exactly_once_clients = s->exactly_once_clients();
  out.auth_refusals = s->auth_refusals();
  out.replicas = s->replicas();
  out.replica_blocks = s->replica_blocks();
  out.replica_bytes = s->replica_bytes();
  out.early_applies = s->early_applies();
  return out;
}

}  // namespace shardps
