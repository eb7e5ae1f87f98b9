#include "cli/slurm_shard.h"

#include <utility>

#include "common/resolve_host.h"
#include "common/shard_placement.h"

namespace shardps::cli {

Result<SlurmShard> PlaceSlurmShard(const EnvLookup& env, int64_t base_port,
                                   uint32_t max_shards) {
  auto step = ReadSlurmStep(env);
  if (!step.ok()) return step.status();
  SlurmShard out;
  out.shard = step->procid;
  out.shards = step->ntasks;
  out.node = step->node_name;
  if (out.shards > max_shards)
    return Status::InvalidArgument("the step has " +
                                   std::to_string(out.shards) +
                                   " tasks; a model has at most " +
                                   std::to_string(max_shards) + " shards");
  const size_t hosts = step->nodes.size();
  SHARDPS_RETURN_IF_ERROR(
      CheckShardPorts(out.shards, hosts, base_port, "--port"));
  const ShardPlace place = PlaceShard(out.shard, hosts, base_port);
  const std::string& want = step->nodes[place.host];
  if (want != out.node)
    return Status::InvalidArgument(
        "task " + std::to_string(out.shard) + " runs on node " + out.node +
        ", but shard " + std::to_string(out.shard) + " belongs on node " +
        want + " (shard i on node i % " + std::to_string(hosts) +
        " of the step's nodes " + step->node_list +
        ", as `shardps cluster --slurm` writes): run the step with `srun "
        "--ntasks-per-node=K --distribution=cyclic` so that task i lands "
        "on node i % H");
  auto address = ResolveIPv4(out.node);
  if (!address.ok())
    return address.status().WithContext("SLURMD_NODENAME=" + out.node);
  out.listen = "tcp://" + *address + ":" + std::to_string(place.port);
  out.step = std::move(step).value();
  return out;
}

}  // namespace shardps::cli
