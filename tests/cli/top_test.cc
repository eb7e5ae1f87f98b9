// `shardps top --once` against a real 2-shard cluster under load: what the
// frame shows (both shards, a nonzero push rate, a worker's clock, a hosted
// queue), a killed shard shown as DOWN, the exit codes; and the Stats
// fields top reads.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "shardps/client.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::seconds;

std::string TopSpec() {
  return SpecText("topdemo", 1024, 0.01, {{"w", {4096}, "zeros"}}) +
         "\n[consistency]\nmode = \"ssp:1000\"\nworkers = 1\n";
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The rows under the header line that starts with `header`, up to the next
// blank line.
std::vector<std::vector<std::string>> Table(const std::string& frame,
                                            const std::string& header) {
  std::vector<std::vector<std::string>> rows;
  bool in_table = false;
  for (const std::string& line : Lines(frame)) {
    if (!in_table) {
      in_table = line.rfind(header, 0) == 0;
      continue;
    }
    if (line.empty()) break;
    std::istringstream words(line);
    std::vector<std::string> row;
    for (std::string w; words >> w;) row.push_back(w);
    rows.push_back(row);
  }
  return rows;
}

// "12.5", "3.4k", "1.2M" as a number; -1 for "-" or garbage.
double Rate(const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return -1;
  if (*end == 'k') v *= 1e3;
  if (*end == 'M') v *= 1e6;
  return v;
}

const std::vector<std::string>* Row(
    const std::vector<std::vector<std::string>>& table,
    const std::string& first) {
  for (const auto& row : table)
    if (!row.empty() && row[0] == first) return &row;
  return nullptr;
}

TEST_CASE("top --once shows both shards under load and a killed one as DOWN",
          "[integration][cli][top]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), TopSpec());
  auto cluster =
      LocalCluster::Start(spec, dir.File("storage"), 2, dir.File("c.toml"),
                          {"--queue", "train:4:4096"});
  REQUIRE(cluster.ok());
  const std::string file = (*cluster)->cluster_file();
  auto worker = ChildProcess::Spawn(
      {SHARDPS_CLOCK_WORKER, "--cluster", file, "--tensor", "w", "--worker",
       "0", "--clocks", "100000000", "--sleep-ms", "2"});
  REQUIRE(worker.ok());
  INFO("worker stderr: " << (*worker)->Stderr());
  REQUIRE((*worker)->ReadLineContaining("clock 3", kStartTimeout));

  const std::vector<std::string> top = {
      kShardpsBinary, "top", "--cluster", file, "--once", "--interval", "0.5"};
  const RunResult once = Run(top);
  INFO("top stdout:\n" << once.out << "\ntop stderr: " << once.err);
  REQUIRE(once.status.ok());
  CHECK(once.out.find("\x1b") == std::string::npos);  // plain text
  for (const std::string& line : Lines(once.out)) CHECK(line.size() <= 80);
  CHECK(Contains(once.out, "2 shards, 2 up"));
  const auto shards = Table(once.out, "shard   push/s");
  REQUIRE(shards.size() == 2);
  for (const char* s : {"0", "1"}) {
    const auto* row = Row(shards, s);
    REQUIRE(row != nullptr);
    REQUIRE(row->size() == 9);
    CHECK(Rate((*row)[1]) > 0);  // push/s while the worker pushes
    CHECK(Rate((*row)[3]) > 0);  // in MB/s
    CHECK((*row)[5] != "-");     // mean apply latency over the interval
  }
  const auto workers = Table(once.out, "worker");
  const auto* w0 = Row(workers, "0");
  REQUIRE(w0 != nullptr);
  REQUIRE(w0->size() >= 4);
  CHECK(Rate((*w0)[1]) >= 3);  // its clock
  CHECK((*w0)[3] == "connected");
  const auto queues = Table(once.out, "shard queue");
  REQUIRE(queues.size() == 2);  // every shard hosts its own "train"
  CHECK(queues[0].at(1) == "train");
  CHECK(queues[0].at(2) == "0/4");

  // A killed shard is DOWN, with its endpoint; the other still shows.
  const std::string ep1 = (*cluster)->info().shards[1].endpoint;
  REQUIRE((*cluster)->server(1).process->Signal(SIGKILL));
  REQUIRE((*cluster)->server(1).process->Wait(kExitTimeout));
  const RunResult one_down = Run(top);
  INFO("with shard 1 down:\n" << one_down.out << one_down.err);
  CHECK(one_down.status.ok());
  CHECK(Contains(one_down.out, "2 shards, 1 up"));
  CHECK(Contains(one_down.out, "1     DOWN  " + ep1));
  const auto still_shards = Table(one_down.out, "shard   push/s");
  const auto* still = Row(still_shards, "0");
  REQUIRE(still != nullptr);
  CHECK(still->at(1) != "DOWN");

  // No shard answering: exit 1, every shard DOWN.
  REQUIRE((*cluster)->server(0).process->Signal(SIGKILL));
  REQUIRE((*cluster)->server(0).process->Wait(kExitTimeout));
  const RunResult none =
      Run({kShardpsBinary, "top", "--cluster", file, "--once", "--interval",
           "0.2", "--timeout-ms", "200"});
  INFO("with no shard:\n" << none.out << none.err);
  CHECK(none.status.exited);
  CHECK(none.status.code == 1);
  CHECK(Contains(none.out, "0     DOWN"));
  CHECK(Contains(none.out, "1     DOWN"));
  CHECK(Contains(none.err, "no shard answered"));
}

TEST_CASE("Stats carries apply and request latency, clients and queues",
          "[integration][cli][top]") {
  TempDir dir;
  const std::string spec =
      WriteSpec(dir.File("spec.toml"),
                SpecText("statsmore", 1024, 0.01, {{"w", {2048}, "zeros"}}));
  auto cluster = LocalCluster::Start(spec, dir.File("storage"), 1,
                                     dir.File("c.toml"), {"--queue", "q:2:64"});
  REQUIRE(cluster.ok());
  auto client = Client::Connect((*cluster)->cluster_file());
  REQUIRE(client.ok());
  std::vector<float> grad(2048, 1.0f), weights(2048);
  for (int i = 0; i < 3; ++i) {
    REQUIRE((*client)->Push("w", grad.data(), grad.size()).Wait().ok());
    REQUIRE((*client)->Pull("w", weights.data(), weights.size()).Wait().ok());
  }
  auto stats = (*client)->Stats();
  REQUIRE(stats.ok());
  const ShardStats& s = stats->at(0);
  CHECK(s.apply.count == 6);  // 2 blocks x 3 pushes
  CHECK(s.apply.seconds > 0);
  REQUIRE(s.apply.buckets.size() == 20);
  uint64_t in_buckets = 0;
  for (uint64_t n : s.apply.buckets) in_buckets += n;
  CHECK(in_buckets == s.apply.count);
  CHECK(s.push_latency.count == 3);
  CHECK(s.push_latency.seconds > 0);
  CHECK(s.pull_latency.count == 3);
  CHECK(s.connected_clients == 1);
  REQUIRE(s.queues.size() == 1);
  CHECK(s.queues[0].name == "q");
  CHECK(s.queues[0].slots == 2);
  CHECK(s.queues[0].produced == 0);
  CHECK_FALSE(s.queues[0].closed);
}

TEST_CASE("top refuses bad flags with exit 2 and says why",
          "[integration][cli][top]") {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::string missing = dir.File("missing.toml");
  const std::vector<Case> cases = {
      {{"top"}, "--cluster is required"},
      {{"top", "--cluster", missing, "--interval", "0"}, "--interval"},
      {{"top", "--cluster", missing, "--interval", "abc"}, "--interval"},
      {{"top", "--cluster", missing, "--timeout-ms", "0"}, "--timeout-ms"},
      {{"top", "--cluster", missing, "--bogus"}, "--bogus"},
      {{"top", "--cluster", missing, "--once"}, "missing.toml"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {kShardpsBinary};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const RunResult run = Run(argv);
    INFO(c.args.back() << ": " << run.status.ToString() << " " << run.err);
    CHECK(run.status.exited);
    CHECK(run.status.code == 2);
    CHECK(Contains(run.err, c.message));
  }
}

}  // namespace
}  // namespace shardps::testing
