// Where each shard of a multi-host cluster runs: shard i of N on host
// i % H at port BASE + i / H (H hosts). `shardps cluster` writes the cluster
// file with it, and `shardps serve --slurm` finds its own endpoint with it,
// so both agree with no coordinator.
//
// Consecutive shards land on different hosts, so every host holds an equal
// share of the model's blocks (dense blocks go round-robin over shards), and
// each host uses the same small port range BASE..BASE + ceil(N/H) - 1.
//
// Thread-safety: pure functions.
#ifndef SHARDPS_COMMON_SHARD_PLACEMENT_H_
#define SHARDPS_COMMON_SHARD_PLACEMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "shardps/cluster.h"
#include "shardps/status.h"

namespace shardps {

struct ShardPlace {
  size_t host = 0;   // index into the host list
  int64_t port = 0;  // BASE + shard / hosts
};

// Shard `shard`'s host and port. REQUIRES: hosts > 0.
ShardPlace PlaceShard(uint32_t shard, size_t hosts, int64_t base_port);

// OK when every port BASE .. BASE + ceil(shards / hosts) - 1 lies in
// 1..65535; kInvalidArgument naming `port_flag` and the range otherwise.
// REQUIRES: hosts > 0.
Status CheckShardPorts(uint32_t shards, size_t hosts, int64_t base_port,
                       const std::string& port_flag);

// The cluster file's shard list: shard i at tcp://HOST:PORT by PlaceShard,
// with no segment (a shard's segment exists on its own host only; a client
// learns it, and checks its identity, from the shard's Hello).
// REQUIRES: !hosts.empty() and CheckShardPorts passed.
std::vector<ShardAddress> PlaceShards(const std::vector<std::string>& hosts,
                                      uint32_t shards, int64_t base_port);

}  // namespace shardps

#endif  // SHARDPS_COMMON_SHARD_PLACEMENT_H_
