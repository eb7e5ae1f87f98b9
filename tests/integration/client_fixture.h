// A Client for a test case against a LocalCluster, and the checks on what it
// pulls: the helpers the multi-process tests share, each failing the test
// (REQUIRE) with the reason when a call does not succeed.
//
// Thread-safety: like Catch2's macros, call from the test thread only.
#ifndef SHARDPS_TESTS_INTEGRATION_CLIENT_FIXTURE_H_
#define SHARDPS_TESTS_INTEGRATION_CLIENT_FIXTURE_H_

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shardps/client.h"

namespace shardps::testing {

// A client of `cluster` that waits up to 10 s for every shard to answer;
// the other options are the caller's.
inline std::unique_ptr<Client> Connect(const ClusterInfo& cluster,
                                       ClientOptions options = {}) {
  options.connect_timeout = std::chrono::seconds(10);
  auto client = Client::Connect(cluster, options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

// The whole tensor `name`, pulled. REQUIRES (checked): the model has it.
inline std::vector<float> PullTensor(Client& client, const std::string& name) {
  const TensorLayout* t = client.layout().Find(name);
  REQUIRE(t != nullptr);
  std::vector<float> values(t->num_floats);
  const Status s = client.Pull(name, values.data(), values.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return values;
}

// Counts elements of `actual` that differ from expected(j), reporting the
// first few. Exact comparison on purpose: the tests push values whose sums
// are exact in float arithmetic in any order.
template <typename Expected>
size_t CountMismatches(const float* actual, size_t n, Expected expected) {
  size_t bad = 0;
  for (size_t j = 0; j < n; ++j) {
    const auto want = static_cast<float>(expected(j));
    if (actual[j] != want && ++bad <= 5)
      UNSCOPED_INFO("element " << j << ": " << actual[j] << " != " << want);
  }
  return bad;
}

// Elements of `w` that are not exactly `want`, reporting the first few.
inline size_t CountNot(const std::vector<float>& w, float want) {
  return CountMismatches(w.data(), w.size(), [want](size_t) { return want; });
}

// `field` summed over every shard's stats.
inline uint64_t SumStats(const std::vector<ShardStats>& stats,
                         uint64_t ShardStats::*field) {
  uint64_t total = 0;
  for (const ShardStats& s : stats) total += s.*field;
  return total;
}

// The exactly-once retries the shards recognised as already applied.
inline uint64_t Duplicates(Client& client) {
  auto stats = client.Stats();
  INFO(stats.status().ToString());
  REQUIRE(stats.ok());
  return SumStats(*stats, &ShardStats::duplicates);
}

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_INTEGRATION_CLIENT_FIXTURE_H_
