// Exactly-once pushes through real server processes: replies lost on the
// way back, and a shard killed with kill -9 under load and restarted. In
// both, every push is acknowledged in the end and the weights are exactly
// the sum of the pushes: none lost, none applied twice.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shardps/client.h"
#include "tests/integration/client_fixture.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/worker_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("pushes whose replies are lost are retried and applied once",
          "[integration][exactly-once]") {
  TempDir dir;
  // lr 1, gradient 1, init 0: each element ends at -(pushes applied).
  // 6000 floats in blocks of 1024: 6 blocks over 2 shards.
  auto cluster =
      StartCluster(dir, SpecText("drops", 1024, 1.0, {{"w", {6000}, "zeros"}}),
                   2, {"--fault-drop-push-replies", "3"});
  ClientOptions options;
  options.attempt_timeout = milliseconds(150);
  options.request_timeout = seconds(10);
  auto client = Connect(cluster->info(), options);
  const std::vector<float> grad(6000, 1.0f);

  // One at a time, then 8 in flight at once.
  constexpr int kSequential = 12;
  for (int i = 0; i < kSequential; ++i) {
    const Status s = client->Push("w", grad.data(), grad.size()).Wait();
    INFO("push " << i << ": " << s.ToString());
    REQUIRE(s.ok());
  }
  constexpr int kConcurrent = 8;
  std::vector<Handle> handles;
  for (int i = 0; i < kConcurrent; ++i)
    handles.push_back(client->Push("w", grad.data(), grad.size()));
  for (const Handle& h : handles) {
    const Status s = h.Wait();
    INFO(s.ToString());
    REQUIRE(s.ok());
  }

  constexpr int kPushes = kSequential + kConcurrent;
  CHECK(CountNot(PullTensor(*client, "w"), -float{kPushes}) == 0);
  auto stats = client->Stats();
  REQUIRE(stats.ok());
  // Every third reply was lost, so retries reached blocks that already had
  // the push; each block was still updated once per push.
  CHECK(SumStats(*stats, &ShardStats::duplicates) > 0);
  CHECK(SumStats(*stats, &ShardStats::updates_applied) ==
        uint64_t{kPushes} * 6);
}

TEST_CASE("an at-least-once client gets a timeout when a reply is lost",
          "[integration][exactly-once]") {
  TempDir dir;
  auto cluster =
      StartCluster(dir, SpecText("drops", 1024, 1.0, {{"w", {1000}, "zeros"}}),
                   1, {"--fault-drop-push-replies", "1"});
  ClientOptions options;
  options.exactly_once = false;
  options.request_timeout = milliseconds(400);
  auto client = Connect(cluster->info(), options);
  const std::vector<float> grad(1000, 1.0f);
  const Status s = client->Push("w", grad.data(), grad.size()).Wait();
  CHECK(s.code() == Code::kTimeout);
  // It was applied, once: the client does not know, and did not resend.
  CHECK(CountNot(PullTensor(*client, "w"), -1.0f) == 0);
}

TEST_CASE("a shard killed in the middle of a block update restarts whole",
          "[integration][exactly-once]") {
  TempDir dir;
  // 3 blocks, all on the one shard. The 5th block update writes NaN over
  // half its block and SIGKILLs the server.
  auto cluster =
      StartCluster(dir, SpecText("torn", 1024, 1.0, {{"w", {3000}, "zeros"}}),
                   1, {"--fault-kill-mid-update", "5"});
  ClientOptions options;
  options.attempt_timeout = milliseconds(300);
  options.request_timeout = seconds(20);
  auto client = Connect(cluster->info(), options);
  const std::vector<float> grad(3000, 1.0f);
  constexpr int kPushes = 4;
  std::vector<Handle> handles;
  for (int i = 0; i < kPushes; ++i)
    handles.push_back(client->Push("w", grad.data(), grad.size()));

  ServerProcess& server = cluster->server(0);
  const auto died = server.process->Wait(seconds(10));
  REQUIRE(died.has_value());
  CHECK(died->signal == SIGKILL);
  CHECK(server.process->Stderr().find("killed mid-update") !=
        std::string::npos);
  cluster->set_serve_flags({});
  const Status restarted = cluster->Restart(0);
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  for (const Handle& h : handles) {
    const Status s = h.Wait();
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  ServerProcess& again = cluster->server(0);
  CHECK(again.process->WaitForStderr("restored 1 block(s)", seconds(5)));
  INFO(again.process->Stderr());
  // No NaN left behind, and each push counted once.
  CHECK(CountNot(PullTensor(*client, "w"), -float{kPushes}) == 0);
}

TEST_CASE(
    "kill -9 under load and restart: the weights are exactly the sum of the "
    "acknowledged pushes",
    "[integration][exactly-once]") {
  TempDir dir;
  // Large blocks, so a kill often lands inside an update.
  constexpr uint64_t kBlock = 65536;
  constexpr uint64_t kFloats = 9 * kBlock;  // 3 blocks per shard
  auto cluster = StartCluster(
      dir, SpecText("crash", kBlock, 1.0, {{"w", {kFloats}, "zeros"}}), 3);
  constexpr int kWorkers = 3;
  WorkerArgs args;
  args.cluster = cluster->cluster_file();
  args.tensors = {"w"};
  args.value = 1.0;
  args.until_signal = true;
  // No retries in the worker: a push that is not acknowledged within
  // 30 s fails the worker. The client's own retries must carry it.
  args.timeout_ms = 30000;
  std::vector<WorkerProcess> workers = StartWorkers(args, kWorkers);
  REQUIRE(PumpUntilEachAcked(workers, 10, seconds(30)));

  // Three rounds: kill a shard mid-push, restart it on its segment.
  for (uint32_t round = 0; round < 3; ++round) {
    const uint32_t victim = round % 3;
    KillAndRestart(*cluster, victim);
    INFO("restarted shard "
         << victim << " stderr: " << cluster->server(victim).process->Stderr());
    REQUIRE(PumpUntilEachAcked(workers, 10, seconds(30)));
  }

  StopWorkers(workers);
  // Every push the workers made was acknowledged, first time round.
  const long acked = AckedFirstTime(workers);
  INFO(acked << " pushes acknowledged");
  auto client = Connect(cluster->info());
  CHECK(CountNot(PullTensor(*client, "w"), -static_cast<float>(acked)) == 0);
}

}  // namespace
}  // namespace shardps::testing
