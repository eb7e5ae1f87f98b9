// `shardps status`: each shard's counters, from a live cluster.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "server/cli/commands.h"
#include "server/cli/json.h"
#include "shardps/client.h"

namespace shardps::cli {

namespace {

struct StatusFlags {
  std::string cluster;
  bool json = false;
  int timeout_ms = 3000;
};

void PrintTable(const std::vector<ShardStats>& stats) {
  std::printf("%-5s %-26s %-12s %6s %9s %9s %11s %7s %10s\n", "shard",
              "endpoint", "model", "blocks", "pushes", "pulls", "updates",
              "errors", "uptime");
  for (const ShardStats& s : stats)
    std::printf("%-5u %-26s %-12s %6u %9" PRIu64 " %9" PRIu64 " %11" PRIu64
                " %7" PRIu64 " %9.1fs\n",
                s.shard, s.endpoint.c_str(), s.model.c_str(), s.blocks,
                s.pushes, s.pulls, s.updates_applied, s.errors,
                static_cast<double>(s.uptime_ms) / 1000.0);
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
        ", \"bytes_out\": %" PRIu64 ", \"uptime_ms\": %" PRIu64 "}",
        i == 0 ? "" : ",", s.shard, JsonString(s.endpoint).c_str(),
        JsonString(s.model).c_str(), s.pid, s.blocks, s.threads, s.pushes,
        s.pulls, s.updates_applied, s.errors, s.bytes_in, s.bytes_out,
        s.uptime_ms);
  }
  std::printf("\n]}\n");
}

int RunStatus(const StatusFlags& flags) {
  ClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(flags.timeout_ms);
  options.request_timeout = std::chrono::milliseconds(flags.timeout_ms);
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
                  "How long to wait for the shards")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  cmd->callback([flags, exit_code] { *exit_code = RunStatus(*flags); });
}

}  // namespace shardps::cli
