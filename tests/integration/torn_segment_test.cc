// A server killed inside a block update leaves that block mid-update (odd
// seqlock version) with nobody left to finish it. Regression tests for what
// the offline tools did with such a segment: `checkpoint --to` spun forever
// and left DIR.partial-<pid> behind, and `inspect` called the dead server
// "running" because its pid was still recorded.
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/segment.h"
#include "shardps/client.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using Catch::Matchers::Contains;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kFloats = 3000;  // 3 blocks of 1024, all on one shard

// A one-shard cluster whose first journaled block update writes NaN over
// half the block and SIGKILLs the server; the push that does it is sent,
// and the server is waited for until it died that way.
std::unique_ptr<LocalCluster> KilledMidUpdate(const TempDir& dir) {
  auto cluster = StartCluster(
      dir, SpecText("torn", 1024, 1.0, {{"w", {kFloats}, "zeros"}}), 1,
      {"--fault-kill-mid-update", "1"});
  {
    ClientOptions options;  // exactly-once: the push is journaled
    options.attempt_timeout = milliseconds(200);
    options.request_timeout = milliseconds(500);
    auto client = Client::Connect(cluster->info(), options);
    INFO(client.status().ToString());
    REQUIRE(client.ok());
    const std::vector<float> grad(kFloats, 1.0f);
    Handle push = (*client)->Push("w", grad.data(), grad.size());
    ServerProcess& server = cluster->server(0);
    const auto died = server.process->Wait(seconds(10));
    REQUIRE(died.has_value());
    REQUIRE(died->signal == SIGKILL);
    REQUIRE(server.process->Stderr().find("killed mid-update") !=
            std::string::npos);
    CHECK_FALSE(push.Wait().ok());  // never acknowledged
  }
  return cluster;
}

// Whether a block of the segment at `path` is mid-update (odd version).
bool AnyTorn(const std::string& path) {
  auto seg = Segment::OpenReadOnly(path);
  INFO(seg.status().ToString());
  REQUIRE(seg.ok());
  for (uint32_t i = 0; i < (*seg)->num_blocks(); ++i)
    if ((*seg)->version(i).seq.load() & 1) return true;
  return false;
}

// Every weight of the segment at `path`, in local block order.
std::vector<float> Weights(const std::string& path) {
  auto seg = Segment::OpenReadOnly(path);
  INFO(seg.status().ToString());
  REQUIRE(seg.ok());
  std::vector<float> w;
  for (uint32_t i = 0; i < (*seg)->num_blocks(); ++i)
    w.insert(w.end(), (*seg)->block_data(i),
             (*seg)->block_data(i) + (*seg)->block(i).num_floats);
  return w;
}

// Entries of `dir` whose name holds ".partial-": a checkpoint left behind.
std::vector<std::string> PartialDirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".partial-") != std::string::npos)
      out.push_back(e.path().string());
  return out;
}

TEST_CASE(
    "checkpoint of a segment whose server died mid-update repairs it from "
    "the journal instead of hanging",
    "[integration][checkpoint]") {
  TempDir dir;
  auto cluster = KilledMidUpdate(dir);
  const std::string segment = cluster->info().shards[0].segment;
  REQUIRE(AnyTorn(segment));

  const auto started = std::chrono::steady_clock::now();
  const RunResult cp = Run({kShardpsBinary, "checkpoint", "--cluster",
                            cluster->cluster_file(), "--to", dir.File("ck")});
  INFO(cp.out << cp.err);
  REQUIRE(cp.status.exited);  // not left running by the harness's timeout
  CHECK(std::chrono::steady_clock::now() - started < seconds(10));
  CHECK(PartialDirs(dir.path()).empty());
  REQUIRE(cp.status.code == 0);
  CHECK_THAT(cp.err, Contains("put back 1 block(s)"));
  // The segment itself is whole again: the torn push never happened.
  CHECK_FALSE(AnyTorn(segment));
  CHECK(Weights(segment) == std::vector<float>(kFloats, 0.0f));

  // And so is the checkpoint: restored elsewhere, it holds the weights from
  // before the torn push.
  const RunResult restore =
      Run({kShardpsBinary, "restore", "--from", dir.File("ck"), "--spec",
           dir.File("spec.toml"), "--storage", dir.File("restored")});
  INFO(restore.out << restore.err);
  REQUIRE(restore.status.ok());
  const std::string restored =
      Segment::PathFor(dir.File("restored"), "torn", 0, 1);
  CHECK_FALSE(AnyTorn(restored));
  CHECK(Weights(restored) == std::vector<float>(kFloats, 0.0f));
}

TEST_CASE(
    "checkpoint refuses a torn block its journal cannot restore, leaving no "
    "partial directory",
    "[integration][checkpoint]") {
  TempDir dir;
  auto cluster = KilledMidUpdate(dir);
  const std::string segment = cluster->info().shards[0].segment;
  REQUIRE(std::remove((segment + ".journal").c_str()) == 0);

  const RunResult cp = Run({kShardpsBinary, "checkpoint", "--cluster",
                            cluster->cluster_file(), "--to", dir.File("ck")});
  INFO(cp.out << cp.err);
  REQUIRE(cp.status.exited);
  CHECK(cp.status.code != 0);
  CHECK_THAT(cp.err, Contains("mid-update"));
  CHECK_THAT(cp.err, Contains("of 'w' in " + segment));
  CHECK(PartialDirs(dir.path()).empty());
  CHECK_FALSE(std::filesystem::exists(dir.File("ck")));
}

TEST_CASE("inspect tells a dead server from a live one by the segment's lock",
          "[integration][cli]") {
  TempDir dir;
  auto cluster = KilledMidUpdate(dir);
  const std::string segment = cluster->info().shards[0].segment;

  const RunResult text = Run({kShardpsBinary, "inspect", segment});
  INFO(text.out << text.err);
  REQUIRE(text.status.ok());
  CHECK_THAT(text.out, !Contains("running"));
  CHECK_THAT(text.out, Contains("no server holds the segment's lock"));
  CHECK_THAT(text.out, Contains("died without a clean shutdown"));
  CHECK_THAT(text.out, Contains("(torn)"));
  const RunResult json = Run({kShardpsBinary, "inspect", "--json", segment});
  INFO(json.out << json.err);
  REQUIRE(json.status.ok());
  CHECK_THAT(json.out, Contains("\"server_running\": false"));

  // A live server on the segment (it repaired the block on open).
  cluster->set_serve_flags({});
  const Status restarted = cluster->Restart(0);
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  const RunResult live = Run({kShardpsBinary, "inspect", "--json", segment});
  INFO(live.out << live.err);
  REQUIRE(live.status.ok());
  CHECK_THAT(live.out, Contains("\"server_running\": true"));
  CHECK_THAT(live.out, !Contains("\"torn\": true"));
}

}  // namespace
}  // namespace shardps::testing
