#include "common/shard_placement.h"

namespace shardps {

ShardPlace PlaceShard(uint32_t shard, size_t hosts, int64_t base_port) {
  return {shard % hosts, base_port + static_cast<int64_t>(shard / hosts)};
}

Status CheckShardPorts(uint32_t shards, size_t hosts, int64_t base_port,
                       const std::string& port_flag) {
  const int64_t per_host =
      (static_cast<int64_t>(shards) + static_cast<int64_t>(hosts) - 1) /
      static_cast<int64_t>(hosts);
  const int64_t last = base_port + per_host - 1;
  if (base_port < 1 || last > 65535)
    return Status::InvalidArgument(
        port_flag + ": shards use ports " + std::to_string(base_port) + ".." +
        std::to_string(last) + " on each host; they must lie in 1..65535");
  return Status::Ok();
}

std::vector<ShardAddress> PlaceShards(const std::vector<std::string>& hosts,
                                      uint32_t shards, int64_t base_port) {
  std::vector<ShardAddress> placed;
  for (uint32_t i = 0; i < shards; ++i) {
    const ShardPlace p = PlaceShard(i, hosts.size(), base_port);
    placed.push_back(
        {i, "tcp://" + hosts[p.host] + ":" + std::to_string(p.port), ""});
  }
  return placed;
}

}  // namespace shardps
