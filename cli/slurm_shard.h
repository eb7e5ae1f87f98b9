// `shardps serve --slurm`: which shard this Slurm task serves and where it
// listens, from the step's environment and the layout rule
// (common/shard_placement.h) that `shardps cluster --slurm` writes.
#ifndef SHARDPS_CLI_SLURM_SHARD_H_
#define SHARDPS_CLI_SLURM_SHARD_H_

#include <cstdint>
#include <string>

#include "common/slurm_env.h"
#include "shardps/status.h"

namespace shardps::cli {

struct SlurmShard {
  uint32_t shard = 0;   // SLURM_PROCID
  uint32_t shards = 0;  // the step's task count
  std::string node;     // SLURMD_NODENAME
  std::string listen;   // tcp://<node's IPv4 address>:<port>
  SlurmStep step;
};

// Reads the step from `env`, places shard SLURM_PROCID by the layout rule
// over the step's node list with `base_port`, and resolves the node's name
// to the address to bind. Errors (all reported with exit code 2):
// kInvalidArgument for a missing or malformed variable, ports past 65535,
// more than `max_shards` tasks, or a task on another node than the rule
// places its shard on (saying how to run srun); kNotFound when the node's
// name does not resolve.
Result<SlurmShard> PlaceSlurmShard(const EnvLookup& env, int64_t base_port,
                                   uint32_t max_shards);

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_SLURM_SHARD_H_
