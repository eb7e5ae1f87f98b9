// A whole cluster as separate processes: shard servers, workers pushing
// concurrently, a co-located ModelView, and a server killed mid-training.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shardps/client.h"
#include "shardps/model_view.h"
#include "tests/integration/client_fixture.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/worker_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::seconds;

constexpr uint64_t kBlockFloats = 1024;  // small: tensors span many blocks

// A client whose calls may take up to 10 s.
std::unique_ptr<Client> ConnectPatient(const ClusterInfo& cluster) {
  ClientOptions options;
  options.request_timeout = seconds(10);
  return Connect(cluster, options);
}

// Element j of a --ramp gradient of value v: v * (1 + j % 8).
double Ramp(size_t j) { return 1.0 + static_cast<double>(j % 8); }

// Blocks of `w` (a copy of a tensor initialised to `init` and pushed only
// --ramp gradients of `value`) whose elements do not all show the same number
// of pushes: a block copy torn by a concurrent update.
long TornBlocks(const std::vector<float>& w, double init, double value) {
  long torn = 0;
  for (size_t start = 0; start < w.size(); start += kBlockFloats) {
    const size_t end = std::min<size_t>(start + kBlockFloats, w.size());
    const double pushes = std::round((init - w[start]) / (value * Ramp(start)));
    const size_t bad = CountMismatches(&w[start], end - start, [&](size_t i) {
      return init - pushes * value * Ramp(start + i);
    });
    torn += bad > 0;
  }
  return torn;
}

TEST_CASE(
    "cluster applies every push exactly once across 3 shards and 4 workers",
    "[integration][concurrency]") {
  TempDir dir;
  auto cluster = StartCluster(dir,
                              SpecText("exact", kBlockFloats, 1.0,
                                       {{"big", {5000}, "constant:1.5"},
                                        {"tiny", {3}, "constant:1.5"}}),
                              3);
  constexpr int kWorkers = 4;
  constexpr int kPushes = 50;
  std::vector<WorkerProcess> workers;
  for (int k = 0; k < kWorkers; ++k) {
    WorkerArgs args;
    args.cluster = cluster->cluster_file();
    args.tensors = {"big", "tiny"};
    args.pushes = kPushes;
    args.value = (k + 1) * 0.25;
    args.ramp = true;
    auto worker = StartWorker(args);
    REQUIRE(worker.ok());
    workers.push_back(std::move(worker).value());
  }
  const bool all_done = PumpWorkers(
      workers, [&] { return AllDone(workers); }, seconds(30));
  RequireAllExitedCleanly(workers);
  REQUIRE(all_done);
  for (const WorkerProcess& w : workers) {
    CHECK(w.done_acked == kPushes);
    CHECK(w.done_attempts == kPushes);
    CHECK(w.errors.empty());
  }

  // Worker k pushed kPushes * 0.25 * (k + 1) * ramp(j), lr 1.
  const double per_ramp = kPushes * 0.25 * (1 + 2 + 3 + 4);
  auto client = ConnectPatient(cluster->info());
  for (const char* name : {"big", "tiny"}) {
    INFO("tensor " << name);
    const std::vector<float> w = PullTensor(*client, name);
    CHECK(CountMismatches(w.data(), w.size(), [&](size_t j) {
            return 1.5 - per_ramp * Ramp(j);
          }) == 0);
  }

  // Exactly once also in the servers' own counters: every push reached each
  // block once ("big" has 5 blocks, "tiny" 1), and nothing was an error.
  auto stats = client->Stats();
  REQUIRE(stats.ok());
  uint64_t updates = 0, errors = 0;
  for (const ShardStats& s : *stats) {
    updates += s.updates_applied;
    errors += s.errors;
  }
  CHECK(updates == uint64_t{kWorkers} * kPushes * (5 + 1));
  CHECK(errors == 0);
}

TEST_CASE("model view in the test process sees every acknowledged update",
          "[integration][concurrency]") {
  TempDir dir;
  auto cluster = StartCluster(dir,
                              SpecText("view", kBlockFloats, 1.0,
                                       {{"big", {5000}, "constant:2"},
                                        {"tiny", {3}, "constant:2"},
                                        {"mat", {40, 100}, "constant:-1"}}),
                              3);
  auto view = ModelView::Open(cluster->info());
  INFO(view.status().ToString());
  REQUIRE(view.ok());
  auto client = ConnectPatient(cluster->info());

  SECTION("pushes from this process, checked right after each ack") {
    const std::vector<std::pair<std::string, uint64_t>> tensors = {
        {"big", 5}, {"tiny", 1}};  // name, blocks
    constexpr int kPushes = 20;
    for (int i = 1; i <= kPushes; ++i) {
      std::vector<std::vector<float>> grads;
      std::vector<Handle> handles;
      for (const auto& [name, blocks] : tensors) {
        const size_t n = client->layout().Find(name)->num_floats;
        grads.emplace_back(n);
        for (size_t j = 0; j < n; ++j)
          grads.back()[j] = static_cast<float>(0.5 * Ramp(j));
        handles.push_back(client->Push(name, grads.back().data(), n));
      }
      for (const Handle& h : handles) REQUIRE(h.Wait().ok());
      // No waiting, no pull: the ack itself must mean the view shows it.
      for (const auto& [name, blocks] : tensors) {
        INFO("tensor " << name << " after push " << i);
        auto live = (*view)->Tensor(name);
        REQUIRE(live.ok());
        const auto expected = [&](size_t j) { return 2.0 - i * 0.5 * Ramp(j); };
        REQUIRE(CountMismatches(live->data(), live->size(), expected) == 0);
        std::vector<float> copy(live->size());
        REQUIRE((*view)->Copy(name, copy.data(), copy.size()).ok());
        REQUIRE(CountMismatches(copy.data(), copy.size(), expected) == 0);
        auto updates = (*view)->Updates(name);
        REQUIRE(updates.ok());
        REQUIRE(*updates == blocks * i);
      }
    }
  }

  SECTION("pushes from worker processes, seen once they exit") {
    WorkerArgs args;
    args.cluster = cluster->cluster_file();
    args.tensors = {"mat"};
    args.pushes = 25;
    args.value = 0.25;
    args.ramp = true;
    std::vector<WorkerProcess> workers = StartWorkers(args, 2);
    // While they push, every ack a worker has printed must already be
    // visible here, and each block of a Copy must be one consistent state.
    long stale = 0, torn = 0, checks = 0;
    std::vector<float> copy(4000);
    PumpWorkers(
        workers,
        [&] {
          // Acks first: the view is read after them, so it must cover them.
          const long acked = workers[0].acked + workers[1].acked;
          auto updates = (*view)->Updates("mat");
          if (!updates.ok() || *updates < uint64_t(4 * acked)) ++stale;
          if ((*view)->Copy("mat", copy.data(), copy.size()).ok())
            torn += TornBlocks(copy, -1.0, 0.25);
          ++checks;
          return workers[0].done && workers[1].done;
        },
        seconds(30));
    RequireAllExitedCleanly(workers);
    INFO(checks << " checks while the workers pushed");
    CHECK(stale == 0);
    CHECK(torn == 0);
    auto mat = (*view)->Matrix("mat");
    REQUIRE(mat.ok());
    REQUIRE(mat->rows() == 40);
    REQUIRE(mat->cols() == 100);
    CHECK(CountMismatches(mat->data(), 4000, [](size_t j) {
            return -1.0 - 2 * 25 * 0.25 * Ramp(j);
          }) == 0);
    // Row-major: element (r, c) is flat index r * 100 + c.
    CHECK((*mat)(3, 7) == static_cast<float>(-1.0 - 12.5 * Ramp(307)));
    auto updates = (*view)->Updates("mat");
    REQUIRE(updates.ok());
    CHECK(*updates == 2 * 25 * 4);  // 4 blocks of 1024 floats
    // Untouched tensors stay at their initial values.
    auto tiny = (*view)->Tensor("tiny");
    REQUIRE(tiny.ok());
    CHECK(CountMismatches(tiny->data(), 3, [](size_t) { return 2.0; }) == 0);
  }
}

TEST_CASE(
    "at-least-once clients keep every acknowledged push when a shard is "
    "killed and restarted",
    "[integration]") {
  TempDir dir;
  // lr 1, gradient 1, init 0: each element ends at -(pushes applied to it).
  auto cluster = StartCluster(
      dir, SpecText("crash", kBlockFloats, 1.0, {{"w", {6000}, "zeros"}}), 3);
  constexpr uint32_t kVictim = 1;
  constexpr int kWorkers = 3;
  constexpr long kAcksPerPhase = 20;
  WorkerArgs args;
  args.cluster = cluster->cluster_file();
  args.tensors = {"w"};
  args.value = 1.0;
  args.retry = true;
  args.until_signal = true;
  args.timeout_ms = 3000;
  // Without exactly-once numbers: the outage fails pushes at once, the
  // worker retries them itself, and a retry may land twice.
  args.at_least_once = true;
  std::vector<WorkerProcess> workers = StartWorkers(args, kWorkers);
  const auto every_worker = [&](auto predicate) {
    return [&workers, predicate] {
      for (const WorkerProcess& w : workers)
        if (!predicate(w)) return false;
      return true;
    };
  };

  // Phase 1: training is under way.
  REQUIRE(PumpWorkers(workers, every_worker([&](const WorkerProcess& w) {
                        return w.acked >= kAcksPerPhase;
                      }),
                      seconds(20)));

  // kill -9 while pushes are in flight.
  KillShard(*cluster, kVictim);

  // Every worker sees the outage as an error, promptly, and keeps going.
  const bool saw_outage = PumpWorkers(
      workers,
      every_worker([](const WorkerProcess& w) { return !w.errors.empty(); }),
      seconds(10));
  REQUIRE(saw_outage);
  for (const WorkerProcess& w : workers) {
    INFO("first error: " << w.errors.front());
    CHECK((w.errors.front().rfind("unavailable", 0) == 0 ||
           w.errors.front().rfind("timeout", 0) == 0));
  }

  // Restart on the same segment and endpoint.
  const Status restarted = cluster->Restart(kVictim);
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  ServerProcess& again = cluster->server(kVictim);
  CHECK(again.process->WaitForStderr("after an unclean shutdown", seconds(5)));
  INFO("restarted server stderr: " << again.process->Stderr());
  CHECK(again.process->Stderr().find("reopened") != std::string::npos);

  // Phase 2: the workers' retry loops get through again.
  REQUIRE(PumpUntilEachAcked(workers, kAcksPerPhase, seconds(20)));

  StopWorkers(workers);
  long acked = 0, attempts = 0;
  for (const WorkerProcess& w : workers) {
    acked += w.done_acked;
    attempts += w.done_attempts;
  }
  INFO(acked << " iterations acknowledged in " << attempts << " attempts");
  REQUIRE(attempts > acked);  // the outage really cost some attempts

  // Bounds on the pushes applied to each element (= -weight):
  //  * never fewer than were acknowledged: a crash loses no acked push;
  //  * on the surviving shards, at most one per attempt: a failed attempt
  //    may still have landed there (there is no retry deduplication);
  //  * on the victim, at most one more per worker than acknowledged: only
  //    the attempt each worker had in flight at the kill can have landed
  //    unacknowledged; during the outage the client fails its part at once.
  auto client = ConnectPatient(cluster->info());
  const std::vector<float> w = PullTensor(*client, "w");
  const TensorLayout& layout = *client->layout().Find("w");
  size_t lost = 0, invented = 0;
  for (size_t j = 0; j < w.size(); ++j) {
    const auto block = static_cast<uint32_t>(j / kBlockFloats);
    const bool on_victim = client->layout().OwnerOf(layout, block) == kVictim;
    const double applied = -static_cast<double>(w[j]);
    const double most = on_victim ? acked + kWorkers : attempts;
    if (applied < acked && ++lost <= 5)
      UNSCOPED_INFO("element " << j << " lost pushes: " << applied << " < "
                               << acked << " acknowledged");
    if (applied > most && ++invented <= 5)
      UNSCOPED_INFO("element " << j << (on_victim ? " (victim)" : "") << ": "
                               << applied << " applied > " << most);
  }
  CHECK(lost == 0);
  CHECK(invented == 0);

  // The restarted shard's blocks are in the same state as the others': a
  // final round of known pushes lands exactly.
  std::vector<float> before = w;
  std::vector<float> grad(w.size(), 1.0f);
  for (int i = 0; i < 3; ++i)
    REQUIRE(client->Push("w", grad.data(), grad.size()).Wait().ok());
  const std::vector<float> after = PullTensor(*client, "w");
  CHECK(CountMismatches(after.data(), after.size(),
                        [&](size_t j) { return before[j] - 3.0; }) == 0);
}

}  // namespace
}  // namespace shardps::testing
