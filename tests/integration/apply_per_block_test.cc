// bsp with `apply = "block"`: a block's clock is applied as soon as every
// worker's gradient for it is in, with the same result as applying at
// Clock; and pushes split into several messages per shard
// (ClientOptions::blocks_per_message).
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

constexpr uint64_t kBlockFloats = 1024;
constexpr uint64_t kFloats = 5000;  // 5 blocks over 2 shards

std::string BspSpec(const std::string& apply, const std::string& reduce) {
  return SpecText("early", kBlockFloats, 1.0, {{"w", {kFloats}, "zeros"}}) +
         "\n[consistency]\nmode = \"bsp\"\nworkers = 2\nreduce = \"" + reduce +
         "\"\napply = \"" + apply + "\"\n";
}

std::unique_ptr<Client> Connect(const LocalCluster& cluster, int worker,
                                uint32_t blocks_per_message = 0) {
  ClientOptions options;
  options.worker = worker;
  options.blocks_per_message = blocks_per_message;
  options.request_timeout = seconds(20);
  auto client = Client::Connect(cluster.cluster_file(), options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

std::vector<float> Pull(Client& client) {
  std::vector<float> out(kFloats);
  const Status pulled = client.Pull("w", out.data(), out.size()).Wait();
  INFO(pulled.ToString());
  REQUIRE(pulled.ok());
  return out;
}

// Worker w's gradient at clock c: every float (w + 1) * (c + 1), and the
// index mod 7 on top so blocks differ.
std::vector<float> Gradient(int w, int c) {
  std::vector<float> g(kFloats);
  for (size_t i = 0; i < g.size(); ++i)
    g[i] = static_cast<float>((w + 1) * (c + 1)) + static_cast<float>(i % 7);
  return g;
}

// Runs 3 clocks of 2 workers and returns the final weights.
std::vector<float> Train(const std::string& apply, const std::string& reduce,
                         uint32_t blocks_per_message) {
  TempDir dir;
  auto cluster = StartCluster(dir, BspSpec(apply, reduce), 2);
  auto w0 = Connect(*cluster, 0, blocks_per_message);
  auto w1 = Connect(*cluster, 1, blocks_per_message);
  for (int c = 0; c < 3; ++c) {
    const std::vector<float> g0 = Gradient(0, c), g1 = Gradient(1, c);
    Handle p0 = w0->Push("w", g0.data(), g0.size());
    Handle p1 = w1->Push("w", g1.data(), g1.size());
    REQUIRE(p0.Wait().ok());
    REQUIRE(p1.Wait().ok());
    Handle c0 = w0->Clock();
    Handle c1 = w1->Clock();
    REQUIRE(c0.Wait().ok());
    REQUIRE(c1.Wait().ok());
  }
  return Pull(*w0);
}

TEST_CASE("bsp apply = block trains the same model as apply = clock",
          "[integration][consistency]") {
  for (const std::string reduce : {"sum", "mean"}) {
    const std::vector<float> at_clock = Train("clock", reduce, 0);
    CHECK(Train("block", reduce, 0) == at_clock);
    CHECK(Train("block", reduce, 1) == at_clock);
    // Closed form, sgd lr 1: -(sum over clocks and workers) [/ 2].
    const float i_mod = 3.0f;  // element 3: i % 7 == 3
    float sum = 0;
    for (int c = 0; c < 3; ++c)
      for (int w = 0; w < 2; ++w)
        sum += static_cast<float>((w + 1) * (c + 1)) + i_mod;
    CHECK(at_clock[3] == (reduce == "sum" ? -sum : -sum / 2));
  }
}

TEST_CASE(
    "bsp apply = block applies a block once every worker pushed it, "
    "before anyone calls Clock",
    "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(dir, BspSpec("block", "sum"), 2);
  auto w0 = Connect(*cluster, 0, 1);
  auto w1 = Connect(*cluster, 1, 1);
  auto reader = Connect(*cluster, -1);  // not a worker: never waits
  const std::vector<float> g0 = Gradient(0, 0), g1 = Gradient(1, 0);
  REQUIRE(w0->Push("w", g0.data(), g0.size()).Wait().ok());
  // Half the workers' gradients: nothing applied yet.
  CHECK(Pull(*reader) == std::vector<float>(kFloats, 0.0f));
  REQUIRE(w1->Push("w", g1.data(), g1.size()).Wait().ok());
  const std::vector<float> early = Pull(*reader);
  CHECK(early[0] == -(g0[0] + g1[0]));
  CHECK(early[kFloats - 1] == -(g0[kFloats - 1] + g1[kFloats - 1]));
  auto stats = reader->Stats();
  REQUIRE(stats.ok());
  CHECK((*stats)[0].early_applies + (*stats)[1].early_applies == 5);
  // The clock then changes nothing more.
  Handle c0 = w0->Clock();
  Handle c1 = w1->Clock();
  REQUIRE(c0.Wait().ok());
  REQUIRE(c1.Wait().ok());
  CHECK(Pull(*reader) == early);
}

TEST_CASE(
    "bsp apply = block refuses a second push of a block in one clock "
    "and applies nothing of it",
    "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(dir, BspSpec("block", "sum"), 2);
  auto w0 = Connect(*cluster, 0);
  auto w1 = Connect(*cluster, 1);
  const std::vector<float> g = Gradient(0, 0);
  REQUIRE(w0->Push("w", g.data(), g.size()).Wait().ok());
  const Status again = w0->Push("w", g.data(), g.size()).Wait();
  CHECK(again.code() == Code::kInvalidArgument);
  CHECK(Contains(again.message(), "already pushed block"));
  CHECK(Contains(again.message(), "apply = \"clock\""));
  REQUIRE(w1->Push("w", g.data(), g.size()).Wait().ok());
  Handle c0 = w0->Clock();
  Handle c1 = w1->Clock();
  REQUIRE(c0.Wait().ok());
  REQUIRE(c1.Wait().ok());
  CHECK(Pull(*w0)[10] == -2 * g[10]);  // two gradients, not three
  // The next clock takes a push again.
  REQUIRE(w0->Push("w", g.data(), g.size()).Wait().ok());
}

TEST_CASE(
    "a push split into one message per block sums exactly, also as "
    "PushPull",
    "[integration]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, SpecText("split", kBlockFloats, 1.0, {{"w", {kFloats}, "zeros"}}),
      2);
  ClientOptions options;
  options.blocks_per_message = 1;
  auto client = Client::Connect(cluster->cluster_file(), options);
  REQUIRE(client.ok());
  std::vector<float> g(kFloats), out(kFloats);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i % 11);
  Handle push = (*client)->Push("w", g.data(), g.size());
  REQUIRE(push.Wait().ok());
  CHECK(push.shard_outcomes().size() == 2);  // one per shard, not per message
  REQUIRE(
      (*client)->PushPull("w", g.data(), out.data(), out.size()).Wait().ok());
  for (size_t i = 0; i < g.size(); i += 999) CHECK(out[i] == -2 * g[i]);
  CHECK(Pull(**client) == out);
}

}  // namespace
}  // namespace shardps::testing
