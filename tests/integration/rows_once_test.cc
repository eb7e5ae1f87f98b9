// Exactly-once row pushes (PushRows) and queue pushes (QueuePush) through
// real server processes: replies lost on the way back, and a shard killed
// with kill -9 under load and restarted. Rows end at exactly the sum of the
// acknowledged pushes (SGD, lr 1, gradients of 1), and a queue gets every
// batch once, in order.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "shardps/batch_queue.h"
#include "shardps/client.h"
#include "tests/integration/client_fixture.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/worker_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A model with one sparse table 'emb' (rows start at 0). `block` sets the
// frame bound (twice the block size): a row push must fit one frame.
std::string RowSpecText(uint64_t block, uint64_t dim, uint64_t capacity) {
  return SpecText("rows", block, 1.0, {{"dense", {64}, "zeros"}}) +
         "\n[[table]]\nname = \"emb\"\ndim = " + std::to_string(dim) +
         "\ncapacity = " + std::to_string(capacity) + "\ninit = \"zeros\"\n";
}

// Rows 0..n-1 of 'emb'.
std::vector<float> PullRows(Client& client, uint64_t n, uint64_t dim) {
  std::vector<uint64_t> ids(n);
  for (uint64_t i = 0; i < n; ++i) ids[i] = i;
  std::vector<float> rows(n * dim);
  const Status s = client.PullRows("emb", ids.data(), n, rows.data()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return rows;
}

TEST_CASE("row pushes whose replies are lost are retried and applied once",
          "[integration][exactly-once][table]") {
  TempDir dir;
  constexpr uint64_t kDim = 4, kRows = 200;
  auto cluster = StartCluster(dir, RowSpecText(1024, kDim, 1000), 2,
                              {"--fault-drop-push-replies", "3"});
  ClientOptions options;
  options.attempt_timeout = milliseconds(150);
  options.request_timeout = seconds(10);
  auto client = Connect(cluster->info(), options);
  std::vector<uint64_t> ids(kRows);
  for (uint64_t i = 0; i < kRows; ++i) ids[i] = i;
  const std::vector<float> grads(kRows * kDim, 1.0f);

  // One at a time, then 8 in flight at once.
  constexpr int kSequential = 12, kConcurrent = 8;
  for (int i = 0; i < kSequential; ++i) {
    const Status s =
        client->PushRows("emb", ids.data(), kRows, grads.data()).Wait();
    INFO("push " << i << ": " << s.ToString());
    REQUIRE(s.ok());
  }
  std::vector<Handle> handles;
  for (int i = 0; i < kConcurrent; ++i)
    handles.push_back(client->PushRows("emb", ids.data(), kRows, grads.data()));
  for (const Handle& h : handles) {
    const Status s = h.Wait();
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  CHECK(CountNot(PullRows(*client, kRows, kDim),
                 -float{kSequential + kConcurrent}) == 0);
  // Every third reply was lost: retries found their push already applied.
  CHECK(Duplicates(*client) > 0);
}

TEST_CASE(
    "kill -9 under row-push load and restart: trainers survive and each row "
    "is exactly the sum of the acknowledged pushes",
    "[integration][exactly-once][table]") {
  TempDir dir;
  // Big pushes (about 1.3 MiB of gradients per shard), so a kill often
  // lands inside one. Blocks of 1 Mi floats: frames up to 8 MiB.
  constexpr uint64_t kDim = 64, kRows = 16384;
  auto cluster = StartCluster(dir, RowSpecText(1 << 20, kDim, 3 * kRows), 3);
  constexpr int kWorkers = 2;
  WorkerArgs args;
  args.cluster = cluster->cluster_file();
  args.table = "emb";
  args.rows = static_cast<int>(kRows);
  args.value = 1.0;
  args.until_signal = true;
  // No retries in the worker: a push not acknowledged within 30 s fails
  // it. The client's own retries must carry it across each outage.
  args.timeout_ms = 30000;
  std::vector<WorkerProcess> workers = StartWorkers(args, kWorkers);
  const auto worker_errors = [&] {
    std::string all;
    for (const WorkerProcess& w : workers) all += w.process->Stderr();
    return all;
  };
  {
    const bool ok = PumpUntilEachAcked(workers, 5, seconds(30));
    INFO("workers' stderr: " << worker_errors());
    REQUIRE(ok);
  }

  for (uint32_t round = 0; round < 3; ++round) {
    const uint32_t victim = round % 3;
    KillAndRestart(*cluster, victim);
    INFO("restarted shard "
         << victim << " stderr: " << cluster->server(victim).process->Stderr());
    const bool ok = PumpUntilEachAcked(workers, 5, seconds(30));
    INFO("workers' stderr: " << worker_errors());
    for (const WorkerProcess& w : workers) REQUIRE_FALSE(w.done);
    REQUIRE(ok);
  }

  StopWorkers(workers);
  // Every push was acknowledged first time round: none failed.
  const long acked = AckedFirstTime(workers);
  INFO(acked << " row pushes acknowledged");
  auto client = Connect(cluster->info());
  CHECK(CountNot(PullRows(*client, kRows, kDim), -static_cast<float>(acked)) ==
        0);
}

// Queue tests: batch i is i everywhere, so the consumer checks order, loss
// and duplicates.
constexpr uint32_t kBatch = 2, kFeatures = 8;

void ExpectBatches(BatchQueue& consumer, int count) {
  for (int i = 0; i < count; ++i) {
    auto b = consumer.Next(seconds(10));
    INFO("batch " << i << ": " << b.status().ToString());
    REQUIRE(b.ok());
    CHECK(b->features()[0] == float(i));
    CHECK(b->labels()[0] == float(i));
    consumer.Release(*b);
  }
  // Nothing more: no batch was enqueued twice.
  CHECK(consumer.Next(milliseconds(300)).status().code() == Code::kTimeout);
}

TEST_CASE("queue pushes whose replies are lost are enqueued once",
          "[integration][exactly-once][queue]") {
  TempDir dir;
  constexpr int kPushes = 12;
  auto cluster = StartCluster(
      dir, SpecText("qonce", 1024, 1.0, {{"t", {8}}}), 1,
      {"--fault-drop-push-replies", "2", "--queue", "feed:32:4096"});
  ClientOptions options;
  options.attempt_timeout = milliseconds(150);
  options.request_timeout = seconds(10);
  auto producer = Connect(cluster->info(), options);
  auto consumer = BatchQueue::Open(dir.File("storage") + "/qonce/feed.queue");
  INFO(consumer.status().ToString());
  REQUIRE(consumer.ok());
  const BatchShape shape{kBatch, 1, kFeatures, 1};
  for (int i = 0; i < kPushes; ++i) {
    const std::vector<float> f(shape.feature_floats(), float(i));
    const std::vector<float> l(shape.label_floats(), float(i));
    const Status s =
        producer->QueuePush(0, "feed", shape, f.data(), l.data()).Wait();
    INFO("push " << i << ": " << s.ToString());
    REQUIRE(s.ok());
  }
  ExpectBatches(**consumer, kPushes);
  CHECK(Duplicates(*producer) > 0);
}

TEST_CASE(
    "a queue producer across a kill -9 of its shard: no batch lost, none "
    "duplicated",
    "[integration][exactly-once][queue]") {
  TempDir dir;
  constexpr int kPushes = 40;
  constexpr uint64_t kSlots = 8;
  // Every third reply lost before the kill: some batches are in the queue
  // unacknowledged when the shard dies, and their retries reach the
  // restarted shard.
  auto cluster = StartCluster(
      dir, SpecText("qkill", 1024, 1.0, {{"t", {8}}}), 1,
      {"--queue", "feed:8:4096", "--fault-drop-push-replies", "3"});
  auto consumer = BatchQueue::Open(dir.File("storage") + "/qkill/feed.queue");
  INFO(consumer.status().ToString());
  REQUIRE(consumer.ok());
  ClientOptions options;
  options.attempt_timeout = milliseconds(300);
  options.request_timeout = seconds(20);
  auto producer = Connect(cluster->info(), options);
  const BatchShape shape{kBatch, 1, kFeatures, 1};
  std::vector<std::vector<float>> f(kPushes), l(kPushes);
  for (int i = 0; i < kPushes; ++i) {
    f[i].assign(shape.feature_floats(), float(i));
    l[i].assign(shape.label_floats(), float(i));
  }
  // All in flight: the queue fills, the rest wait in the shard (and are
  // retried by the client while they wait) when it dies.
  std::vector<Handle> handles;
  for (int i = 0; i < kPushes; ++i)
    handles.push_back(
        producer->QueuePush(0, "feed", shape, f[i].data(), l[i].data()));
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while ((*consumer)->Stats().produced < kSlots &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(5));
  REQUIRE((*consumer)->Stats().produced == kSlots);
  // Long enough for some waiting pushes to be sent again.
  std::this_thread::sleep_for(milliseconds(400));
  REQUIRE(cluster->server(0).process->Signal(SIGKILL));
  REQUIRE(cluster->server(0).process->Wait(kExitTimeout).has_value());
  cluster->set_serve_flags({"--queue", "feed:8:4096"});
  const Status restarted = cluster->Restart(0);
  INFO(restarted.ToString());
  REQUIRE(restarted.ok());
  ExpectBatches(**consumer, kPushes);
  for (const Handle& h : handles) {
    const Status s = h.Wait();
    INFO(s.ToString());
    CHECK(s.ok());
  }
  CHECK((*consumer)->Next(milliseconds(300)).status().code() == Code::kTimeout);
}

}  // namespace
}  // namespace shardps::testing
