#include "common/stats_codec.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "common/metric_counters.h"

namespace shardps {

namespace {

// The public bounds (shard_stats.h) are the histogram's (metric_counters.h).
constexpr bool SameBounds() {
  constexpr size_t n =
      sizeof(kLatencyBoundsSeconds) / sizeof(kLatencyBoundsSeconds[0]);
  if (n != LatencyHistogram::kBoundsNs.size()) return false;
  for (size_t i = 0; i < n; ++i) {
    const double ns = kLatencyBoundsSeconds[i] * 1e9;
    const double want = static_cast<double>(LatencyHistogram::kBoundsNs[i]);
    if (ns < want - 0.5 || ns > want + 0.5) return false;
  }
  return true;
}
static_assert(SameBounds(), "kLatencyBoundsSeconds must match kBoundsNs");

// More buckets than this in a reply is not a histogram we know.
constexpr size_t kMaxBuckets = 64;
// Queues a shard may report; more is a malformed reply.
constexpr size_t kMaxQueues = 4096;

}  // namespace

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
  std::vector<flatbuffers::Offset<wire::QueueStatus>> queues;
  for (const HostedQueueStats& q : stats.queues)
    queues.push_back(wire::CreateQueueStatus(
        *builder, builder->CreateString(q.name), q.slots, q.queued, q.produced,
        q.consumed, q.producer_blocked_s, q.consumer_starved_s, q.closed));
  auto encoded = wire::CreateShardStats(
      *builder, stats.shard, builder->CreateString(stats.model), stats.blocks,
      stats.threads, stats.pushes, stats.pulls, stats.updates_applied,
      stats.errors, stats.bytes_in, stats.bytes_out, stats.uptime_ms, stats.pid,
      builder->CreateString(stats.consistency), stats.workers,
      stats.applied_clock, builder->CreateVector(clocks),
      builder->CreateVector(states), builder->CreateVector(idle_ms),
      stats.waiting, stats.duplicates, stats.exactly_once_clients,
      stats.auth_refusals, stats.replicas, stats.replica_blocks,
      stats.replica_bytes, stats.early_applies, stats.apply.count,
      stats.apply.seconds, builder->CreateVector(stats.apply.buckets),
      stats.push_latency.count, stats.push_latency.seconds,
      stats.pull_latency.count, stats.pull_latency.seconds,
      stats.connected_clients, builder->CreateVector(queues));
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
  out.apply.count = s->apply_count();
  out.apply.seconds = s->apply_seconds();
  if (s->apply_buckets()) {
    if (s->apply_buckets()->size() > kMaxBuckets)
      return Status(
          Code::kBadMessage,
          "Stats reply: " + std::to_string(s->apply_buckets()->size()) +
              " apply latency buckets (at most " + std::to_string(kMaxBuckets) +
              ")");
    out.apply.buckets.assign(s->apply_buckets()->begin(),
                             s->apply_buckets()->end());
  }
  out.push_latency.count = s->push_count();
  out.push_latency.seconds = s->push_seconds();
  out.pull_latency.count = s->pull_count();
  out.pull_latency.seconds = s->pull_seconds();
  out.connected_clients = s->connected_clients();
  if (s->queues()) {
    if (s->queues()->size() > kMaxQueues)
      return Status(Code::kBadMessage, "Stats reply: too many queues");
    for (const wire::QueueStatus* q : *s->queues()) {
      if (q == nullptr) continue;
      HostedQueueStats hq;
      hq.name = q->name() ? q->name()->str() : "";
      hq.slots = q->slots();
      hq.queued = q->queued();
      hq.produced = q->produced();
      hq.consumed = q->consumed();
      hq.producer_blocked_s = q->producer_blocked_s();
      hq.consumer_starved_s = q->consumer_starved_s();
      hq.closed = q->closed();
      out.queues.push_back(std::move(hq));
    }
  }
  return out;
}

}  // namespace shardps
