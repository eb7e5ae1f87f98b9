// `shardps checkpoint` and `shardps restore`: write a cluster's segments to a
// new checkpoint directory, and rebuild segments from one.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "common/checkpoint.h"
#include "server/segment_repair.h"
#include "shardps/client.h"
#include "shardps/cluster.h"

namespace shardps::cli {

namespace {

struct CheckpointFlags {
  std::string cluster, to, from, spec, storage;
  bool remote = false;
  int timeout_ms = 600000;
  int connect_timeout_ms = kConnectTimeoutMs;
  ClientCurveFlags curve;
};

// Every shard writes a checkpoint into its own --checkpoint-dir.
int RunRemoteCheckpoint(const CheckpointFlags& flags) {
  ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(flags.timeout_ms);
  options.connect_timeout = std::chrono::milliseconds(flags.connect_timeout_ms);
  if (Status keys = ApplyClientCurveFlags(flags.curve, &options); !keys.ok())
    return ReportError("checkpoint", keys);
  auto client = Client::Connect(flags.cluster, options);
  if (!client.ok()) return ReportError("checkpoint", client.status());
  auto dirs = (*client)->Checkpoint();
  if (!dirs.ok()) return ReportError("checkpoint", dirs.status());
  for (size_t i = 0; i < dirs->size(); ++i)
    std::printf("shard %zu: %s\n", i, (*dirs)[i].c_str());
  std::printf(
      "restore with: shardps restore --from <checkpoint-dir> --spec SPEC\n");
  return 0;
}

int RunCheckpoint(const CheckpointFlags& flags) {
  if (flags.remote) return RunRemoteCheckpoint(flags);
  auto cluster = LoadCluster(flags.cluster);
  if (!cluster.ok()) return ReportError("checkpoint", cluster.status());
  std::vector<std::string> segments;
  for (const ShardAddress& s : cluster->shards) {
    if (s.segment.empty())
      return ReportError(
          "checkpoint",
          Status(Code::kInvalidArgument,
                 "shard " + std::to_string(s.index) +
                     " lists no segment: run checkpoint on the shards' host "
                     "with the cluster file `shardps launch` wrote"));
    if (s.index != segments.size())
      return ReportError("checkpoint",
                         Status(Code::kInvalidArgument,
                                "cluster file lists shards out of order"));
    segments.push_back(s.segment);
  }
  CheckpointWriteOptions options;
  // A segment whose server died inside an update is put back from its
  // journal first, as a server starting on it would.
  options.repair = [](const std::string& path) {
    SegmentRepairReport report;
    Status s = RepairFromJournal(path, &report);
    if (s.ok())
      std::fprintf(stderr,
                   "shardps checkpoint: %s: no server holds it; put back %llu "
                   "block(s) a dead server left mid-update, from its journal\n",
                   path.c_str(),
                   static_cast<unsigned long long>(report.restored_blocks));
    return s;
  };
  auto done = WriteCheckpoint(segments, flags.to, options);
  if (!done.ok()) return ReportError("checkpoint", done.status());
  std::printf("checkpoint of %u shard(s), %llu bytes, in %s\n", done->shards,
              static_cast<unsigned long long>(done->bytes), done->dir.c_str());
  for (size_t i = 0; i < done->sources.size(); ++i)
    std::printf("shard %zu: from segment %s\n", i,
                done->sources[i].ToString().c_str());
  return 0;
}

int RunRestore(const CheckpointFlags& flags) {
  auto spec = LoadModelSpec(flags.spec);
  if (!spec.ok()) return ReportError("restore", spec.status());
  const std::string storage =
      flags.storage.empty() ? spec->storage : flags.storage;
  auto done = RestoreCheckpoint(flags.from, *spec, storage);
  if (!done.ok()) return ReportError("restore", done.status());
  std::printf("restored %u shard(s) of '%s' under %s/%s\n", done->shards,
              spec->name.c_str(), storage.c_str(), spec->name.c_str());
  // New segments, new identities; the source is shown, not required.
  for (size_t i = 0; i < done->restored.size(); ++i)
    std::printf("shard %zu: new segment %s, from segment %s\n", i,
                done->restored[i].ToString().c_str(),
                done->sources[i].empty() ? "(not recorded)"
                                         : done->sources[i].ToString().c_str());
  return 0;
}

}  // namespace

void RegisterCheckpoint(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<CheckpointFlags>();
  CLI::App* cp = app.add_subcommand(
      "checkpoint", "Write every shard's state to a new checkpoint directory");
  cp->add_option("--cluster", flags->cluster, "Cluster file with segments")
      ->required();
  auto* to = cp->add_option("--to", flags->to,
                            "New directory (must not exist), written from "
                            "the shards' segments on this host");
  auto* remote = cp->add_flag(
      "--remote", flags->remote,
      "Ask every shard to checkpoint into its own --checkpoint-dir instead "
      "(works from any host)");
  to->excludes(remote);
  cp->add_option("--timeout-ms", flags->timeout_ms,
                 "With --remote: how long to wait for the shards")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400000));
  AddConnectTimeout(cp, &flags->connect_timeout_ms);
  AddClientCurveFlags(cp, &flags->curve);
  cp->callback([flags, exit_code, to, remote] {
    if (to->count() == 0 && remote->count() == 0) {
      std::fprintf(stderr, "shardps checkpoint: give --to DIR or --remote\n");
      *exit_code = 2;
      return;
    }
    *exit_code = RunCheckpoint(*flags);
  });

  CLI::App* restore = app.add_subcommand(
      "restore", "Rebuild a model's segments from a checkpoint");
  restore->add_option("--from", flags->from, "Checkpoint directory")
      ->required();
  restore->add_option("--spec", flags->spec, "Model spec (TOML)")->required();
  restore->add_option("--storage", flags->storage,
                      "Directory for segments (overrides the spec's)");
  restore->callback([flags, exit_code] { *exit_code = RunRestore(*flags); });
}

}  // namespace shardps::cli
