// Server limits through a real server process: connections beyond
// --max-clients are refused with a clear error, and served again once
// another client leaves.
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "shardps/client.h"
#include "tests/integration/cluster_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Result<std::unique_ptr<Client>> TryConnect(const ClusterInfo& info) {
  ClientOptions options;
  options.connect_timeout = seconds(5);
  options.request_timeout = seconds(5);
  return Client::Connect(info, options);
}

TEST_CASE("a shard refuses clients beyond --max-clients until one leaves",
          "[integration][limits]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, SpecText("limits", 1024, 1.0, {{"w", {100}, "zeros"}}), 1,
      {"--max-clients", "2"});
  auto a = TryConnect(cluster->info());
  auto b = TryConnect(cluster->info());
  REQUIRE(a.ok());
  REQUIRE(b.ok());

  auto c = TryConnect(cluster->info());
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == Code::kResourceExhausted);
  CHECK_THAT(c.status().ToString(), Catch::Matchers::Contains("--max-clients"));

  // The two admitted clients keep working.
  std::vector<float> w(100);
  REQUIRE((*a)->Pull("w", w.data(), w.size()).Wait().ok());
  REQUIRE((*b)->Pull("w", w.data(), w.size()).Wait().ok());

  // One leaves; a newcomer gets in once the shard has seen the disconnect.
  a->reset();
  Result<std::unique_ptr<Client>> d = Status(Code::kUnavailable, "not yet");
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (!d.ok() && std::chrono::steady_clock::now() < deadline) {
    d = TryConnect(cluster->info());
    if (!d.ok()) std::this_thread::sleep_for(milliseconds(50));
  }
  INFO(d.status().ToString());
  REQUIRE(d.ok());
  REQUIRE((*d)->Pull("w", w.data(), w.size()).Wait().ok());
}

}  // namespace
}  // namespace shardps::testing
