// BatchQueue across real processes: producers in child processes, the
// consumer here. Order per producer, no loss, no duplicates, backpressure,
// Close stopping producers, a producer killed mid-write, and the bound on
// batches made but never used.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "shardps/batch_queue.h"
#include "shardps/client.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint32_t kBatch = 4, kFeatures = 16;

std::unique_ptr<ChildProcess> StartProducer(const std::string& queue,
                                            uint64_t id, uint64_t count,
                                            bool die_after_claim = false) {
  std::vector<std::string> argv = {SHARDPS_QUEUE_PRODUCER,
                                   "--queue",
                                   queue,
                                   "--id",
                                   std::to_string(id),
                                   "--count",
                                   std::to_string(count)};
  if (die_after_claim) argv.push_back("--die-after-claim");
  auto child = ChildProcess::Spawn(argv);
  REQUIRE(child.ok());
  return std::move(child).value();
}

std::unique_ptr<BatchQueue> CreateQueue(const TempDir& dir, uint32_t slots) {
  auto q = BatchQueue::Create(dir.File("q"), slots, 4096);
  INFO(q.status().ToString());
  REQUIRE(q.ok());
  return std::move(q).value();
}

// Takes one batch, checks it is whole (every float the same value, which
// encodes producer and sequence) and returns that value.
uint64_t TakeOne(BatchQueue& q) {
  auto b = q.Next(seconds(30));
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  REQUIRE(b->shape().batch == kBatch);
  REQUIRE(b->shape().features == kFeatures);
  const float first = b->features()[0];
  for (uint64_t i = 0; i < b->shape().feature_floats(); ++i)
    REQUIRE(b->features()[i] == first);
  for (uint64_t i = 0; i < b->shape().label_floats(); ++i)
    REQUIRE(b->labels()[i] == first);
  CHECK(static_cast<float>(b->producer_id() * 1000000 + b->producer_seq()) ==
        first);
  q.Release(*b);
  return static_cast<uint64_t>(first);
}

TEST_CASE("queue keeps each producer's order with no loss or duplicates",
          "[integration][queue][concurrency]") {
  TempDir dir;
  auto q = CreateQueue(dir, 8);
  constexpr int kProducers = 3;
  constexpr uint64_t kEach = 300;
  std::vector<std::unique_ptr<ChildProcess>> producers;
  for (int p = 1; p <= kProducers; ++p)
    producers.push_back(StartProducer(q->path(), p, kEach));
  std::map<uint64_t, uint64_t> next;  // producer -> expected sequence
  for (uint64_t i = 0; i < kProducers * kEach; ++i) {
    const uint64_t v = TakeOne(*q);
    const uint64_t producer = v / 1000000, seq = v % 1000000;
    INFO("producer " << producer << " seq " << seq);
    REQUIRE(seq == next[producer]);  // in order, none lost, none repeated
    ++next[producer];
  }
  for (auto& p : producers) {
    const auto exit = p->Wait(seconds(15));
    REQUIRE(exit.has_value());
    CHECK(exit->ok());
  }
  CHECK(q->Next(milliseconds(50)).status().code() == Code::kTimeout);
  const QueueStats s = q->Stats();
  CHECK(s.produced == kProducers * kEach);
  CHECK(s.consumed == kProducers * kEach);
}

TEST_CASE("a full queue blocks its producer until the consumer takes a batch",
          "[integration][queue]") {
  TempDir dir;
  auto q = CreateQueue(dir, 4);
  auto producer = StartProducer(q->path(), 1, 10);
  // It fills the 4 slots and then waits; it has not finished.
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (q->Stats().produced < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(5));
  CHECK(q->Stats().produced == 4);
  CHECK_FALSE(producer->Wait(milliseconds(300)).has_value());
  CHECK(q->Stats().produced == 4);  // still nothing beyond the capacity
  for (int i = 0; i < 10; ++i) TakeOne(*q);
  const auto exit = producer->Wait(seconds(15));
  REQUIRE(exit.has_value());
  CHECK(exit->ok());
  CHECK(q->Stats().producer_blocked_s > 0);
}

TEST_CASE("close stops blocked producers and bounds the batches wasted",
          "[integration][queue]") {
  TempDir dir;
  constexpr uint32_t kSlots = 4;
  auto q = CreateQueue(dir, kSlots);
  constexpr int kProducers = 3;
  std::vector<std::unique_ptr<ChildProcess>> producers;
  for (int p = 1; p <= kProducers; ++p)
    producers.push_back(StartProducer(q->path(), p, 0));  // until closed
  constexpr uint64_t kTaken = 25;
  for (uint64_t i = 0; i < kTaken; ++i) TakeOne(*q);
  q->Close();
  for (auto& p : producers) {
    const auto exit = p->Wait(seconds(10));
    REQUIRE(exit.has_value());  // woken by Close, not by a timeout
    CHECK(exit->ok());
    auto line = p->ReadLineContaining("done", seconds(5));
    REQUIRE(line.has_value());
    CHECK_THAT(*line, Catch::Matchers::Contains("closed"));
  }
  // Generated but never used: at most the queue's capacity plus one batch
  // per producer that was mid-push when the queue closed.
  const QueueStats s = q->Stats();
  INFO("produced " << s.produced);
  CHECK(s.produced <= kTaken + kSlots + kProducers);
  CHECK(s.refused >= 1);
  // The consumer can still drain what was committed, then sees kClosed.
  uint64_t drained = 0;
  for (;;) {
    auto b = q->Next(seconds(5));
    if (!b.ok()) {
      CHECK(b.status().code() == Code::kClosed);
      break;
    }
    q->Release(*b);
    ++drained;
  }
  CHECK(kTaken + drained == s.produced);
}

TEST_CASE("a producer killed mid-write leaves the queue usable",
          "[integration][queue]") {
  TempDir dir;
  auto q = CreateQueue(dir, 4);
  auto doomed = StartProducer(q->path(), 9, 0, /*die_after_claim=*/true);
  REQUIRE(doomed->ReadLineContaining("claimed", seconds(10)).has_value());
  REQUIRE(doomed->Signal(SIGKILL));
  REQUIRE(doomed->Wait(seconds(10)).has_value());
  // A healthy producer behind it: the consumer gets all of its batches and
  // never the half-written one.
  auto healthy = StartProducer(q->path(), 1, 20);
  for (uint64_t i = 0; i < 20; ++i) {
    const uint64_t v = TakeOne(*q);
    CHECK(v / 1000000 == 1);
    CHECK(v % 1000000 == i);
  }
  REQUIRE(healthy->Wait(seconds(10)).has_value());
  CHECK(q->Stats().skipped == 1);
}

TEST_CASE("a consumer killed while holding a batch does not wedge the queue",
          "[integration][queue]") {
  TempDir dir;
  auto q = CreateQueue(dir, 2);
  const BatchShape shape{kBatch, 1, kFeatures, 1};
  // Value 0 from producer 0, sequence 0: what TakeOne expects.
  std::vector<float> f(shape.feature_floats(), 0.0f), l(shape.label_floats());
  REQUIRE(q->Push(shape, f.data(), l.data(), seconds(1)).ok());
  REQUIRE(q->Push(shape, f.data(), l.data(), seconds(1)).ok());
  // A child takes the first batch and dies without releasing it.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto mine = BatchQueue::Open(q->path());
    if (mine.ok() && (*mine)->Next(seconds(5)).ok()) ::_exit(0);
    ::_exit(1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  TakeOne(*q);  // the second batch
  // The dead consumer's slot is recovered: two more pushes fit.
  CHECK(q->Push(shape, f.data(), l.data(), seconds(10)).ok());
  CHECK(q->Push(shape, f.data(), l.data(), seconds(10)).ok());
}

TEST_CASE("opening a file that is not a queue fails cleanly",
          "[integration][queue]") {
  TempDir dir;
  CHECK(BatchQueue::Open(dir.File("missing")).status().code() ==
        Code::kNotFound);
  auto q = CreateQueue(dir, 2);
  CHECK(BatchQueue::Create(q->path(), 2, 4096).status().code() == Code::kBusy);
  // One slot cannot tell "committed" from "free for the next ticket".
  CHECK(BatchQueue::Create(dir.File("one"), 1, 4096).status().code() ==
        Code::kInvalidArgument);
  // A batch larger than a slot is refused before anything is claimed.
  std::vector<float> big(2048, 1.0f);
  CHECK(q->Push(BatchShape{2, 1, 1024, 1}, big.data(), big.data(),
                milliseconds(10))
            .code() == Code::kSizeMismatch);
  CHECK(q->Stats().produced == 0);
}

TEST_CASE("a remote producer's pushes wait for space and stop at close",
          "[integration][queue][concurrency]") {
  TempDir dir;
  const std::string spec = WriteSpec(
      dir.File("spec.toml"), SpecText("qhost", 1024, 1.0, {{"t", {8}}}));
  auto server = ChildProcess::Spawn(
      {kShardpsBinary, "serve", "--spec", spec, "--shard", "0", "--shards", "1",
       "--listen", "tcp://127.0.0.1:*", "--storage", dir.File("st"), "--queue",
       "feed:4:4096"});
  REQUIRE(server.ok());
  auto line = (*server)->ReadLine(kStartTimeout);
  INFO((*server)->Stderr());
  REQUIRE(line.has_value());
  const std::string endpoint = line->substr(line->rfind(' ') + 1);
  ClusterInfo cluster;
  cluster.shards.push_back({0, endpoint, ""});
  ClientOptions options;
  options.request_timeout = seconds(20);
  auto producer = Client::Connect(cluster, options);
  REQUIRE(producer.ok());
  auto consumer = BatchQueue::Open(dir.File("st") + "/qhost/feed.queue");
  INFO(consumer.status().ToString());
  REQUIRE(consumer.ok());

  const BatchShape shape{kBatch, 1, kFeatures, 1};
  std::vector<std::vector<float>> f(6), l(6);
  for (int i = 0; i < 6; ++i) {
    f[i].assign(shape.feature_floats(), float(i));
    l[i].assign(shape.label_floats(), float(i));
  }
  for (int i = 0; i < 4; ++i)
    REQUIRE((*producer)
                ->QueuePush(0, "feed", shape, f[i].data(), l[i].data())
                .Wait()
                .ok());
  // The queue is full: the fifth push is held until a slot frees.
  Handle fifth =
      (*producer)->QueuePush(0, "feed", shape, f[4].data(), l[4].data());
  CHECK(fifth.WaitFor(milliseconds(300)).code() == Code::kTimeout);
  auto first = (*consumer)->Next(seconds(5));
  REQUIRE(first.ok());
  CHECK(first->features()[0] == 0.0f);
  (*consumer)->Release(*first);
  CHECK(fifth.Wait().ok());
  // Order is kept: 1, 2, 3, 4 follow.
  for (int i = 1; i <= 4; ++i) {
    auto b = (*consumer)->Next(seconds(5));
    REQUIRE(b.ok());
    CHECK(b->features()[0] == float(i));
    CHECK(b->labels()[0] == float(i));
    (*consumer)->Release(*b);
  }
  (*consumer)->Close();
  CHECK((*producer)
            ->QueuePush(0, "feed", shape, f[5].data(), l[5].data())
            .Wait()
            .code() == Code::kClosed);
  CHECK((*producer)
            ->QueuePush(0, "nope", shape, f[5].data(), l[5].data())
            .Wait()
            .code() == Code::kNotFound);
}

}  // namespace
}  // namespace shardps::testing
