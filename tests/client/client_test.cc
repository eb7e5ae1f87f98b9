#include "shardps/client.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/segment.h"
#include "tests/in_process_cluster.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr float kLr = 0.5f;

// "w": 4500 floats in 5 blocks (global 0..4, short last block), "b": 7
// floats (global 5), "z": 2000 zeros (global 6, 7). Over two shards every
// tensor but "b" is split between them.
ModelSpec ClientSpec(const std::string& storage) {
  return test::MakeSpec("ctest", storage,
                        {{"w", {3, 1500}, "uniform:-1,1", 11},
                         {"b", {7}, "constant:0.25"},
                         {"z", {2000}, "zeros"}},
                        kLr);
}

std::unique_ptr<Client> MustConnect(const ClusterInfo& cluster,
                                    ClientOptions options = {}) {
  auto client = Client::Connect(cluster, options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

// Integer-valued gradients: lr * g is exact, so w - lr * g has one rounding
// and the expected values below are exact whatever the kernel's evaluation
// order.
std::vector<float> Gradient(size_t n, int salt) {
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i)
    g[i] = static_cast<float>(static_cast<int>((i * 7 + salt) % 11) - 5);
  return g;
}

std::vector<float> MustPull(Client& client, const std::string& tensor,
                            size_t n) {
  std::vector<float> out(n, -12345.0f);
  Status s = client.Pull(tensor, out.data(), out.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

void MustPush(Client& client, const std::string& tensor,
              const std::vector<float>& grad) {
  Status s = client.Push(tensor, grad.data(), grad.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
}

// Index of the first element where the vectors differ, or -1.
int64_t FirstMismatch(const std::vector<float>& a,
                      const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return -1;
}

std::vector<float> SgdStep(const std::vector<float>& w,
                           const std::vector<float>& g) {
  std::vector<float> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) out[i] = w[i] - kLr * g[i];
  return out;
}

TEST_CASE("client pull returns the initial weights", "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  auto client = MustConnect(cluster.info());
  for (const TensorSpec& t : cluster.spec().tensors) {
    INFO("tensor " << t.name);
    CHECK(FirstMismatch(MustPull(*client, t.name, t.num_floats()),
                        test::InitialTensor(t)) == -1);
  }
}

TEST_CASE("client push then pull gives init minus lr times grad", "[client]") {
  const uint32_t threads = GENERATE(1u, 2u);
  INFO(threads << " update threads");
  test::InProcessCluster cluster(2, threads, ClientSpec);
  auto client = MustConnect(cluster.info());
  const TensorSpec& w = cluster.spec().tensors[0];
  const std::vector<float> init = test::InitialTensor(w);
  const std::vector<float> g1 = Gradient(init.size(), 1);
  const std::vector<float> g2 = Gradient(init.size(), 4);

  MustPush(*client, "w", g1);
  const std::vector<float> after_one = SgdStep(init, g1);
  CHECK(FirstMismatch(MustPull(*client, "w", init.size()), after_one) == -1);

  MustPush(*client, "w", g2);
  CHECK(FirstMismatch(MustPull(*client, "w", init.size()),
                      SgdStep(after_one, g2)) == -1);
  // Other tensors are untouched.
  CHECK(FirstMismatch(MustPull(*client, "b", 7),
                      test::InitialTensor(cluster.spec().tensors[1])) == -1);
}

TEST_CASE("client pushpull returns the updated values",
          "[client][concurrency]") {
  test::InProcessCluster cluster(2, 2, ClientSpec);
  auto client = MustConnect(cluster.info());
  const TensorSpec& w = cluster.spec().tensors[0];
  const std::vector<float> init = test::InitialTensor(w);
  const std::vector<float> g1 = Gradient(init.size(), 2);
  const std::vector<float> g2 = Gradient(init.size(), 9);
  MustPush(*client, "w", g1);

  std::vector<float> out(init.size(), -12345.0f);
  Status s = client->PushPull("w", g2.data(), out.data(), out.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  const std::vector<float> want = SgdStep(SgdStep(init, g1), g2);
  CHECK(FirstMismatch(out, want) == -1);
  CHECK(FirstMismatch(MustPull(*client, "w", init.size()), want) == -1);
}

// Pushes `pushes` copies of a constant gradient, keeping several in flight.
void PushMany(Client& client, float value, int pushes, Status* failure) {
  const std::vector<float> grad(2000, value);  // alive until all are done
  std::deque<Handle> in_flight;
  for (int i = 0; i < pushes; ++i) {
    in_flight.push_back(client.Push("z", grad.data(), grad.size()));
    if (in_flight.size() >= 8 || i + 1 == pushes) {
      while (!in_flight.empty()) {
        Status s = in_flight.front().Wait();
        if (!s.ok() && failure->ok()) *failure = s;
        in_flight.pop_front();
      }
    }
  }
}

TEST_CASE("client concurrent pushes from many threads all apply",
          "[client][concurrency]") {
  const uint32_t threads = GENERATE(1u, 2u);
  INFO(threads << " update threads");
  test::InProcessCluster cluster(2, threads, ClientSpec);
  auto client = MustConnect(cluster.info());
  constexpr int kThreads = 4, kPushes = 100;
  std::vector<Status> failures(kThreads);
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t)
    workers.emplace_back(PushMany, std::ref(*client), static_cast<float>(t + 1),
                         kPushes, &failures[t]);
  for (std::thread& t : workers) t.join();
  for (const Status& s : failures) CHECK(s.ok());

  // z starts at 0; each push of value v subtracts lr * v, all exact.
  float total = 0;
  for (int t = 0; t < kThreads; ++t) total += kLr * (t + 1) * kPushes;
  const std::vector<float> z = MustPull(*client, "z", 2000);
  CHECK(FirstMismatch(z, std::vector<float>(2000, -total)) == -1);

  auto stats = client->Stats();
  REQUIRE(stats.ok());
  for (const ShardStats& s : *stats) {
    CHECK(s.pushes == kThreads * kPushes);
    CHECK(s.updates_applied == kThreads * kPushes);  // one z block each
    CHECK(s.errors == 0);
  }
}

TEST_CASE("client fails bad calls at once", "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  auto client = MustConnect(cluster.info());
  std::vector<float> buf(4500);

  SECTION("unknown tensor") {
    Handle h = client->Push("nope", buf.data(), buf.size());
    CHECK(h.Done());
    Status s = h.WaitFor(milliseconds(0));
    CHECK(s.code() == Code::kNotFound);
    CHECK_THAT(s.message(), Contains("nope"));
    CHECK(client->Pull("nope", buf.data(), buf.size()).Wait().code() ==
          Code::kNotFound);
  }
  SECTION("wrong count") {
    for (size_t n : {size_t{4499}, size_t{4501}, size_t{0}}) {
      Handle h = client->Pull("w", buf.data(), n);
      CHECK(h.Done());
      CHECK(h.WaitFor(milliseconds(0)).code() == Code::kSizeMismatch);
    }
    CHECK(client->PushPull("b", buf.data(), buf.data() + 8, 8).Wait().code() ==
          Code::kSizeMismatch);
  }
  SECTION("null buffer") {
    CHECK(client->Push("w", nullptr, 4500).Wait().code() ==
          Code::kInvalidArgument);
    CHECK(client->Pull("w", nullptr, 4500).Wait().code() ==
          Code::kInvalidArgument);
  }
  // None of these reached a server.
  auto stats = client->Stats();
  REQUIRE(stats.ok());
  for (const ShardStats& s : *stats) {
    CHECK(s.pushes == 0);
    CHECK(s.pulls == 0);
    CHECK(s.errors == 0);
  }
}

TEST_CASE("client Stats counts pushes and pulls per shard", "[client]") {
  test::InProcessCluster cluster(2, 2, ClientSpec);
  auto client = MustConnect(cluster.info());
  const std::vector<float> g = Gradient(4500, 0);
  for (int i = 0; i < 3; ++i) MustPush(*client, "w", g);
  for (int i = 0; i < 2; ++i) MustPull(*client, "w", 4500);
  MustPull(*client, "b", 7);  // b lives on shard 1 only

  auto stats = client->Stats();
  INFO(stats.status().ToString());
  REQUIRE(stats.ok());
  REQUIRE(stats->size() == 2);
  const ShardStats& s0 = (*stats)[0];
  const ShardStats& s1 = (*stats)[1];
  CHECK(s0.shard == 0);
  CHECK(s1.shard == 1);
  CHECK(s0.endpoint == cluster.server(0).endpoint());
  CHECK(s0.model == "ctest");
  CHECK(s0.threads == 2);
  CHECK(s0.blocks == 4);  // w 0, 2, 4 and z 0
  CHECK(s1.blocks == 4);  // w 1, 3, b 0 and z 1
  CHECK(s0.pushes == 3);
  CHECK(s1.pushes == 3);
  CHECK(s0.pulls == 2);
  CHECK(s1.pulls == 3);
  CHECK(s0.updates_applied == 9);  // 3 pushes x 3 blocks of w
  CHECK(s1.updates_applied == 6);  // 3 pushes x 2 blocks of w
  CHECK(s0.errors == 0);
  CHECK(s0.pid == ::getpid());
  // At least the gradients: shard 0 gets 1024 + 1024 + 404 floats a push,
  // shard 1 gets 1024 + 1024.
  CHECK(s0.bytes_in >= 3 * 2452 * sizeof(float));
  CHECK(s1.bytes_in >= 3 * 2048 * sizeof(float));
}

TEST_CASE("client learns the layout and segments on connect", "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  auto client = MustConnect(cluster.info());
  CHECK(client->model() == "ctest");
  CHECK(client->spec_hash() == SpecHash(cluster.spec()));
  CHECK(client->layout().shards() == 2);
  CHECK(client->layout().block_floats() == 1024);
  REQUIRE(client->layout().Find("w") != nullptr);
  CHECK(client->layout().Find("w")->shape == std::vector<uint64_t>{3, 1500});
  CHECK(client->local_segments() == cluster.segment_paths());
}

// Regression: a segment was "local" whenever the shard's hostname matched
// ours, so a ModelView mapped whatever file lay at the reported path, even
// another segment made there after the server had opened its own.
TEST_CASE("client calls a segment local only if it is the one the shard serves",
          "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  const std::vector<std::string> paths = cluster.segment_paths();
  // Shard 0's file is moved aside (its server keeps it mapped) and a new
  // segment of the same shard is made at the reported path.
  REQUIRE(std::rename(paths[0].c_str(), (paths[0] + ".served").c_str()) == 0);
  {
    SegmentOpenReport report;
    auto other =
        Segment::OpenForServing(cluster.spec(), 0, 2, paths[0], &report);
    INFO(other.status().ToString());
    REQUIRE(other.ok());
    REQUIRE(report.created);
  }
  auto client = MustConnect(cluster.info());
  REQUIRE(client->local_segments().size() == 2);
  CHECK(client->local_segments()[0].empty());
  CHECK(client->local_segments()[1] == paths[1]);

  // No file at all at the reported path: not local either.
  REQUIRE(std::remove(paths[0].c_str()) == 0);
  auto again = MustConnect(cluster.info());
  CHECK(again->local_segments()[0].empty());
  CHECK(again->local_segments()[1] == paths[1]);
}

TEST_CASE("client refuses a cluster with another spec", "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  const uint64_t hash = SpecHash(cluster.spec());
  ClusterInfo info = cluster.info();
  ClientOptions options;
  options.connect_timeout = milliseconds(5000);
  Result<std::unique_ptr<Client>> client = Status(Code::kInternal, "unset");

  SECTION("expect_spec_hash differs") {
    options.expect_spec_hash = hash ^ 1;
    client = Client::Connect(info, options);
  }
  SECTION("cluster file spec_hash differs") {
    info.spec_hash = hash + 1;
    client = Client::Connect(info, options);
  }
  SECTION("cluster file names another model") {
    info.model = "other";
    client = Client::Connect(info, options);
  }
  SECTION("shards listed in the wrong slots") {
    std::swap(info.shards[0].endpoint, info.shards[1].endpoint);
    client = Client::Connect(info, options);
  }
  REQUIRE_FALSE(client.ok());
  CHECK(client.status().code() == Code::kSpecMismatch);
}

TEST_CASE("client accepts the expected spec hash", "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  ClientOptions options;
  options.expect_spec_hash = SpecHash(cluster.spec());
  ClusterInfo info = cluster.info();
  info.spec_hash = SpecHash(cluster.spec());
  MustConnect(info, options);
}

TEST_CASE("client Connect gives up when nothing listens", "[client]") {
  test::TempDir dir;
  ClusterInfo info;
  info.model = "ctest";
  ShardAddress nobody;
  nobody.endpoint = "ipc://" + dir.File("nobody.sock");
  info.shards.push_back(nobody);
  ClientOptions options;
  options.connect_timeout = milliseconds(300);

  const auto start = Clock::now();
  auto client = Client::Connect(info, options);
  const auto elapsed = Clock::now() - start;
  REQUIRE_FALSE(client.ok());
  CHECK(client.status().code() == Code::kUnavailable);
  // It waits out the timeout (start-up races are tolerated), then stops.
  CHECK(elapsed >= milliseconds(250));
  CHECK(elapsed < milliseconds(300 + 2000));
}

// Waits for `h` and checks it failed as an outage, in about `timeout`.
void ExpectOutage(const Handle& h, milliseconds timeout,
                  Clock::time_point start) {
  Status s = h.Wait();
  const auto elapsed = Clock::now() - start;
  INFO(s.ToString());
  CHECK_FALSE(s.ok());
  CHECK((s.code() == Code::kUnavailable || s.code() == Code::kTimeout));
  CHECK(elapsed < timeout + milliseconds(2000));
}

TEST_CASE("client calls fail rather than hang when the servers stop",
          "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  ClientOptions options;
  options.request_timeout = milliseconds(500);
  auto client = MustConnect(cluster.info(), options);
  const std::vector<float> g = Gradient(4500, 3);
  MustPush(*client, "w", g);

  SECTION("stopped: socket open, nobody answers") { cluster.StopAll(); }
  SECTION("destroyed: connections closed") { cluster.DestroyAll(); }

  const auto start = Clock::now();
  ExpectOutage(client->Push("w", g.data(), g.size()), options.request_timeout,
               start);
  std::vector<float> out(4500);
  ExpectOutage(client->Pull("w", out.data(), out.size()),
               options.request_timeout, Clock::now());
}

TEST_CASE("client WaitFor zero polls a pending call", "[client]") {
  test::InProcessCluster cluster(2, 1, ClientSpec);
  ClientOptions options;
  options.request_timeout = milliseconds(1500);
  auto client = MustConnect(cluster.info(), options);
  // A stopped server keeps its socket but never answers, so the push stays
  // pending until its deadline: the poll below cannot race a reply.
  cluster.StopAll();
  const std::vector<float> g = Gradient(4500, 5);
  Handle h = client->Push("w", g.data(), g.size());

  const auto start = Clock::now();
  Status polled = h.WaitFor(milliseconds(0));
  CHECK(Clock::now() - start < milliseconds(500));
  CHECK(polled.code() == Code::kTimeout);
  CHECK_FALSE(h.Done());
  Handle copy = h;  // copies share the call
  CHECK(copy.WaitFor(milliseconds(10)).code() == Code::kTimeout);

  Status final_status = h.Wait();
  CHECK(final_status.code() == Code::kTimeout);
  CHECK(h.Done());
  CHECK(copy.Done());
}

TEST_CASE("client default Handle is an already-failed call", "[client]") {
  Handle h;
  CHECK(h.Done());
  CHECK(h.Wait().code() == Code::kInvalidArgument);
  CHECK(h.WaitFor(milliseconds(0)).code() == Code::kInvalidArgument);
}

TEST_CASE("client refuses an empty cluster", "[client]") {
  auto client = Client::Connect(ClusterInfo{});
  REQUIRE_FALSE(client.ok());
  CHECK(client.status().code() == Code::kInvalidArgument);
}

// Regression: a hand-built ClusterInfo skipped the parser's endpoint check,
// so an inproc:// shard waited out the connect timeout instead of failing.
TEST_CASE("client refuses an inproc shard endpoint at once", "[client]") {
  ClusterInfo info;
  info.model = "ctest";
  ShardAddress shard;
  shard.endpoint = "inproc://s0";
  info.shards.push_back(shard);
  ClientOptions options;
  options.connect_timeout = std::chrono::minutes(10);  // a hang would show
  auto client = Client::Connect(info, options);
  REQUIRE_FALSE(client.ok());
  CHECK(client.status().code() == Code::kInvalidArgument);
  CHECK_THAT(client.status().message(), Catch::Matchers::Contains("tcp://"));
}

}  // namespace
}  // namespace shardps

namespace shardps {
namespace {

// "c" (2500 floats, 3 blocks over 2 shards) clips by norm 2; "u" does not.
ModelSpec ClipSpec(const std::string& storage) {
  ModelSpec spec = test::MakeSpec(
      "clip", storage, {{"c", {2500}, "zeros"}, {"u", {10}, "zeros"}},
      /*lr=*/1.0);
  spec.tensors[0].optimizer = spec.optimizer;
  spec.tensors[0].optimizer->clip_norm = 2.0;
  return spec;
}

double Norm(const std::vector<float>& v) {
  double sum = 0;
  for (float x : v) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

TEST_CASE("clip_norm scales a long gradient to the norm over all shards",
          "[client]") {
  const auto dtype =
      GENERATE(WireDType::kFloat32, WireDType::kFloat16, WireDType::kBFloat16);
  test::InProcessCluster cluster(2, 2, ClipSpec);
  ClientOptions options;
  options.push_dtype = dtype;
  auto client = MustConnect(cluster.info(), options);
  // Norm 50 = sqrt(2500): one clipped step (sgd, lr 1) moves the weights by
  // exactly norm 2, in the gradient's direction, on both shards alike.
  std::vector<float> g(2500, 1.0f);
  MustPush(*client, "c", g);
  const std::vector<float> w = MustPull(*client, "c", g.size());
  CHECK(Norm(w) == Approx(2.0).epsilon(1e-5));
  for (size_t i = 0; i < w.size(); ++i) {
    INFO("element " << i);
    REQUIRE(w[i] == Approx(-2.0 / 50.0).epsilon(1e-5));
  }
  // A gradient already shorter than clip_norm is applied as sent.
  std::vector<float> small(2500, 0.0f);
  small[7] = 0.5f;
  MustPush(*client, "c", small);
  CHECK(MustPull(*client, "c", g.size())[7] == w[7] - 0.5f);
  // Tensors without clip_norm are not clipped.
  MustPush(*client, "u", std::vector<float>(10, 100.0f));
  CHECK(MustPull(*client, "u", 10)[3] == -100.0f);
}

TEST_CASE("clip_norm refuses a gradient with a non-finite norm", "[client]") {
  test::InProcessCluster cluster(2, 1, ClipSpec);
  auto client = MustConnect(cluster.info());
  std::vector<float> g(2500, 1.0f);
  g[1] = std::numeric_limits<float>::infinity();
  Status s = client->Push("c", g.data(), g.size()).Wait();
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.ToString(), Contains("non-finite norm"));
  const std::vector<float> w = MustPull(*client, "c", g.size());
  CHECK(Norm(w) == 0.0);  // nothing applied, on either shard
}

}  // namespace
}  // namespace shardps
