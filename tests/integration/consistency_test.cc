// Consistency modes with real server processes: bsp applies each clock once
// with the exact sum, ssp bounds how far a fast worker runs ahead, async
// never waits, and a straggler turns into an error, not a hang.
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
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
constexpr uint64_t kTensorFloats = 5000;  // 5 blocks: both shards hold some

std::string ConsistencySpecText(const std::string& model,
                                const std::string& section) {
  return SpecText(model, kBlockFloats, 1.0, {{"w", {kTensorFloats}, "zeros"}}) +
         "\n[consistency]\n" + section;
}

std::unique_ptr<Client> ConnectWorker(const ClusterInfo& cluster, int worker) {
  ClientOptions options;
  options.worker = worker;
  options.request_timeout = seconds(20);
  options.connect_timeout = seconds(10);
  auto client = Client::Connect(cluster, options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

std::unique_ptr<ChildProcess> StartClockWorker(const std::string& cluster_file,
                                               int worker, int clocks,
                                               int sleep_ms) {
  auto child = ChildProcess::Spawn(
      {SHARDPS_CLOCK_WORKER, "--cluster", cluster_file, "--tensor", "w",
       "--worker", std::to_string(worker), "--clocks", std::to_string(clocks),
       "--sleep-ms", std::to_string(sleep_ms), "--pull"});
  REQUIRE(child.ok());
  return std::move(child).value();
}

// Reads a clock worker's stdout to its "done" line; returns every line.
std::vector<std::string> ReadToDone(ChildProcess& worker) {
  std::vector<std::string> lines;
  for (;;) {
    auto line = worker.ReadLine(seconds(60));
    INFO("stderr: " << worker.Stderr());
    REQUIRE(line.has_value());
    if (*line == "done") return lines;
    INFO(*line);
    REQUIRE(line->rfind("error", 0) != 0);
    lines.push_back(*line);
  }
}

TEST_CASE("bsp applies every clock once with the exact sum of all workers",
          "[integration][consistency][concurrency]") {
  TempDir dir;
  constexpr int kWorkers = 3, kClocks = 6;
  auto cluster = StartCluster(
      dir, ConsistencySpecText("bsp", "mode = \"bsp\"\nworkers = 3\n"), 2);
  std::vector<std::unique_ptr<ChildProcess>> workers;
  // Different speeds, so the fast ones must wait for the slow one each clock.
  for (int w = 0; w < kWorkers; ++w)
    workers.push_back(
        StartClockWorker(cluster->cluster_file(), w, kClocks, w == 2 ? 30 : 0));
  // sgd lr 1: after clock n every weight is -sum_{c<n} sum_w (w+1)(c+1)
  // = -6 * n(n+1)/2, and every pull after Clock(n) must see exactly that:
  // all of clock n's gradients and none of clock n+1's.
  for (int w = 0; w < kWorkers; ++w) {
    const std::vector<std::string> lines = ReadToDone(*workers[w]);
    int pulls = 0;
    for (const std::string& line : lines) {
      int n = 0;
      double lo = 0, hi = 0;
      if (std::sscanf(line.c_str(), "pulled %d %lf %lf", &n, &lo, &hi) != 3)
        continue;
      ++pulls;
      const double want = -6.0 * n * (n + 1) / 2;
      INFO("worker " << w << ": " << line << ", want " << want);
      CHECK(lo == want);
      CHECK(hi == want);
    }
    CHECK(pulls == kClocks);
  }
  // Exactly once: one optimizer step per block per clock, on every shard.
  auto observer = ConnectWorker(cluster->info(), -1);
  auto stats = observer->Stats();
  REQUIRE(stats.ok());
  for (const ShardStats& s : *stats) {
    INFO("shard " << s.shard);
    CHECK(s.consistency == "bsp");
    CHECK(s.applied_clock == kClocks);
    CHECK(s.updates_applied == uint64_t{s.blocks} * kClocks);
    REQUIRE(s.workers_detail.size() == kWorkers);
    for (const WorkerStats& ws : s.workers_detail) CHECK(ws.clock == kClocks);
  }
}

TEST_CASE("bsp with reduce = mean applies the average gradient",
          "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir,
      ConsistencySpecText("bspmean",
                          "mode = \"bsp\"\nworkers = 2\nreduce = \"mean\"\n"),
      1);
  auto w0 = ConnectWorker(cluster->info(), 0);
  auto w1 = ConnectWorker(cluster->info(), 1);
  std::vector<float> g0(kTensorFloats, 1.0f), g1(kTensorFloats, 3.0f);
  std::vector<float> out(kTensorFloats);
  REQUIRE(w0->Push("w", g0.data(), g0.size()).Wait().ok());
  Handle c0 = w0->Clock();
  // Worker 1 has not clocked: clock 0 is not applied, so worker 0 waits.
  CHECK(c0.WaitFor(milliseconds(300)).code() == Code::kTimeout);
  REQUIRE(w1->Push("w", g1.data(), g1.size()).Wait().ok());
  REQUIRE(w1->Clock().Wait().ok());
  REQUIRE(c0.Wait().ok());
  REQUIRE(w0->Pull("w", out.data(), out.size()).Wait().ok());
  CHECK(*std::min_element(out.begin(), out.end()) == -2.0f);
  CHECK(*std::max_element(out.begin(), out.end()) == -2.0f);
}

TEST_CASE("bsp refuses pushes from non-workers and out-of-range workers",
          "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, ConsistencySpecText("bspbad", "mode = \"bsp\"\nworkers = 2\n"), 1);
  auto tool = ConnectWorker(cluster->info(), -1);
  std::vector<float> g(kTensorFloats, 1.0f);
  const Status push = tool->Push("w", g.data(), g.size()).Wait();
  CHECK(push.code() == Code::kInvalidArgument);
  CHECK_THAT(push.ToString(), Catch::Matchers::Contains("only workers push"));
  CHECK(tool->Clock().Wait().code() == Code::kInvalidArgument);

  ClientOptions options;
  options.worker = 2;
  auto bad = Client::Connect(cluster->info(), options);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().ToString(), Catch::Matchers::Contains("2 workers"));

  // The model is untouched by the refused push.
  std::vector<float> out(kTensorFloats, 1.0f);
  REQUIRE(tool->Pull("w", out.data(), out.size()).Wait().ok());
  CHECK(*std::max_element(out.begin(), out.end()) == 0.0f);
}

TEST_CASE("ssp lets a fast worker run at most s clocks ahead",
          "[integration][consistency][concurrency]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir,
      ConsistencySpecText("ssp",
                          "mode = \"ssp:2\"\nworkers = 2\nwait_timeout = 2\n"),
      2);
  auto slow = ConnectWorker(cluster->info(), 0);
  auto fast = ConnectWorker(cluster->info(), 1);
  std::vector<float> out(kTensorFloats);

  // The slow worker is at clock 0: the fast one may finish clocks 0 and 1.
  REQUIRE(fast->Clock().Wait().ok());
  REQUIRE(fast->Clock().Wait().ok());
  REQUIRE(fast->Pull("w", out.data(), out.size()).Wait().ok());
  // A third would put it 3 ahead: the Clock and a pull at clock 3 wait.
  Handle third = fast->Clock();
  CHECK(third.WaitFor(milliseconds(300)).code() == Code::kTimeout);
  Handle pull = fast->Pull("w", out.data(), out.size());
  CHECK(pull.WaitFor(milliseconds(100)).code() == Code::kTimeout);
  CHECK_FALSE(third.Done());
  // Pushes never wait in ssp.
  std::vector<float> g(kTensorFloats, 1.0f);
  CHECK(fast->Push("w", g.data(), g.size()).WaitFor(seconds(10)).ok());

  // The slow worker catches up one clock: both waits end.
  REQUIRE(slow->Clock().Wait().ok());
  CHECK(third.Wait().ok());
  CHECK(pull.Wait().ok());

  // Now a fourth clock waits for the slow worker, who never comes: the
  // server's wait_timeout (2 s) fails it with the reason, not a hang.
  const Status stuck = fast->Clock().Wait();
  CHECK(stuck.code() == Code::kTimeout);
  CHECK_THAT(stuck.ToString(), Catch::Matchers::Contains("wait_timeout"));
  CHECK_THAT(stuck.ToString(),
             Catch::Matchers::Contains("worker 0 at clock 1"));

  // status shows each worker's clock; the slow one's exit shows too.
  auto observer = ConnectWorker(cluster->info(), -1);
  slow.reset();
  bool gone = false;
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (!gone && std::chrono::steady_clock::now() < deadline) {
    auto stats = observer->Stats();
    REQUIRE(stats.ok());
    const ShardStats& s = (*stats)[0];
    REQUIRE(s.workers_detail.size() == 2);
    CHECK(s.consistency == "ssp:2");
    CHECK(s.workers_detail[0].clock == 1);
    CHECK(s.workers_detail[1].clock == 4);
    gone = s.workers_detail[0].state == WorkerStats::State::kGone;
    if (!gone) std::this_thread::sleep_for(milliseconds(20));
  }
  CHECK(gone);
}

TEST_CASE("async clocks never wait", "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, ConsistencySpecText("async", "mode = \"async\"\nworkers = 2\n"), 2);
  auto fast = ConnectWorker(cluster->info(), 1);
  std::vector<float> g(kTensorFloats, 1.0f), out(kTensorFloats);
  // Worker 0 never shows up; worker 1 runs 20 clocks ahead regardless.
  for (int c = 0; c < 20; ++c) {
    REQUIRE(fast->Push("w", g.data(), g.size()).Wait().ok());
    REQUIRE(fast->Clock().Wait().ok());
    REQUIRE(fast->Pull("w", out.data(), out.size()).Wait().ok());
    CHECK(out[0] == static_cast<float>(-(c + 1)));
  }
  CHECK(fast->clock() == 20);
}

TEST_CASE("a restarted bsp worker resumes at the clock the shards recorded",
          "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, ConsistencySpecText("resume", "mode = \"bsp\"\nworkers = 1\n"), 2);
  {
    auto w = ConnectWorker(cluster->info(), 0);
    for (int c = 0; c < 3; ++c) REQUIRE(w->Clock().Wait().ok());
  }
  auto again = ConnectWorker(cluster->info(), 0);
  CHECK(again->clock() == 3);
  std::vector<float> g(kTensorFloats, 2.0f), out(kTensorFloats);
  REQUIRE(again->Push("w", g.data(), g.size()).Wait().ok());
  REQUIRE(again->Clock().Wait().ok());
  REQUIRE(again->Pull("w", out.data(), out.size()).Wait().ok());
  CHECK(out[0] == -2.0f);
}

TEST_CASE("a second live process with a worker's index is refused at Connect",
          "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, ConsistencySpecText("claim", "mode = \"bsp\"\nworkers = 1\n"), 2);
  // Worker 0 clocks on alone (bsp with one worker) until it is killed.
  auto first = StartClockWorker(cluster->cluster_file(), 0, 1000000, 20);
  REQUIRE(first->ReadLineContaining("clock 1", seconds(20)).has_value());

  auto second = StartClockWorker(cluster->cluster_file(), 0, 3, 0);
  auto refused = second->ReadLine(seconds(20));
  INFO("stderr: " << second->Stderr());
  REQUIRE(refused.has_value());
  CHECK_THAT(*refused, Catch::Matchers::StartsWith("error connect"));
  CHECK_THAT(*refused, Catch::Matchers::Contains(
                           "worker index 0 is already in use by another live "
                           "client (127.0.0.1:"));
  CHECK_THAT(*refused, Catch::Matchers::Contains("holding it for"));
  auto refused_exit = second->Wait(seconds(20));
  REQUIRE(refused_exit.has_value());
  CHECK(refused_exit->code == 1);
  // The holder was not disturbed: it keeps clocking.
  CHECK(first->ReadLineContaining("clock ", seconds(20)).has_value());

  // kill -9: the kernel closes its connections, the shards free index 0,
  // and a restarted worker 0 is accepted and resumes at the recorded clock.
  REQUIRE(first->Signal(SIGKILL));
  REQUIRE(first->Wait(seconds(20)).has_value());
  auto restarted = StartClockWorker(cluster->cluster_file(), 0, 1000000, 0);
  auto line = restarted->ReadLine(seconds(20));
  INFO("restarted stderr: " << restarted->Stderr());
  REQUIRE(line.has_value());
  CHECK_THAT(*line, Catch::Matchers::StartsWith("clock "));
}

TEST_CASE("bsp clocks and accumulators survive kill -9 of a shard",
          "[integration][consistency]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, ConsistencySpecText("bsprestart", "mode = \"bsp\"\nworkers = 2\n"),
      2);
  auto w0 = ConnectWorker(cluster->info(), 0);
  auto w1 = ConnectWorker(cluster->info(), 1);
  std::vector<float> out(kTensorFloats);
  auto step = [&](int c) {
    std::vector<float> g0(kTensorFloats, float(c + 1));
    std::vector<float> g1(kTensorFloats, float(2 * (c + 1)));
    REQUIRE(w0->Push("w", g0.data(), g0.size()).Wait().ok());
    REQUIRE(w1->Push("w", g1.data(), g1.size()).Wait().ok());
    Handle c0 = w0->Clock();
    REQUIRE(w1->Clock().Wait().ok());
    REQUIRE(c0.Wait().ok());
  };
  auto wait_reconnected = [&](Client& client) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (client.Stats().ok()) return;
      std::this_thread::sleep_for(milliseconds(50));
    }
    FAIL("client did not reconnect");
  };
  step(0);
  step(1);
  // Worker 0 has pushed for clock 2 (summed in shard 0's accumulator, not
  // yet applied) when shard 0 dies; the restarted shard still holds it.
  std::vector<float> g(kTensorFloats, 3.0f);
  REQUIRE(w0->Push("w", g.data(), g.size()).Wait().ok());
  KillAndRestart(*cluster, 0);
  wait_reconnected(*w0);
  wait_reconnected(*w1);
  std::vector<float> g1(kTensorFloats, 6.0f);
  REQUIRE(w1->Push("w", g1.data(), g1.size()).Wait().ok());
  Handle c0 = w0->Clock();
  REQUIRE(w1->Clock().Wait().ok());
  REQUIRE(c0.Wait().ok());
  // sgd lr 1: -(1+2) - (2+4) - (3+6) = -18 everywhere, on both shards.
  REQUIRE(w0->Pull("w", out.data(), out.size()).Wait().ok());
  CHECK(*std::min_element(out.begin(), out.end()) == -18.0f);
  CHECK(*std::max_element(out.begin(), out.end()) == -18.0f);
  auto stats = w0->Stats();
  REQUIRE(stats.ok());
  for (const ShardStats& s : *stats) {
    CHECK(s.applied_clock == 3);
    CHECK(s.workers_detail[0].clock == 3);
  }
}

}  // namespace
}  // namespace shardps::testing
