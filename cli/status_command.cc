// `shardps status`: each shard's counters, from a live cluster.
#include <algorithm>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "cli/json.h"
#include "shardps/client.h"

namespace shardps::cli {

namespace {

struct StatusFlags {
  std::string cluster;
  bool json = false;
  int timeout_ms = 3000;
  int connect_timeout_ms = kConnectTimeoutMs;
  ClientCurveFlags curve;
};

const char* StateName(WorkerStats::State state) {
  switch (state) {
    case WorkerStats::State::kNeverSeen:
      return "never-seen";
    case WorkerStats::State::kConnected:
      return "connected";
    case WorkerStats::State::kGone:
      return "DISCONNECTED";
  }
  return "?";
}

// One line per worker: its clock on every shard, and how the shards last
// saw it. A worker every shard has lost is the one the others wait for.
void PrintWorkers(const std::vector<ShardStats>& stats) {
  const ShardStats& first = stats.front();
  if (first.workers == 0) return;
  std::printf("\nconsistency %s, %u workers", first.consistency.c_str(),
              first.workers);
  if (first.consistency == "bsp") {
    std::printf(", applied clock per shard:");
    for (const ShardStats& s : stats) std::printf(" %" PRId64, s.applied_clock);
  }
  uint32_t waiting = 0;
  for (const ShardStats& s : stats) waiting += s.waiting;
  std::printf(", %u requests waiting\n", waiting);
  std::printf("%-6s %-12s %-13s %s\n", "worker", "clock", "state",
              "idle (s, shard 0)");
  for (uint32_t w = 0; w < first.workers; ++w) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    WorkerStats::State state = WorkerStats::State::kNeverSeen;
    for (const ShardStats& s : stats) {
      if (w >= s.workers_detail.size()) continue;
      const WorkerStats& ws = s.workers_detail[w];
      lo = std::min(lo, ws.clock);
      hi = std::max(hi, ws.clock);
      // Connected anywhere wins; else gone anywhere; else never seen.
      if (ws.state == WorkerStats::State::kConnected ||
          (ws.state == WorkerStats::State::kGone &&
           state == WorkerStats::State::kNeverSeen))
        state = ws.state;
    }
    const std::string clock =
        lo == hi ? std::to_string(lo)
                 : std::to_string(lo) + ".." + std::to_string(hi);
    const int64_t idle = first.workers_detail[w].idle_ms;
    char idle_text[32] = "-";
    if (idle >= 0)
      std::snprintf(idle_text, sizeof(idle_text), "%.1f",
                    static_cast<double>(idle) / 1000.0);
    std::printf("%-6u %-12s %-13s %s\n", w, clock.c_str(), StateName(state),
                idle_text);
  }
}

// Host replicas (docs/multihost.md), when any shard streams to one.
void PrintReplicas(const std::vector<ShardStats>& stats) {
  uint32_t any = 0;
  for (const ShardStats& s : stats) any += s.replicas;
  if (any == 0) return;
  std::printf("\n%-5s %8s %14s %12s\n", "shard", "replicas", "blocks sent",
              "MB sent");
  for (const ShardStats& s : stats)
    std::printf("%-5u %8u %14" PRIu64 " %12.1f\n", s.shard, s.replicas,
                s.replica_blocks, static_cast<double>(s.replica_bytes) / 1e6);
}

void PrintTable(const std::vector<ShardStats>& stats) {
  // "retried": block updates skipped because the block already had that
  // exactly-once push (a client sent it again). "refused": CURVE handshakes
  // the shard turned away (unauthorized keys, peers without CURVE); always 0
  // on a server without CURVE.
  std::printf("%-5s %-26s %-12s %6s %9s %9s %11s %7s %8s %10s %8s\n", "shard",
              "endpoint", "model", "blocks", "pushes", "pulls", "updates",
              "errors", "retried", "uptime", "refused");
  for (const ShardStats& s : stats)
    std::printf("%-5u %-26s %-12s %6u %9" PRIu64 " %9" PRIu64 " %11" PRIu64
                " %7" PRIu64 " %8" PRIu64 " %9.1fs %8" PRIu64 "\n",
                s.shard, s.endpoint.c_str(), s.model.c_str(), s.blocks,
                s.pushes, s.pulls, s.updates_applied, s.errors, s.duplicates,
                static_cast<double>(s.uptime_ms) / 1000.0, s.auth_refusals);
  PrintReplicas(stats);
  if (!stats.empty()) PrintWorkers(stats);
}

std::string WorkersJson(const ShardStats& s) {
  std::string out = "[";
  for (size_t w = 0; w < s.workers_detail.size(); ++w) {
    const WorkerStats& ws = s.workers_detail[w];
    out += (w == 0 ? "" : ", ") + std::string("{\"clock\": ") +
           std::to_string(ws.clock) + ", \"state\": \"" + StateName(ws.state) +
           "\", \"idle_ms\": " + std::to_string(ws.idle_ms) + "}";
  }
  return out + "]";
}

void PrintJson(const std::vector<ShardStats>& stats) {
  std::printf("{\"shards\": [");
  for (size_t i = 0; i < stats.size(); ++i) {
    const ShardStats& s = stats[i];
    std::printf(
        "%s\n  {\"shard\": %u, \"endpoint\": %s, \"model\": %s, "
        "\"pid\": %d, \"blocks\": %u, \"threads\": %u, \"pushes\": %" PRIu64
        ", \"pulls\": %" PRIu64 ", \"updates_applied\": %" PRIu64
        ", \"errors\": %" PRIu64 ", \"bytes_in\": %" PRIu64
        ", \"bytes_out\": %" PRIu64 ", \"uptime_ms\": %" PRIu64
        ", \"consistency\": %s, \"applied_clock\": %" PRId64
        ", \"waiting\": %u, \"auth_refusals\": %" PRIu64
        ", \"workers\": %s, \"duplicates\": %" PRIu64
        ", \"exactly_once_clients\": %u, \"replicas\": %u"
        ", \"replica_blocks\": %" PRIu64 ", \"replica_bytes\": %" PRIu64
        ", \"early_applies\": %" PRIu64 "}",
        i == 0 ? "" : ",", s.shard, JsonString(s.endpoint).c_str(),
        JsonString(s.model).c_str(), s.pid, s.blocks, s.threads, s.pushes,
        s.pulls, s.updates_applied, s.errors, s.bytes_in, s.bytes_out,
        s.uptime_ms, JsonString(s.consistency).c_str(), s.applied_clock,
        s.waiting, s.auth_refusals, WorkersJson(s).c_str(), s.duplicates,
        s.exactly_once_clients, s.replicas, s.replica_blocks, s.replica_bytes,
        s.early_applies);
  }
  std::printf("\n]}\n");
}

int RunStatus(const StatusFlags& flags) {
  ClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(flags.connect_timeout_ms);
  options.request_timeout = std::chrono::milliseconds(flags.timeout_ms);
  Status keys = ApplyClientCurveFlags(flags.curve, &options);
  if (!keys.ok()) return ReportError("status", keys);
  auto client = Client::Connect(flags.cluster, options);
  if (!client.ok()) return ReportError("status", client.status());
  auto stats = (*client)->Stats();
  if (!stats.ok()) return ReportError("status", stats.status());
  if (flags.json) {
    PrintJson(*stats);
  } else {
    PrintTable(*stats);
  }
  return 0;
}

}  // namespace

void RegisterStatus(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<StatusFlags>();
  CLI::App* cmd = app.add_subcommand("status", "Show each shard's counters");
  cmd->add_option("--cluster", flags->cluster, "Cluster file")->required();
  cmd->add_flag("--json", flags->json, "Print JSON instead of a table");
  cmd->add_option("--timeout-ms", flags->timeout_ms,
                  "How long to wait for the shards' counters")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  AddConnectTimeout(cmd, &flags->connect_timeout_ms);
  AddClientCurveFlags(cmd, &flags->curve);
  cmd->callback([flags, exit_code] { *exit_code = RunStatus(*flags); });
}

}  // namespace shardps::cli
