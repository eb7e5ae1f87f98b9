// The host replica's /metrics series (docs/metrics.md): per mirrored shard,
// what arrived, whether it is subscribed, and how far its copy lags.
#ifndef SHARDPS_SERVER_REPLICA_METRICS_H_
#define SHARDPS_SERVER_REPLICA_METRICS_H_

#include <string>
#include <vector>

#include "common/metrics_export.h"
#include "server/host_replica.h"

namespace shardps {

// Adds the replica's families to `out`: `stats` as HostReplica::Stats gives
// them, and the lag read from each copy's freshness file under `storage`
// (opened read-only for this scrape; a shard whose copy is not open yet has
// no lag series). Any thread; reads only atomics in the files.
void CollectReplicaMetrics(const std::string& storage, const std::string& model,
                           uint32_t shards,
                           const std::vector<ReplicaShardStats>& stats,
                           MetricFamilies& out);

}  // namespace shardps

#endif  // SHARDPS_SERVER_REPLICA_METRICS_H_
