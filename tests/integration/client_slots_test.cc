// Exactly-once client slots through real server processes: clients that
// come and go (one `shardps push` each) never use the slots up, a crashed
// client keeps its slot until no retry of it can arrive, and a push refused
// by one shard says which shards applied it.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/segment_format.h"
#include "common/wire.h"
#include "shardps/client.h"
#include "tests/integration/client_fixture.h"
#include "tests/integration/cluster_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// "w" has one 1024-float block on each of three shards; lr 1, gradients of 1:
// every element ends at minus the pushes applied.
std::string ThreeBlockSpec() {
  return SpecText("slots", 1024, 1.0, {{"w", {3072}, "zeros"}});
}

// All of "w", through a client of its own.
std::vector<float> PullW(const ClusterInfo& cluster) {
  return PullTensor(*Connect(cluster), "w");
}

// Exactly-once pushes sent by hand to one shard, as any client id with any
// sequence number and retry horizon, one at a time: stands in for many
// clients (or for a dead client's late retry) without a process each.
class RawPusher {
 public:
  RawPusher(const std::string& endpoint, std::string model)
      : model_(std::move(model)), socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  // Pushes a gradient of ones to block `block` of "w" (`floats` long) and
  // returns the shard's answer (kTimeout when none comes in 10 s).
  Status Push(uint64_t client, uint64_t seq, uint32_t horizon_ms,
              uint32_t block, size_t floats) {
    flatbuffers::FlatBufferBuilder b(256);
    auto model = b.CreateString(model_);
    auto tensor = b.CreateString("w");
    auto blocks = b.CreateVector(std::vector<uint32_t>{block});
    wire::RequestBuilder req(b);
    req.add_op(wire::Op::Push);
    req.add_request_id(++request_id_);
    req.add_client_id(client);
    req.add_model(model);
    req.add_tensor(tensor);
    req.add_blocks(blocks);
    req.add_seq(seq);
    req.add_retry_horizon_ms(horizon_ms);
    b.Finish(req.Finish());
    const std::vector<float> ones(floats, 1.0f);
    socket_.send(zmq::buffer(b.GetBufferPointer(), b.GetSize()),
                 zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(ones.data(), ones.size() * sizeof(float)),
                 zmq::send_flags::none);
    zmq::pollitem_t item = {socket_.handle(), 0, ZMQ_POLLIN, 0};
    for (;;) {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(10000)) == 0)
        return Status(Code::kTimeout, "no reply");
      zmq::message_t header;
      if (!socket_.recv(header)) continue;
      while (header.more()) {
        zmq::message_t rest;
        (void)socket_.recv(rest);
        if (!rest.more()) break;
      }
      auto reply = ParseReply(header.data(), header.size(), scratch_);
      if (!reply.ok()) return reply.status();
      if ((*reply)->request_id() != request_id_) continue;
      const Code code = CodeFromWire((*reply)->code());
      if (code == Code::kOk) return Status::Ok();
      return Status(code, (*reply)->message() ? (*reply)->message()->str()
                                              : std::string());
    }
  }

 private:
  const std::string model_;
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  HeaderScratch scratch_;
  uint64_t request_id_ = 0;
};

// The single block model's first weight.
float PullW1(const ClusterInfo& cluster) { return PullW(cluster).at(0); }

// Regression: the 129th `shardps push` used to be refused for 10 minutes
// (every earlier push had left its client's slot behind).
TEST_CASE("a thousand sequential shardps push commands all succeed",
          "[integration][exactly-once]") {
  TempDir dir;
  auto cluster = StartCluster(dir, ThreeBlockSpec(), 3);
  const std::string bin = kShardpsBinary;
  constexpr int kPushes = 1000;
  for (int i = 0; i < kPushes; ++i) {
    const RunResult push =
        Run({bin, "push", "--cluster", cluster->cluster_file(), "--tensor", "w",
             "--fill", "1"});
    INFO("push " << i << ": " << push.err);
    REQUIRE(push.status.exited);
    REQUIRE(push.status.code == 0);
  }
  CHECK(CountNot(PullW(cluster->info()), -float{kPushes}) == 0);
  // Each push's client gave its slots back when it exited.
  auto stats = Connect(cluster->info())->Stats();
  REQUIRE(stats.ok());
  for (const ShardStats& st : *stats) CHECK(st.exactly_once_clients == 0);
}

TEST_CASE(
    "a client killed with SIGKILL keeps its slot until it can no longer "
    "retry",
    "[integration][exactly-once]") {
  TempDir dir;
  auto cluster = StartCluster(
      dir, SpecText("slots", 1024, 1.0, {{"w", {1024}, "zeros"}}), 1);
  RawPusher raw(cluster->info().shards[0].endpoint, "slots");
  // Every slot but one held by live clients that may retry for 10 minutes.
  constexpr uint64_t kLive = kDedupeSlots - 1;
  for (uint64_t c = 0; c < kLive; ++c) {
    const Status s = raw.Push(1000 + c, 1, 600000, 0, 1024);
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  // The last one: a trainer whose retries end 1 s after each push, killed.
  WorkerArgs args;
  args.cluster = cluster->cluster_file();
  args.tensors = {"w"};
  args.until_signal = true;
  args.timeout_ms = 1000;
  args.client_id = 77;
  auto started = StartWorker(args);
  REQUIRE(started.ok());
  std::vector<WorkerProcess> workers;
  workers.push_back(std::move(started).value());
  REQUIRE(PumpWorkers(
      workers, [&] { return workers[0].acked >= 3; }, seconds(20)));
  REQUIRE(workers[0].process->Signal(SIGKILL));
  const auto killed = workers[0].process->Wait(kExitTimeout);
  REQUIRE(killed.has_value());
  CHECK(killed->signal == SIGKILL);
  // Its pushes were sequential: 1..n applied.
  const float w = PullW1(cluster->info());
  const auto applied = static_cast<uint64_t>(-w) - kLive;
  REQUIRE(applied >= 3);

  // Its slot is still its own: a newcomer is refused, with the reason...
  const Status refused = raw.Push(5000, 1, 1000, 0, 1024);
  CHECK(refused.code() == Code::kResourceExhausted);
  CHECK(Contains(refused.message(), "frees up in"));
  // ...and a late copy of its last push is recognised and not applied.
  CHECK(raw.Push(77, applied, 1000, 0, 1024).ok());
  CHECK(PullW1(cluster->info()) == w);

  // Once no retry of it can arrive (1 s + the margin after that copy), the
  // slot goes to the newcomer.
  const auto deadline = std::chrono::steady_clock::now() +
                        milliseconds(1000 + kRetryHorizonMarginMs + 20000);
  Status taken = refused;
  while (!taken.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(200));
    taken = raw.Push(5000, 1, 1000, 0, 1024);
    INFO(taken.ToString());
    if (!taken.ok()) REQUIRE(taken.code() == Code::kResourceExhausted);
  }
  INFO(taken.ToString());
  REQUIRE(taken.ok());
  CHECK(PullW1(cluster->info()) == w - 1);
  // The killed client has lost it: the live ones still hold theirs.
  CHECK(raw.Push(77, applied + 1, 1000, 0, 1024).code() ==
        Code::kResourceExhausted);
  CHECK(raw.Push(1000, 1, 600000, 0, 1024).ok());  // a duplicate, kept
  CHECK(PullW1(cluster->info()) == w - 1);
}

TEST_CASE("a push refused by one shard names the shards that applied it",
          "[integration][exactly-once]") {
  TempDir dir;
  auto cluster = StartCluster(dir, ThreeBlockSpec(), 3);
  // Shard 1's slots all held by live clients: block 1 of "w" lives there.
  RawPusher raw(cluster->info().shards[1].endpoint, "slots");
  for (uint64_t c = 0; c < kDedupeSlots; ++c) {
    const Status s = raw.Push(1000 + c, 1, 600000, 1, 1024);
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  SECTION("through the CLI") {
    const RunResult push =
        Run({kShardpsBinary, "push", "--cluster", cluster->cluster_file(),
             "--tensor", "w", "--fill", "1"});
    INFO(push.err);
    CHECK(push.status.exited);
    CHECK(push.status.code == 1);
    CHECK(Contains(push.err, "not applied on shard 1 (resource exhausted"));
    CHECK(Contains(push.err, "applied on shards 0, 2; retrying"));
    CHECK(Contains(push.err, "twice"));
  }
  SECTION("through the handle") {
    auto client = Connect(cluster->info());
    const std::vector<float> grad(3072, 1.0f);
    Handle h = client->Push("w", grad.data(), grad.size());
    const Status s = h.Wait();
    CHECK(s.code() == Code::kResourceExhausted);
    CHECK(Contains(s.message(), "not applied on shard 1"));
    const std::vector<ShardOutcome> outcomes = h.shard_outcomes();
    REQUIRE(outcomes.size() == 3);
    CHECK(outcomes[0].state == ShardOutcome::State::kApplied);
    CHECK(outcomes[1].state == ShardOutcome::State::kNotApplied);
    CHECK(outcomes[1].status.code() == Code::kResourceExhausted);
    CHECK(outcomes[2].state == ShardOutcome::State::kApplied);
  }
  // Applied where it says: blocks 0 and 2 once, block 1 only the 128 pushes.
  const std::vector<float> w = PullW(cluster->info());
  CHECK(CountNot({w.begin(), w.begin() + 1024}, -1.0f) == 0);
  CHECK(CountNot({w.begin() + 1024, w.begin() + 2048}, -128.0f) == 0);
  CHECK(CountNot({w.begin() + 2048, w.end()}, -1.0f) == 0);
}

}  // namespace
}  // namespace shardps::testing
