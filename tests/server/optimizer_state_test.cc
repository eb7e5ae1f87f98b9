// Optimizer state lives in the segment: a run interrupted by a server restart
// ends bit-for-bit where an uninterrupted run ends, for every stateful kind.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "server/shard_server.h"
#include "shardps/client.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

constexpr uint32_t kShards = 2;
constexpr size_t kFloats = 3000;  // 3 blocks of 1024: both shards hold some

ModelSpec SpecFor(const std::string& kind, const std::string& storage) {
  ModelSpec spec = test::MakeSpec(
      "opt", storage,
      {{"w", {kFloats}, "uniform:-1,1", 3}, {"b", {10}, "zeros", 0}},
      /*lr=*/0.01);
  spec.optimizer.kind = kind;
  spec.optimizer.weight_decay = 0.01;
  // The bias uses plain SGD: per-tensor overrides must hold across restarts.
  OptimizerSpec bias = spec.optimizer;
  bias.kind = "sgd";
  bias.lr = 0.1;
  spec.tensors[1].optimizer = bias;
  REQUIRE(ValidateModelSpec(spec).ok());
  return spec;
}

// A cluster of kShards in-process servers on `spec`'s storage; destroying it
// closes the servers cleanly, and a new one reopens the same segments.
class Servers {
 public:
  explicit Servers(const ModelSpec& spec) {
    for (uint32_t i = 0; i < kShards; ++i) {
      ServerOptions options;
      options.spec = spec;
      options.shard = i;
      options.shards = kShards;
      auto server = ShardServer::Start(options);
      REQUIRE(server.ok());
      cluster_.shards.push_back({i, (*server)->endpoint(), ""});
      servers_.push_back(std::move(server).value());
    }
    cluster_.model = spec.name;
    auto client = Client::Connect(cluster_);
    REQUIRE(client.ok());
    client_ = std::move(client).value();
  }

  // Pushes gradient number `step` (a deterministic function of it) to both
  // tensors and waits for every shard to acknowledge.
  void Push(int step) {
    std::vector<float> gw(kFloats), gb(10);
    for (size_t i = 0; i < kFloats; ++i)
      gw[i] = std::sin(0.37f * static_cast<float>(i) + step);
    for (size_t i = 0; i < gb.size(); ++i) gb[i] = 0.1f * (step % 3);
    REQUIRE(client_->Push("w", gw.data(), gw.size()).Wait().ok());
    REQUIRE(client_->Push("b", gb.data(), gb.size()).Wait().ok());
  }

  std::vector<float> Pull(const std::string& tensor, size_t n) {
    std::vector<float> out(n);
    REQUIRE(client_->Pull(tensor, out.data(), n).Wait().ok());
    return out;
  }

 private:
  ClusterInfo cluster_;
  std::vector<std::unique_ptr<ShardServer>> servers_;
  std::unique_ptr<Client> client_;
};

TEST_CASE("optimizer state survives a restart and the run continues exactly",
          "[optimizer_state]") {
  const std::string kind =
      GENERATE(as<std::string>{}, "momentum", "nesterov", "adagrad", "rmsprop",
               "adam", "adamw", "ftrl");
  INFO("optimizer " << kind);
  constexpr int kSteps = 12;

  test::TempDir interrupted_dir, straight_dir;
  const ModelSpec interrupted = SpecFor(kind, interrupted_dir.path());
  const ModelSpec straight = SpecFor(kind, straight_dir.path());

  std::vector<float> w_interrupted, b_interrupted;
  {
    Servers first(interrupted);
    for (int s = 0; s < kSteps / 2; ++s) first.Push(s);
  }  // servers stop cleanly; state stays in the segments
  {
    Servers second(interrupted);
    for (int s = kSteps / 2; s < kSteps; ++s) second.Push(s);
    w_interrupted = second.Pull("w", kFloats);
    b_interrupted = second.Pull("b", 10);
  }
  std::vector<float> w_straight, b_straight, w_start;
  {
    Servers only(straight);
    w_start = only.Pull("w", kFloats);
    for (int s = 0; s < kSteps; ++s) only.Push(s);
    w_straight = only.Pull("w", kFloats);
    b_straight = only.Pull("b", 10);
  }
  // Bit-for-bit: same kernels, same inputs, same state, same step counts.
  CHECK(w_interrupted == w_straight);
  CHECK(b_interrupted == b_straight);
  // And the optimizer did move the weights.
  CHECK(w_straight != w_start);
}

TEST_CASE("a spec that changes a tensor's optimizer kind is refused",
          "[optimizer_state]") {
  test::TempDir dir;
  ModelSpec spec = SpecFor("adam", dir.path());
  { Servers s(spec); }
  spec.tensors[1].optimizer->kind = "momentum";  // different state layout
  ServerOptions options;
  options.spec = spec;
  options.shard = 0;
  options.shards = kShards;
  auto server = ShardServer::Start(options);
  REQUIRE_FALSE(server.ok());
  CHECK(server.status().code() == Code::kSpecMismatch);
}

}  // namespace
}  // namespace shardps
