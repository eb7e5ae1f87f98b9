// The host replica as a real process (`shardps replica`) beside real shard
// servers on one host: --all-shards makes it mirror shards that are local,
// so what crosses the wire between hosts is tested here without a bed.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/replica_state.h"
#include "common/segment.h"
#include "shardps/client.h"
#include "shardps/model_view.h"
#include "tests/integration/cluster_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kBlockFloats = 1024;
constexpr uint64_t kFloatsA = 5000;  // 5 blocks over 2 shards
constexpr uint64_t kFloatsB = 3000;  // 3 blocks

std::string ReplicaSpec(const std::string& consistency = "") {
  return SpecText("rep", kBlockFloats, 1.0,
                  {{"a", {kFloatsA}, "zeros"}, {"b", {kFloatsB}, "zeros"}}) +
         consistency;
}

std::unique_ptr<ChildProcess> StartReplica(const TempDir& dir,
                                           const LocalCluster& cluster) {
  auto replica = ChildProcess::Spawn({kShardpsBinary, "replica", "--cluster",
                                      cluster.cluster_file(), "--spec",
                                      dir.File("spec.toml"), "--storage",
                                      dir.File("replica"), "--all-shards"});
  REQUIRE(replica.ok());
  const auto ready =
      (*replica)->ReadLineContaining("replica ready", seconds(15));
  INFO((*replica)->Stderr());
  REQUIRE(ready.has_value());
  CHECK(Contains(*ready, "mirroring shard(s) [0,1]"));
  return std::move(replica).value();
}

std::vector<std::string> CopyPaths(const TempDir& dir) {
  return {Segment::PathFor(dir.File("replica"), "rep", 0, 2),
          Segment::PathFor(dir.File("replica"), "rep", 1, 2)};
}

// Waits (up to 15 s) until the replica's copy of `tensor` equals `want`.
bool CopyReaches(const TempDir& dir, const std::string& tensor,
                 const std::vector<float>& want) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(15);
  std::vector<float> got(want.size());
  while (std::chrono::steady_clock::now() < deadline) {
    auto view = ModelView::Open(CopyPaths(dir));
    if (view.ok() &&
        (*view)->Copy(tensor, got.data(), got.size(), milliseconds(100)).ok() &&
        got == want)
      return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

std::unique_ptr<ReplicaState> Freshness(const TempDir& dir, uint32_t shard) {
  auto state = ReplicaState::OpenReadOnly(
      ReplicaState::PathFor(dir.File("replica"), "rep", shard, 2));
  INFO(state.status().ToString());
  REQUIRE(state.ok());
  return std::move(state).value();
}

std::vector<float> Pulled(Client& client, const std::string& tensor, size_t n) {
  std::vector<float> out(n);
  REQUIRE(client.Pull(tensor, out.data(), n).Wait().ok());
  return out;
}

TEST_CASE("a host replica mirrors every block and streams each change",
          "[integration][replica]") {
  TempDir dir;
  auto cluster = StartCluster(dir, ReplicaSpec(), 2);
  auto replica = StartReplica(dir, *cluster);
  auto client = Client::Connect(cluster->cluster_file());
  REQUIRE(client.ok());

  std::vector<float> grad(kFloatsA);
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = 0.25f * (i % 97);
  REQUIRE((*client)->Push("a", grad.data(), grad.size()).Wait().ok());
  const std::vector<float> a1 = Pulled(**client, "a", kFloatsA);
  CHECK(a1[96] == -24.0f);
  INFO(replica->Stderr());
  REQUIRE(CopyReaches(dir, "a", a1));

  // Every block of the copy holds the shard's version, and says so.
  for (uint32_t shard = 0; shard < 2; ++shard) {
    auto fresh = Freshness(dir, shard);
    for (uint32_t b = 0; b < fresh->num_blocks(); ++b) {
      const BlockFreshness& f = fresh->block(b);
      CHECK(f.held.load() == f.latest.load());
      CHECK(f.behind_since_ns.load() == 0);
      CHECK(f.received_ns.load() > 0);
    }
    CHECK(fresh->WriterAlive());
  }
  // The shards count the stream: one replica each, every block sent once
  // at the start (the copies were new) and again after the push.
  auto stats = (*client)->Stats();
  REQUIRE(stats.ok());
  uint64_t blocks = 0;
  for (const ShardStats& s : *stats) {
    CHECK(s.replicas == 1);
    blocks += s.replica_blocks;
    CHECK(s.replica_bytes > 0);
  }
  CHECK(blocks == 8 + 5);  // a: 5 blocks, b: 3; a's 5 changed
}

TEST_CASE(
    "a replica killed with -9 restarts from its copies and catches up "
    "with only what changed",
    "[integration][replica]") {
  TempDir dir;
  auto cluster = StartCluster(dir, ReplicaSpec(), 2);
  auto replica = StartReplica(dir, *cluster);
  auto client = Client::Connect(cluster->cluster_file());
  REQUIRE(client.ok());
  std::vector<float> ga(kFloatsA, 1.0f), gb(kFloatsB, 2.0f);
  REQUIRE((*client)->Push("a", ga.data(), ga.size()).Wait().ok());
  REQUIRE((*client)->Push("b", gb.data(), gb.size()).Wait().ok());
  REQUIRE(CopyReaches(dir, "b", std::vector<float>(kFloatsB, -2.0f)));
  REQUIRE(CopyReaches(dir, "a", std::vector<float>(kFloatsA, -1.0f)));

  // When each of b's blocks arrived, before the crash.
  auto fresh0 = Freshness(dir, 0);
  auto seg0 = Segment::OpenReadOnly(CopyPaths(dir)[0]);
  REQUIRE(seg0.ok());
  std::vector<int64_t> b_arrivals;
  for (uint32_t l = 0; l < (*seg0)->num_blocks(); ++l)
    if ((*seg0)->tensor((*seg0)->block(l).tensor).name == std::string("b"))
      b_arrivals.push_back(fresh0->block(l).received_ns.load());
  REQUIRE(!b_arrivals.empty());

  REQUIRE(replica->Signal(SIGKILL));
  REQUIRE(replica->Wait(kExitTimeout).has_value());
  CHECK_FALSE(fresh0->WriterAlive());
  // Only `a` changes while the replica is down.
  REQUIRE((*client)->Push("a", ga.data(), ga.size()).Wait().ok());
  replica = StartReplica(dir, *cluster);
  REQUIRE(CopyReaches(dir, "a", std::vector<float>(kFloatsA, -2.0f)));
  CHECK(CopyReaches(dir, "b", std::vector<float>(kFloatsB, -2.0f)));
  // b's blocks did not travel again: they arrived when they did before.
  size_t i = 0;
  for (uint32_t l = 0; l < (*seg0)->num_blocks(); ++l)
    if ((*seg0)->tensor((*seg0)->block(l).tensor).name == std::string("b"))
      CHECK(fresh0->block(l).received_ns.load() == b_arrivals[i++]);
}

TEST_CASE("in bsp the replica says when it holds a clock's whole model",
          "[integration][replica]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, ReplicaSpec("\n[consistency]\nmode = \"bsp\"\nworkers = 1\n"), 2);
  auto replica = StartReplica(dir, *cluster);
  ClientOptions options;
  options.worker = 0;
  auto client = Client::Connect(cluster->cluster_file(), options);
  REQUIRE(client.ok());
  std::vector<float> ga(kFloatsA, 0.5f), gb(kFloatsB, 0.25f);
  for (int clock = 0; clock < 3; ++clock) {
    REQUIRE((*client)->Push("a", ga.data(), ga.size()).Wait().ok());
    REQUIRE((*client)->Push("b", gb.data(), gb.size()).Wait().ok());
    REQUIRE((*client)->Clock().Wait().ok());
    // After clock c is applied the shards' applied_clock is c + 1.
    for (uint32_t shard = 0; shard < 2; ++shard) {
      auto fresh = Freshness(dir, shard);
      const Status held = fresh->WaitHeldClock(
          clock + 1, std::chrono::steady_clock::now() + seconds(15));
      INFO(held.ToString());
      REQUIRE(held.ok());
    }
    const float want_a = -0.5f * static_cast<float>(clock + 1);
    const float want_b = -0.25f * static_cast<float>(clock + 1);
    std::vector<float> got_a(kFloatsA), got_b(kFloatsB);
    auto view = ModelView::Open(CopyPaths(dir));
    REQUIRE(view.ok());
    REQUIRE((*view)->Copy("a", got_a.data(), got_a.size()).ok());
    REQUIRE((*view)->Copy("b", got_b.data(), got_b.size()).ok());
    CHECK(got_a == std::vector<float>(kFloatsA, want_a));
    CHECK(got_b == std::vector<float>(kFloatsB, want_b));
  }
}

TEST_CASE(
    "through the client, a bsp Clock returns once the replica holds "
    "the clock and the view then reads exactly that model",
    "[integration][replica]") {
  TempDir dir;
  auto cluster =
      StartCluster(dir,
                   ReplicaSpec("\n[consistency]\nmode = \"bsp\"\nworkers = 1\n"
                               "apply = \"block\"\n"),
                   2);
  auto replica = StartReplica(dir, *cluster);
  ClientOptions options;
  options.worker = 0;
  options.replica_storage = dir.File("replica");
  options.map_local_segments = false;  // read as another host would
  options.blocks_per_message = 1;
  auto client = Client::Connect(cluster->cluster_file(), options);
  REQUIRE(client.ok());
  auto view = ModelView::Open(**client);
  INFO(view.status().ToString());
  REQUIRE(view.ok());
  std::vector<float> ga(kFloatsA, 1.5f), got(kFloatsA);
  for (int clock = 0; clock < 4; ++clock) {
    REQUIRE((*client)->Push("a", ga.data(), ga.size()).Wait().ok());
    const Status clocked = (*client)->Clock().Wait();
    INFO(clocked.ToString());
    REQUIRE(clocked.ok());
    // No waiting here: the Clock handle already waited for the copy.
    REQUIRE((*view)->Copy("a", got.data(), got.size()).ok());
    CHECK(got ==
          std::vector<float>(kFloatsA, -1.5f * static_cast<float>(clock + 1)));
    auto fresh = (*view)->Freshness("a");
    REQUIRE(fresh.ok());
    CHECK(fresh->blocks_behind == 0);
    CHECK(fresh->replicas_running);
  }
}

TEST_CASE(
    "SIGHUP makes a replica start over on its cluster file, keeping "
    "its copies",
    "[integration][replica]") {
  TempDir dir;
  auto cluster = StartCluster(dir, ReplicaSpec(), 2);
  auto replica = StartReplica(dir, *cluster);
  auto client = Client::Connect(cluster->cluster_file());
  REQUIRE(client.ok());
  std::vector<float> ga(kFloatsA, 1.0f);
  REQUIRE((*client)->Push("a", ga.data(), ga.size()).Wait().ok());
  REQUIRE(CopyReaches(dir, "a", std::vector<float>(kFloatsA, -1.0f)));
  REQUIRE(replica->Signal(SIGHUP));
  INFO(replica->Stderr());
  REQUIRE(replica->ReadLineContaining("replica ready", seconds(15)));
  CHECK(replica->WaitForStderr("SIGHUP, re-reading", seconds(5)));
  REQUIRE((*client)->Push("a", ga.data(), ga.size()).Wait().ok());
  CHECK(CopyReaches(dir, "a", std::vector<float>(kFloatsA, -2.0f)));
}

TEST_CASE("a replica refuses a spec that is not the servers'",
          "[integration][replica]") {
  TempDir dir;
  auto cluster = StartCluster(dir, ReplicaSpec(), 2);
  const std::string other = WriteSpec(
      dir.File("other.toml"),
      SpecText("rep", kBlockFloats, 1.0, {{"a", {kFloatsA + 1}, "zeros"}}));
  const RunResult r =
      Run({kShardpsBinary, "replica", "--cluster", cluster->cluster_file(),
           "--spec", other, "--storage", dir.File("replica"), "--all-shards"});
  CHECK(r.status.code == 2);  // bad input: the spec
  CHECK(Contains(r.err, "spec hash"));
}

}  // namespace
}  // namespace shardps::testing
