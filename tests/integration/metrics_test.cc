// /metrics from real processes: a shard's counts match the requests a test
// made, exactly; a client counts its own requests; a host replica reports
// what it received and how far its copies lag; and scrapes running beside
// pushes neither block nor disturb them (run under TSan too).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "shardps/client.h"
#include "tests/in_process_cluster.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/metrics_scrape.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using test::HttpGet;
using test::ParseMetrics;
using test::SeriesSum;

constexpr uint64_t kBlockFloats = 1024;
constexpr uint64_t kFloats = 5000;  // 5 blocks: 3 on shard 0, 2 on shard 1

std::string MetricsSpec() {
  return SpecText("met", kBlockFloats, 0.5, {{"w", {kFloats}, "zeros"}});
}

// The URL a `serve --metrics-listen` or `replica --metrics-listen` printed.
std::string MetricsUrlOf(ChildProcess& process) {
  const auto line = process.ReadLineContaining("metrics on ", seconds(15));
  INFO(process.Stderr());
  REQUIRE(line.has_value());
  return line->substr(line->find("http://"));
}

std::map<std::string, double> Scrape(const std::string& url) {
  const auto body = HttpGet(url);
  INFO(url);
  REQUIRE(body.has_value());
  return ParseMetrics(*body);
}

double Value(const std::map<std::string, double>& series,
             const std::string& name, const std::string& a = "",
             const std::string& b = "") {
  const auto v = SeriesSum(series, name, a, b);
  INFO(name << " " << a << " " << b);
  REQUIRE(v.has_value());
  return *v;
}

// Sends one frame that is no request at all and waits for the error reply.
void SendGarbage(const std::string& endpoint) {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(endpoint);
  socket.send(zmq::str_buffer("not a flatbuffer"), zmq::send_flags::none);
  zmq_pollitem_t item = {socket.handle(), 0, ZMQ_POLLIN, 0};
  REQUIRE(zmq_poll(&item, 1, 5000) == 1);
}

TEST_CASE("a shard's /metrics counts exactly the requests it answered",
          "[integration][metrics]") {
  TempDir dir;
  auto cluster = StartCluster(dir, MetricsSpec(), 2,
                              {"--metrics-listen", "0", "--workers", "2"});
  const std::string url0 = MetricsUrlOf(*cluster->server(0).process);
  const std::string url1 = MetricsUrlOf(*cluster->server(1).process);
  auto client = Client::Connect(cluster->cluster_file());
  REQUIRE(client.ok());

  constexpr int kPushes = 7, kPulls = 3;
  std::vector<float> grad(kFloats, 1.0f), out(kFloats);
  for (int i = 0; i < kPushes; ++i)
    REQUIRE((*client)->Push("w", grad.data(), grad.size()).Wait().ok());
  for (int i = 0; i < kPulls; ++i)
    REQUIRE((*client)->Pull("w", out.data(), out.size()).Wait().ok());
  SendGarbage(cluster->server(1).endpoint);

  const auto s0 = Scrape(url0);
  const auto s1 = Scrape(url1);
  for (const auto* s : {&s0, &s1}) {
    CHECK(Value(*s, "shardps_requests_total", R"(op="push")", R"(code="ok")") ==
          kPushes);
    CHECK(Value(*s, "shardps_requests_total", R"(op="pull")", R"(code="ok")") ==
          kPulls);
    CHECK(Value(*s, "shardps_request_duration_seconds_count", R"(op="push")") ==
          kPushes);
    CHECK(Value(*s, "shardps_request_duration_seconds_bucket", R"(op="pull")",
                R"(le="+Inf")") == kPulls);
    CHECK(Value(*s, "shardps_requests_total", R"(op="hello")") >= 1);
    CHECK(Value(*s, "shardps_worker_clock", R"(worker="1")") == 0);
    CHECK(Value(*s, "shardps_segment_bytes") > 0);
    CHECK(Value(*s, "process_resident_memory_bytes") > 0);
  }
  // Blocks per shard: 3 and 2, each updated once per push.
  CHECK(Value(s0, "shardps_apply_duration_seconds_count") == 3 * kPushes);
  CHECK(Value(s1, "shardps_apply_duration_seconds_count") == 2 * kPushes);
  CHECK(Value(s0, "shardps_block_updates_total") == 3 * kPushes);
  // Payload bytes: every gradient in, every pulled block out.
  // Shard 1 holds blocks 1 and 3, both whole (block 4, the short one, is
  // shard 0's).
  const double shard1_bytes = 2.0 * 1024 * 4;
  CHECK(Value(s1, "shardps_received_bytes_total") >= kPushes * shard1_bytes);
  CHECK(Value(s1, "shardps_sent_bytes_total") == kPulls * shard1_bytes);
  // The garbage frame is an error of no op; shard 0 saw none.
  CHECK(Value(s1, "shardps_requests_total", R"(op="other")",
              R"(code="bad_message")") == 1);
  CHECK(!SeriesSum(s0, "shardps_requests_total", R"(code="bad_message")"));
  CHECK(Value(s0, "shardps_shard_info", R"(consistency="async")") == 1);
  CHECK(s0.count(R"(shardps_connected_clients{model="met",shard="0"})") == 1);

  // The Stats reply reads the same counters.
  auto stats = (*client)->Stats();
  REQUIRE(stats.ok());
  CHECK(static_cast<double>((*stats)[1].bytes_out) ==
        Value(s1, "shardps_sent_bytes_total"));
}

TEST_CASE("a client counts its requests per shard, by op and code",
          "[integration][metrics]") {
  TempDir dir;
  auto cluster = StartCluster(dir, MetricsSpec(), 2, {"--workers", "1"});
  ClientOptions options;
  options.metrics_listen = "127.0.0.1:0";
  options.worker = 0;
  options.request_timeout = seconds(2);
  options.exactly_once = false;
  auto client = Client::Connect(cluster->cluster_file(), options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  REQUIRE(!(*client)->metrics_url().empty());

  std::vector<float> grad(kFloats, 1.0f), out(kFloats);
  for (int i = 0; i < 4; ++i)
    REQUIRE((*client)->Push("w", grad.data(), grad.size()).Wait().ok());
  REQUIRE((*client)->Pull("w", out.data(), out.size()).Wait().ok());
  // A shard gone: the push's part to it fails, the other is applied.
  KillShard(*cluster, 1);
  CHECK(!(*client)->Push("w", grad.data(), grad.size()).Wait().ok());

  const auto text = ParseMetrics((*client)->MetricsText());
  const auto served = Scrape((*client)->metrics_url());
  for (const auto* s : {&text, &served}) {
    CHECK(Value(*s, "shardps_client_requests_total", R"(op="push")",
                R"(code="ok")") == 2 * 4 + 1);
    CHECK(Value(*s, "shardps_client_requests_total", R"(op="pull")",
                R"(code="ok")") == 2);
    CHECK(Value(*s, "shardps_client_requests_total", R"(op="push")",
                R"(code="unavailable")") == 1);
    CHECK(Value(*s, "shardps_client_request_duration_seconds_count",
                R"(op="push")") == 2 * 5);
    CHECK(Value(*s, "shardps_client_sent_bytes_total") >=
          5 * 4.0 * kFloats - 2 * 1024 * 4);
    CHECK(Value(*s, "shardps_client_received_bytes_total") >= 4.0 * kFloats);
    CHECK(Value(*s, "shardps_client_in_flight_requests") == 0);
    CHECK(Value(*s, "shardps_client_requests_total", R"(model="met")",
                R"(worker="0")") > 0);
  }
  // Only the endpoint adds the trainer process's own series.
  CHECK(served.count(R"(process_open_fds{model="met",worker="0"})") == 1);
  CHECK(!SeriesSum(text, "process_open_fds"));
}

TEST_CASE("a host replica's /metrics shows what it received and its lag",
          "[integration][metrics][replica]") {
  TempDir dir;
  auto cluster = StartCluster(dir, MetricsSpec(), 2);
  auto replica = ChildProcess::Spawn(
      {kShardpsBinary, "replica", "--cluster", cluster->cluster_file(),
       "--spec", dir.File("spec.toml"), "--storage", dir.File("replica"),
       "--all-shards", "--metrics-listen", "0"});
  REQUIRE(replica.ok());
  const std::string url = MetricsUrlOf(**replica);
  REQUIRE((*replica)->ReadLineContaining("replica ready", seconds(15)));
  auto client = Client::Connect(cluster->cluster_file());
  REQUIRE(client.ok());
  std::vector<float> grad(kFloats, 1.0f);
  REQUIRE((*client)->Push("w", grad.data(), grad.size()).Wait().ok());

  // Every block arrives twice (at subscribe, then after the push); then the
  // copies hold everything announced: lag 0, nothing behind.
  const auto deadline = std::chrono::steady_clock::now() + seconds(15);
  std::map<std::string, double> s;
  bool caught_up = false;
  while (!caught_up && std::chrono::steady_clock::now() < deadline) {
    s = Scrape(url);
    caught_up =
        SeriesSum(s, "shardps_replica_received_blocks_total").value_or(0) >=
            2 * 5 &&
        SeriesSum(s, "shardps_replica_behind_blocks").value_or(1) == 0;
    if (!caught_up) std::this_thread::sleep_for(milliseconds(20));
  }
  INFO((*replica)->Stderr());
  REQUIRE(caught_up);
  CHECK(Value(s, "shardps_replica_received_blocks_total", R"(shard="0")") ==
        2 * 3);
  CHECK(Value(s, "shardps_replica_received_blocks_total", R"(shard="1")") ==
        2 * 2);
  CHECK(Value(s, "shardps_replica_lag_seconds") == 0);
  CHECK(Value(s, "shardps_replica_subscribed", R"(shard="1")") == 1);
  CHECK(Value(s, "shardps_replica_mirrored", R"(shard="0")") == 1);
  CHECK(Value(s, "shardps_replica_received_bytes_total") >= 10 * 1024.0);
  CHECK(Value(s, "shardps_replica_heard_age_seconds", R"(shard="0")") < 15);

  // A stopped shard: the copy is announced nothing new, so it does not lag,
  // but the stream falls silent.
  KillShard(*cluster, 0);
  const double heard =
      Value(Scrape(url), "shardps_replica_heard_age_seconds", R"(shard="0")");
  bool silent = false;
  while (!silent && std::chrono::steady_clock::now() < deadline + seconds(5)) {
    silent = Value(Scrape(url), "shardps_replica_heard_age_seconds",
                   R"(shard="0")") > heard + 0.5;
    if (!silent) std::this_thread::sleep_for(milliseconds(50));
  }
  CHECK(silent);
}

// Two consecutive ports nothing listens on now, below the ephemeral range
// (so no test's wildcard bind takes them meanwhile); 0 if none is found.
int FreePortPair() {
  for (int base = 21000 + ::getpid() % 4000, tries = 0; tries < 200;
       ++tries, base += 2) {
    bool free = true;
    for (int p = base; p < base + 2 && free; ++p) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(p));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
      ::close(fd);
    }
    if (free) return base;
  }
  return 0;
}

TEST_CASE(
    "launch --metrics-port gives shard i the port base plus i, also after a "
    "restart",
    "[integration][metrics]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), MetricsSpec());
  const int base = FreePortPair();
  REQUIRE(base != 0);
  auto launch = ChildProcess::Spawn(
      {kShardpsBinary, "launch", "--spec", spec, "--shards", "2",
       "--cluster-file", dir.File("cluster.toml"), "--storage",
       dir.File("storage"), "--metrics-port", std::to_string(base)});
  REQUIRE(launch.ok());
  INFO((*launch)->Stderr());
  REQUIRE((*launch)->ReadLineContaining("ready", kStartTimeout));
  const auto url = [base](int shard) {
    return "http://127.0.0.1:" + std::to_string(base + shard) + "/metrics";
  };
  for (int shard = 0; shard < 2; ++shard)
    CHECK(Value(Scrape(url(shard)), "shardps_shard_info",
                "shard=\"" + std::to_string(shard) + "\"") == 1);
  // A crashed shard comes back on its metrics port too.
  auto cluster = LoadCluster(dir.File("cluster.toml"));
  REQUIRE(cluster.ok());
  auto client = Client::Connect(*cluster);
  REQUIRE(client.ok());
  auto stats = (*client)->Stats();
  REQUIRE(stats.ok());
  REQUIRE(::kill((*stats)[1].pid, SIGKILL) == 0);
  const auto deadline = std::chrono::steady_clock::now() + seconds(15);
  bool back = false;
  while (!back && std::chrono::steady_clock::now() < deadline) {
    const auto body = HttpGet(url(1));
    back = body && Contains(*body, "shardps_uptime_seconds");
    if (back) {
      auto again = (*client)->Stats();
      back = again.ok() && (*again)[1].pid != (*stats)[1].pid;
    }
    if (!back) std::this_thread::sleep_for(milliseconds(50));
  }
  CHECK(back);
  REQUIRE((*launch)->Signal(SIGINT));
  const auto exited = (*launch)->Wait(kExitTimeout);
  REQUIRE(exited.has_value());
  CHECK(exited->code == 0);
}

TEST_CASE("scrapes beside pushes neither block nor miscount them",
          "[integration][metrics][concurrency]") {
  test::InProcessCluster cluster(
      1, 2,
      [](const std::string& storage) {
        auto spec = ParseModelSpec(
            "[model]\nname = \"scr\"\nstorage = \"" + storage +
            "\"\nblock_floats = 1024\n[optimizer]\nkind = \"sgd\"\n"
            "lr = 0.1\n[[tensor]]\nname = \"w\"\nshape = [4096]\n"
            "init = \"zeros\"\n");
        if (!spec.ok()) throw std::runtime_error(spec.status().ToString());
        return *spec;
      },
      [](ServerOptions& o) { o.metrics_listen = "127.0.0.1:0"; });
  const std::string url = cluster.server(0).metrics_url();
  REQUIRE(!url.empty());
  auto client = Client::Connect(cluster.info());
  REQUIRE(client.ok());

  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    while (!done.load()) {
      if (HttpGet(url)) scrapes.fetch_add(1);
    }
  });
  constexpr int kPushes = 300;
  std::vector<float> grad(4096, 1.0f);
  for (int i = 0; i < kPushes; ++i)
    REQUIRE((*client)->Push("w", grad.data(), grad.size()).Wait().ok());
  done = true;
  scraper.join();
  CHECK(scrapes.load() > 0);
  const auto s = Scrape(url);
  CHECK(Value(s, "shardps_requests_total", R"(op="push")", R"(code="ok")") ==
        kPushes);
  // 4 blocks of 1024 floats, 2 writers: each block's updates counted once.
  CHECK(Value(s, "shardps_apply_duration_seconds_count") == 4 * kPushes);
}

}  // namespace
}  // namespace shardps::testing
