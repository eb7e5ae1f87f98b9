// A LocalCluster for a test case: writes `spec_text` to dir/spec.toml and
// starts `shards` servers with segments under dir/storage, failing the test
// (with the servers' error) when they do not start.
#ifndef SHARDPS_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
#define SHARDPS_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_

#include <catch2/catch.hpp>
#include <memory>
#include <string>
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

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
