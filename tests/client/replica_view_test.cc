// ModelView::Open(client) over shards read through a host replica's copies,
// ModelView::Freshness, and the bsp Clock gate on the replica's held clock.
// The shards are real ShardServers; the replica is simulated by the test,
// which writes the copy and its freshness file the way `shardps replica`
// does (seqlock BeginWrite/copy/EndWrite, then the versions, then a bump).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/futex.h"
#include "common/replica_state.h"
#include "common/segment.h"
#include "common/seqlock.h"
#include "shardps/client.h"
#include "shardps/model_view.h"
#include "tests/in_process_cluster.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

// "w": 3000 floats in blocks of 1024 dealt to shards 0, 1, 0 (the last
// 952 floats).
constexpr size_t kW = 3000;
constexpr uint32_t kShards = 2;

ModelSpec ReplicaSpec(const std::string& storage) {
  return test::MakeSpec("rview", storage, {{"w", {kW}, "uniform:-1,1", 3}});
}

ModelSpec BspSpec(const std::string& storage) {
  ModelSpec spec = ReplicaSpec(storage);
  spec.consistency.mode = ConsistencySpec::Mode::kBsp;
  spec.consistency.workers = 1;
  return spec;
}

// What `shardps replica` keeps for one shard: the copy and its state file.
class SimulatedReplica {
 public:
  SimulatedReplica(const ModelSpec& spec, uint32_t shard,
                   const std::string& storage) {
    std::filesystem::create_directories(storage + "/" + spec.name);
    copy_ =
        test::OpenServing(spec, shard, kShards,
                          Segment::PathFor(storage, spec.name, shard, kShards));
    state_ = test::ValueOrThrow(ReplicaState::OpenForWriting(
        ReplicaState::PathFor(storage, spec.name, shard, kShards),
        SpecHash(spec), shard, kShards, copy_->num_blocks()));
  }

  // Block `b` of tensor 0 becomes all `value`, as the shard's version
  // `held`, with `latest` announced; behind for `behind` if held < latest.
  void WriteBlock(uint32_t b, float value, uint64_t held, uint64_t latest,
                  std::chrono::nanoseconds behind = {}) {
    const auto local = static_cast<uint32_t>(copy_->LocalBlock(0, b));
    REQUIRE(copy_->LocalBlock(0, b) >= 0);
    BlockVersion& v = copy_->version(local);
    BeginWrite(v);
    float* data = copy_->block_data(local);
    for (uint64_t j = 0; j < copy_->block(local).data_bytes / sizeof(float);
         ++j)
      data[j] = value;
    EndWrite(v);
    BlockFreshness& f = state_->block(local);
    const int64_t now = MonotonicNs();
    f.held.store(held, std::memory_order_release);
    f.latest.store(latest, std::memory_order_release);
    f.received_ns.store(now, std::memory_order_release);
    f.behind_since_ns.store(held < latest ? now - behind.count() : 0,
                            std::memory_order_release);
    FutexBump(state_->header().events);
  }

  void SetHeldClock(int64_t clock) {
    state_->header().held_clock.store(clock, std::memory_order_release);
    FutexBump(state_->header().events);
  }
  // As a replica that exited: its pid is cleared and the copy's flock,
  // which tells readers a replica runs, is released with the copy.
  // REQUIRES: no WriteBlock after it.
  void Stop() {
    state_->header().replica_pid.store(0, std::memory_order_release);
    copy_.reset();
  }

 private:
  std::unique_ptr<Segment> copy_;
  std::unique_ptr<ReplicaState> state_;
};

// Moves a running shard's segment file away so that Connect no longer finds
// it on this host, as if the shard ran on another one; moves it back at the
// end (the server keeps its mapping either way).
class SegmentElsewhere {
 public:
  explicit SegmentElsewhere(std::string path)
      : path_(std::move(path)), moved_(path_ + ".elsewhere") {
    std::filesystem::rename(path_, moved_);
  }
  ~SegmentElsewhere() {
    std::error_code ignored;  // a destructor must not throw
    std::filesystem::rename(moved_, path_, ignored);
  }

 private:
  const std::string path_;
  const std::string moved_;
};

std::unique_ptr<Client> MustConnect(const ClusterInfo& info,
                                    ClientOptions options) {
  auto client = Client::Connect(info, options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

std::unique_ptr<ModelView> MustOpen(const Client& client) {
  auto view = ModelView::Open(client);
  INFO(view.status().ToString());
  REQUIRE(view.ok());
  return std::move(view).value();
}

std::vector<float> MustPull(Client& client) {
  std::vector<float> out(kW);
  const Status s = client.Pull("w", out.data(), kW).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

// Floats [begin, end) of `w` that are not `want(j)`.
template <typename Want>
size_t Mismatches(const Eigen::Map<const Eigen::VectorXf>& w, size_t begin,
                  size_t end, Want want) {
  size_t bad = 0;
  for (size_t j = begin; j < end; ++j)
    if (w[static_cast<Eigen::Index>(j)] != want(j)) ++bad;
  return bad;
}

TEST_CASE("model view maps a local shard and a replica copy as one tensor",
          "[model_view][replica]") {
  test::InProcessCluster cluster(kShards, 1, ReplicaSpec);
  test::TempDir replicas;
  SegmentElsewhere away(cluster.server(1).segment_path());
  ClientOptions options;
  options.replica_storage = replicas.path();
  auto client = MustConnect(cluster.info(), options);
  REQUIRE(client->local_segments()[0] == cluster.server(0).segment_path());
  REQUIRE(client->local_segments()[1].empty());

  std::vector<float> grad(kW, 1.0f);
  REQUIRE(client->Push("w", grad.data(), kW).Wait().ok());  // version 1
  SimulatedReplica replica(cluster.spec(), 1, replicas.path());
  replica.WriteBlock(1, 7.5f, 3, 5, std::chrono::seconds(2));
  auto view = MustOpen(*client);

  auto w = view->Tensor("w");
  REQUIRE(w.ok());
  REQUIRE(w->size() == static_cast<Eigen::Index>(kW));
  const std::vector<float> live = MustPull(*client);
  auto from_shard = [&live](size_t j) { return live[j]; };
  CHECK(Mismatches(*w, 0, 1024, from_shard) == 0);
  CHECK(Mismatches(*w, 1024, 2048, [](size_t) { return 7.5f; }) == 0);
  CHECK(Mismatches(*w, 2048, kW, from_shard) == 0);
  CHECK(live[1024] != 7.5f);  // the copy, not the shard, is what we see
  std::vector<float> copied(kW);
  REQUIRE(view->Copy("w", copied.data(), kW).ok());
  CHECK(copied[1500] == 7.5f);
  CHECK(copied[2500] == live[2500]);
  CHECK(*view->Updates("w") == 1 + 3 + 1);

  auto fresh = view->Freshness("w");
  REQUIRE(fresh.ok());
  REQUIRE(fresh->blocks.size() == 3);
  for (uint32_t b : {0u, 2u}) {
    const ModelView::BlockFreshness& f = fresh->blocks[b];
    CHECK(f.local);
    CHECK(f.shard == 0);
    CHECK(f.held == 1);
    CHECK(f.latest == 1);
    CHECK(f.age.count() == 0);
  }
  const ModelView::BlockFreshness& r = fresh->blocks[1];
  CHECK_FALSE(r.local);
  CHECK(r.shard == 1);
  CHECK(r.held == 3);
  CHECK(r.latest == 5);
  CHECK(r.age >= std::chrono::seconds(2));
  CHECK(r.age < std::chrono::seconds(60));
  CHECK(r.replica_running);  // this process wrote it, and runs
  CHECK(fresh->blocks_behind == 1);
  CHECK(fresh->most_versions_behind == 2);
  CHECK(fresh->oldest_age == r.age);
  CHECK(fresh->replicas_running);

  replica.WriteBlock(1, -2.0f, 5, 5);  // caught up
  CHECK((*w)[1024] == -2.0f);          // live: the same mapping shows it
  fresh = view->Freshness("w");
  REQUIRE(fresh.ok());
  CHECK(fresh->blocks[1].held == 5);
  CHECK(fresh->blocks[1].age.count() == 0);
  CHECK(fresh->blocks_behind == 0);
  CHECK(fresh->most_versions_behind == 0);
  replica.Stop();
  fresh = view->Freshness("w");
  REQUIRE(fresh.ok());
  CHECK_FALSE(fresh->blocks[1].replica_running);
  CHECK_FALSE(fresh->replicas_running);
  CHECK(view->Freshness("nope").status().code() == Code::kNotFound);
}

TEST_CASE(
    "model view reads every shard through replicas when local "
    "segments are not mapped",
    "[model_view][replica]") {
  test::InProcessCluster cluster(kShards, 1, ReplicaSpec);
  test::TempDir replicas;
  ClientOptions options;
  options.replica_storage = replicas.path();
  options.map_local_segments = false;
  auto client = MustConnect(cluster.info(), options);
  CHECK(client->local_segments() == std::vector<std::string>(kShards, ""));
  SimulatedReplica copy0(cluster.spec(), 0, replicas.path());
  SimulatedReplica copy1(cluster.spec(), 1, replicas.path());
  copy0.WriteBlock(0, 1.0f, 1, 1);
  copy1.WriteBlock(1, 2.0f, 1, 1);
  copy0.WriteBlock(2, 3.0f, 1, 4);
  auto view = MustOpen(*client);
  auto w = view->Tensor("w");
  REQUIRE(w.ok());
  CHECK(Mismatches(*w, 0, kW, [](size_t j) {
          return static_cast<float>(j / 1024 + 1);
        }) == 0);
  auto fresh = view->Freshness("w");
  REQUIRE(fresh.ok());
  for (const ModelView::BlockFreshness& f : fresh->blocks) CHECK_FALSE(f.local);
  CHECK(fresh->blocks_behind == 1);
  CHECK(fresh->most_versions_behind == 3);
}

TEST_CASE("model view names the shard and path when no replica copy exists",
          "[model_view][replica]") {
  test::InProcessCluster cluster(kShards, 1, ReplicaSpec);
  test::TempDir replicas;
  ClientOptions options;
  options.map_local_segments = false;
  {
    auto client = MustConnect(cluster.info(), options);
    auto view = ModelView::Open(*client);
    REQUIRE(view.status().code() == Code::kNotFound);
    CHECK_THAT(view.status().message(), Contains("shard 0 of 2"));
    CHECK_THAT(view.status().message(), Contains("replica_storage"));
    CHECK_THAT(view.status().message(), Contains("shardps replica"));
  }
  options.replica_storage = replicas.path();
  auto client = MustConnect(cluster.info(), options);
  SimulatedReplica copy0(cluster.spec(), 0, replicas.path());
  auto view = ModelView::Open(*client);
  REQUIRE(view.status().code() == Code::kNotFound);
  CHECK_THAT(view.status().message(), Contains("shard 1 of 2"));
  CHECK_THAT(view.status().message(),
             Contains(Segment::PathFor(replicas.path(), "rview", 1, 2)));
  CHECK_THAT(view.status().message(),
             Contains("shardps replica --cluster C --spec S --storage " +
                      replicas.path()));
}

TEST_CASE("model view refuses a replica copy of another spec",
          "[model_view][replica]") {
  test::InProcessCluster cluster(kShards, 1, ReplicaSpec);
  test::TempDir replicas;
  // The same model name with one more tensor: an older or newer version.
  ModelSpec other =
      test::MakeSpec("rview", replicas.path(),
                     {{"w", {kW}, "uniform:-1,1", 3}, {"extra", {10}}});
  REQUIRE(SpecHash(other) != SpecHash(cluster.spec()));
  SimulatedReplica copy0(cluster.spec(), 0, replicas.path());
  SimulatedReplica stale(other, 1, replicas.path());
  ClientOptions options;
  options.replica_storage = replicas.path();
  options.map_local_segments = false;
  auto client = MustConnect(cluster.info(), options);
  auto view = ModelView::Open(*client);
  REQUIRE(view.status().code() == Code::kSpecMismatch);
  CHECK_THAT(view.status().message(),
             Contains(Segment::PathFor(replicas.path(), "rview", 1, 2)));
}

// A bsp worker whose shards are all read through (simulated) replicas.
struct BspWorker {
  explicit BspWorker(std::chrono::milliseconds timeout)
      : cluster(kShards, 1, BspSpec),
        copy0(cluster.spec(), 0, replicas.path()),
        copy1(cluster.spec(), 1, replicas.path()) {
    ClientOptions options;
    options.worker = 0;
    options.replica_storage = replicas.path();
    options.map_local_segments = false;
    options.request_timeout = timeout;
    client = MustConnect(cluster.info(), options);
  }
  test::InProcessCluster cluster;
  test::TempDir replicas;
  SimulatedReplica copy0;
  SimulatedReplica copy1;
  std::unique_ptr<Client> client;
};

// Waits until the handle's parts are done and only the replica gate holds
// it (its WaitFor message then is the replica's), up to 10 s.
std::string WaitForGate(const Handle& h) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  Status s;
  do {
    s = h.WaitFor(std::chrono::milliseconds(20));
    if (s.message().find("host replica") != std::string::npos)
      return s.message();
  } while (std::chrono::steady_clock::now() < deadline);
  FAIL("the clock's parts never finished: " << s.ToString());
  return "";
}

TEST_CASE("bsp clock completes only once the host replica holds the clock",
          "[client][replica]") {
  BspWorker worker(std::chrono::seconds(30));
  std::vector<float> grad(kW, 1.0f);
  REQUIRE(worker.client->Push("w", grad.data(), kW).Wait().ok());
  REQUIRE(worker.client->clock() == 0);
  Handle clock = worker.client->Clock();  // clock 0: needs held_clock >= 1
  CHECK_THAT(WaitForGate(clock), Contains("not yet 1"));
  CHECK_FALSE(clock.Done());
  worker.copy0.SetHeldClock(0);
  worker.copy1.SetHeldClock(1);
  CHECK_THAT(WaitForGate(clock), Contains("shard 0"));
  CHECK_FALSE(clock.Done());

  auto waited =
      std::async(std::launch::async, [&clock] { return clock.Wait(); });
  // The waiter sleeps on the replica's futex; the bump below wakes it.
  REQUIRE(waited.wait_for(std::chrono::milliseconds(100)) ==
          std::future_status::timeout);
  worker.copy0.SetHeldClock(1);
  REQUIRE(waited.wait_for(std::chrono::seconds(10)) ==
          std::future_status::ready);
  const Status s = waited.get();
  INFO(s.ToString());
  CHECK(s.ok());
  CHECK(clock.Done());
}

TEST_CASE("bsp clock times out saying the host replica is not running",
          "[client][replica]") {
  BspWorker worker(std::chrono::milliseconds(700));
  worker.copy0.SetHeldClock(1);
  worker.copy1.Stop();
  const Status s = worker.client->Clock().Wait();
  REQUIRE(s.code() == Code::kTimeout);
  CHECK_THAT(s.message(), Contains("host replica of shard 1"));
  CHECK_THAT(s.message(), Contains("not running"));
  CHECK_THAT(s.message(), Contains("shardps replica"));
}

TEST_CASE("bsp clock fails when no host replica ever ran under the storage",
          "[client][replica]") {
  test::InProcessCluster cluster(kShards, 1, BspSpec);
  test::TempDir empty;
  ClientOptions options;
  options.worker = 0;
  options.replica_storage = empty.path();
  options.map_local_segments = false;
  auto client = MustConnect(cluster.info(), options);
  const Status s = client->Clock().Wait();
  REQUIRE(s.code() == Code::kNotFound);
  CHECK_THAT(s.message(), Contains("shardps replica"));
  CHECK_THAT(s.message(), Contains(empty.path()));
}

}  // namespace
}  // namespace shardps
