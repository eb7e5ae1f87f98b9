// A LocalCluster for a test case: writes `spec_text` to dir/spec.toml and
// starts `shards` servers with segments under dir/storage, failing the test
// (with the servers' error) when they do not start; and a shard of it
// killed with kill -9.
#ifndef SHARDPS_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
#define SHARDPS_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace shardps::testing {

inline std::unique_ptr<LocalCluster> StartCluster(
    const TempDir& dir, const std::string& spec_text, uint32_t shards,
    const std::vector<std::string>& serve_flags = {}) {
  const std::string spec = WriteSpec(dir.File("spec.toml"), spec_text);
  auto cluster = LocalCluster::Start(spec, dir.File("storage"), shards,
                                     dir.File("cluster.toml"), serve_flags);
  INFO(cluster.status().ToString());
  REQUIRE(cluster.ok());
  return std::move(cluster).value();
}

// kill -9 of shard `shard`, requiring that it died of the signal.
inline void KillShard(LocalCluster& cluster, uint32_t shard) {
  ChildProcess& process = *cluster.server(shard).process;
  REQUIRE(process.Signal(SIGKILL));
  const auto killed = process.Wait(kExitTimeout);
  REQUIRE(killed.has_value());
  CHECK(killed->signal == SIGKILL);
}

// kill -9 of shard `shard`, then a restart on its segment and endpoint,
// failing the test with the reason when it does not come back. The pause
// between the two lets the clients see the outage.
inline void KillAndRestart(LocalCluster& cluster, uint32_t shard) {
  KillShard(cluster, shard);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const Status restarted = cluster.Restart(shard);
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
}

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
