// `shardps checkpoint` and `shardps restore`: write a cluster's segments to a
// new checkpoint directory, and rebuild segments from one.
#include <cstdio>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "server/cli/commands.h"
#include "shardps/cluster.h"

namespace shardps::cli {

namespace {

struct CheckpointFlags {
  std::string cluster, to, from, spec, storage;
};

int RunCheckpoint(const CheckpointFlags& flags) {
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
  auto done = WriteCheckpoint(segments, flags.to);
  if (!done.ok()) return ReportError("checkpoint", done.status());
  std::printf("checkpoint of %u shard(s), %llu bytes, in %s\n", done->shards,
              static_cast<unsigned long long>(done->bytes), done->dir.c_str());
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
  return 0;
}

}  // namespace

void RegisterCheckpoint(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<CheckpointFlags>();
  CLI::App* cp = app.add_subcommand(
      "checkpoint", "Write every shard's state to a new checkpoint directory");
  cp->add_option("--cluster", flags->cluster, "Cluster file with segments")
      ->required();
  cp->add_option("--to", flags->to, "New directory (must not exist)")
      ->required();
  cp->callback([flags, exit_code] { *exit_code = RunCheckpoint(*flags); });

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
