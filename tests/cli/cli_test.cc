// The `shardps` command line, run as a user would: launch a cluster, look at
// it, push and pull through it, inspect its segments, stop it; and the exit
// codes and messages of bad input.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/npy.h"
#include "common/segment.h"
#include "shardps/cluster.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::seconds;

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

std::string CliSpec() {
  return SpecText("clidemo", 1024, 1.0,
                  {{"big", {50, 100}, "constant:4"}, {"tiny", {3}, "zeros"}});
}

TEST_CASE("cli launches, serves, moves tensors and stops a local cluster",
          "[integration]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), CliSpec());
  const std::string cluster_file = dir.File("cluster.toml");
  const std::string storage = dir.File("storage");
  const std::string bin = kShardpsBinary;

  auto launch = ChildProcess::Spawn({bin, "launch", "--spec", spec, "--shards",
                                     "2", "--cluster-file", cluster_file,
                                     "--storage", storage});
  REQUIRE(launch.ok());
  ChildProcess& launcher = **launch;
  const auto ready = launcher.ReadLineContaining("ready", kStartTimeout);
  INFO("launch stderr: " << launcher.Stderr());
  REQUIRE(ready.has_value());
  // Both shard lines follow the "ready" line.
  REQUIRE(launcher.ReadLine(seconds(5)).has_value());
  REQUIRE(launcher.ReadLine(seconds(5)).has_value());
  const std::vector<pid_t> pids = ShardPids(launcher.lines_seen());
  REQUIRE(pids.size() == 2);

  auto cluster = LoadCluster(cluster_file);
  REQUIRE(cluster.ok());
  REQUIRE(cluster->shards.size() == 2);
  const std::string ep0 = cluster->shards[0].endpoint;
  const std::string ep1 = cluster->shards[1].endpoint;

  SECTION("status lists both shards, as a table and as JSON") {
    const RunResult table = Run({bin, "status", "--cluster", cluster_file});
    INFO(table.err);
    REQUIRE(table.status.ok());
    CHECK(Contains(table.out, ep0));
    CHECK(Contains(table.out, ep1));
    CHECK(Contains(table.out, "clidemo"));

    const RunResult json =
        Run({bin, "status", "--cluster", cluster_file, "--json"});
    INFO(json.err);
    REQUIRE(json.status.ok());
    CHECK(Contains(json.out, "\"shards\""));
    CHECK(Contains(json.out, "\"" + ep0 + "\""));
    CHECK(Contains(json.out, "\"" + ep1 + "\""));
    CHECK(Contains(json.out, "\"shard\": 1"));
    CHECK(json.out.front() == '{');
    CHECK(json.out.find_last_not_of("\n") == json.out.rfind('}'));
  }

  SECTION("push --fill then pull --out round-trips through a .npy file") {
    const RunResult push = Run({bin, "push", "--cluster", cluster_file,
                                "--tensor", "big", "--fill", "0.75"});
    INFO(push.err);
    REQUIRE(push.status.ok());
    const std::string npy = dir.File("big.npy");
    const RunResult pull = Run({bin, "pull", "--cluster", cluster_file,
                                "--tensor", "big", "--out", npy});
    INFO(pull.err);
    REQUIRE(pull.status.ok());
    auto array = ReadNpy(npy);
    INFO(array.status().ToString());
    REQUIRE(array.ok());
    CHECK(array->shape == std::vector<uint64_t>{50, 100});
    REQUIRE(array->data.size() == 5000);
    size_t wrong = 0;
    for (float v : array->data) wrong += v != 4.0f - 0.75f;
    CHECK(wrong == 0);
  }

  SECTION("push to an unknown tensor exits 2 and names it") {
    const RunResult push = Run({bin, "push", "--cluster", cluster_file,
                                "--tensor", "nope", "--fill", "1"});
    CHECK(push.status.exited);
    CHECK(push.status.code == 2);
    CHECK(Contains(push.err, "unknown tensor"));
    CHECK(Contains(push.err, "nope"));
  }

  SECTION("inspect --json describes a live shard's segment") {
    const RunResult inspect =
        Run({bin, "inspect", cluster->shards[1].segment, "--json"});
    INFO(inspect.err);
    REQUIRE(inspect.status.ok());
    CHECK(Contains(inspect.out, "\"big\""));
    CHECK(Contains(inspect.out, "\"tiny\""));
    CHECK(Contains(inspect.out, "\"model\": \"clidemo\""));
    CHECK(Contains(inspect.out, "\"shard\": 1"));
  }

  // Every section ends the same way: SIGINT stops the whole cluster.
  REQUIRE(launcher.Signal(SIGINT));
  const auto exit = launcher.Wait(kExitTimeout);
  INFO("launch stderr: " << launcher.Stderr());
  REQUIRE(exit.has_value());
  CHECK(exit->ok());
  CHECK_FALSE(FileExists(cluster_file));
  for (pid_t pid : pids) {
    INFO("shard pid " << pid);
    CHECK(ProcessGone(pid));
  }
  // Their segments stay, marked as cleanly shut down.
  const RunResult inspect = Run({bin, "inspect", cluster->shards[0].segment});
  CHECK(inspect.status.ok());
  CHECK(Contains(inspect.out, "clean shutdown"));
}

// Waits (bounded) until the launcher's stderr mentions `needle`.
bool StderrEventually(ChildProcess& launcher, const std::string& needle) {
  for (int i = 0; i < 200; ++i) {  // up to 10 s
    if (Contains(launcher.Stderr(), needle)) return true;
    ::usleep(50000);
  }
  return false;
}

TEST_CASE("launch restarts a killed shard on its endpoint with its weights",
          "[integration]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), CliSpec());
  const std::string cluster_file = dir.File("cluster.toml");
  const std::string bin = kShardpsBinary;
  auto launch = ChildProcess::Spawn({bin, "launch", "--spec", spec, "--shards",
                                     "2", "--cluster-file", cluster_file,
                                     "--storage", dir.File("storage")});
  REQUIRE(launch.ok());
  ChildProcess& launcher = **launch;
  REQUIRE(launcher.ReadLineContaining("ready", kStartTimeout).has_value());
  REQUIRE(launcher.ReadLine(seconds(5)).has_value());
  REQUIRE(launcher.ReadLine(seconds(5)).has_value());
  const std::vector<pid_t> pids = ShardPids(launcher.lines_seen());
  REQUIRE(pids.size() == 2);

  const RunResult push = Run({bin, "push", "--cluster", cluster_file,
                              "--tensor", "big", "--fill", "0.5"});
  REQUIRE(push.status.ok());
  REQUIRE(::kill(pids[0], SIGKILL) == 0);
  INFO("launch stderr: " << launcher.Stderr());
  REQUIRE(StderrEventually(launcher, "shard 0 restarted"));

  // Same cluster file, same endpoint: the CLI reaches the new process, which
  // reopened the segment with the acknowledged push in it.
  const std::string npy = dir.File("big.npy");
  const RunResult pull = Run({bin, "pull", "--cluster", cluster_file,
                              "--tensor", "big", "--out", npy});
  INFO(pull.err);
  REQUIRE(pull.status.ok());
  auto array = ReadNpy(npy);
  REQUIRE(array.ok());
  size_t wrong = 0;
  for (float v : array->data) wrong += v != 4.0f - 0.5f;
  CHECK(wrong == 0);

  int restarted_pid = 0;
  const std::string err = launcher.Stderr();
  const size_t at = err.find("restarted (pid ");
  REQUIRE(at != std::string::npos);
  REQUIRE(std::sscanf(err.c_str() + at, "restarted (pid %d)", &restarted_pid) ==
          1);
  REQUIRE(launcher.Signal(SIGINT));
  const auto exit = launcher.Wait(kExitTimeout);
  REQUIRE(exit.has_value());
  CHECK(exit->ok());
  CHECK(ProcessGone(restarted_pid));
  CHECK(ProcessGone(pids[1]));
}

TEST_CASE("cli rejects bad input with exit code 2 and a useful message",
          "[integration]") {
  TempDir dir;
  const std::string bin = kShardpsBinary;
  const std::string good = WriteSpec(dir.File("good.toml"), CliSpec());

  SECTION("serve with a negative shape names the key") {
    const std::string bad = WriteSpec(dir.File("bad.toml"), R"(
[model]
name = "clidemo"

[[tensor]]
name = "w"
shape = [4, -3]
init = "zeros"
)");
    const RunResult serve =
        Run({bin, "serve", "--spec", bad, "--shard", "0", "--shards", "1",
             "--storage", dir.File("storage")});
    INFO(serve.err);
    CHECK(serve.status.exited);
    CHECK(serve.status.code == 2);
    CHECK(Contains(serve.err, "tensor[0].shape"));
    CHECK(Contains(serve.err, "-3"));
    CHECK_FALSE(FileExists(dir.File("storage/clidemo")));
  }

  SECTION("an unknown flag") {
    const RunResult serve =
        Run({bin, "serve", "--spec", good, "--shard", "0", "--shards", "1",
             "--storage", dir.File("storage"), "--no-such-flag"});
    INFO(serve.err);
    CHECK(serve.status.exited);
    CHECK(serve.status.code == 2);
    CHECK(Contains(serve.err + serve.out, "--no-such-flag"));
    CHECK_FALSE(Contains(serve.out, "listening on"));
  }

  SECTION("an unknown command") {
    const RunResult run = Run({bin, "frobnicate"});
    CHECK(run.status.exited);
    CHECK(run.status.code == 2);
  }

  SECTION("a shard index beyond the shard count") {
    const RunResult serve =
        Run({bin, "serve", "--spec", good, "--shard", "2", "--shards", "2",
             "--storage", dir.File("storage")});
    INFO(serve.err);
    CHECK(serve.status.exited);
    CHECK(serve.status.code == 2);
    CHECK(Contains(serve.err, "--shard"));
  }

  SECTION("status of a cluster file that does not exist") {
    const RunResult status =
        Run({bin, "status", "--cluster", dir.File("missing.toml")});
    INFO(status.err);
    CHECK(status.status.exited);
    CHECK(status.status.code == 2);
    CHECK(Contains(status.err, "missing.toml"));
  }
}

TEST_CASE("launch refuses a live cluster's file and deletes only its own",
          "[integration]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), CliSpec());
  const std::string cluster_file = dir.File("cluster.toml");
  const std::string bin = kShardpsBinary;
  // A stale file (its servers are gone) is taken over, with a note.
  WriteFileBytes(cluster_file,
                 "model = \"clidemo\"\n[[shard]]\nindex = 0\n"
                 "endpoint = \"tcp://127.0.0.1:1\"\n");
  auto first = ChildProcess::Spawn({bin, "launch", "--spec", spec, "--shards",
                                    "1", "--cluster-file", cluster_file,
                                    "--storage", dir.File("storage")});
  REQUIRE(first.ok());
  ChildProcess& launcher = **first;
  INFO("first launch stderr: " << launcher.Stderr());
  REQUIRE(launcher.ReadLineContaining("ready", kStartTimeout).has_value());
  CHECK(Contains(launcher.Stderr(), "no server of it answers"));
  const std::string written = ReadFileBytes(cluster_file);
  CHECK_FALSE(Contains(written, "127.0.0.1:1\""));

  // A second launch on the live cluster's file is refused before it starts
  // a server, and leaves the file alone.
  const RunResult second =
      Run({bin, "launch", "--spec", spec, "--shards", "1", "--cluster-file",
           cluster_file, "--storage", dir.File("storage2")});
  INFO("second launch: " << second.err);
  CHECK(second.status.code == 1);
  CHECK(Contains(second.err, "belongs to a running cluster"));
  CHECK(Contains(second.err, "--cluster-file"));
  CHECK_FALSE(Contains(second.out, "ready"));
  CHECK(ReadFileBytes(cluster_file) == written);
  CHECK(Run({bin, "status", "--cluster", cluster_file}).status.ok());

  SECTION("the file it wrote is deleted when it stops") {
    REQUIRE(launcher.Signal(SIGINT));
    REQUIRE(launcher.Wait(kExitTimeout).has_value());
    CHECK_FALSE(FileExists(cluster_file));
  }
  SECTION("a file someone changed since is kept") {
    const std::string edited = written + "# edited\n";
    WriteFileBytes(cluster_file, edited);
    REQUIRE(launcher.Signal(SIGINT));
    REQUIRE(launcher.Wait(kExitTimeout).has_value());
    REQUIRE(FileExists(cluster_file));
    CHECK(ReadFileBytes(cluster_file) == edited);
    CHECK(Contains(launcher.Stderr(), "changed since launch wrote it"));
  }
}

TEST_CASE(
    "cli connect errors name the likely cause and the command that fixes it",
    "[integration]") {
  TempDir dir;
  const std::string bin = kShardpsBinary;
  const std::string spec = WriteSpec(dir.File("spec.toml"), CliSpec());

  SECTION("a cluster file launch has not written yet") {
    const RunResult status =
        Run({bin, "status", "--cluster", dir.File("cluster.toml")});
    INFO(status.err);
    CHECK(status.status.code == 2);
    CHECK(Contains(status.err, "cluster.toml: no such file"));
    CHECK(Contains(status.err, "is `shardps launch` still starting?"));
    CHECK(Contains(status.err, "when every shard is up"));
  }

  SECTION("a model spec passed as the cluster file") {
    const RunResult status = Run({bin, "status", "--cluster", spec});
    INFO(status.err);
    CHECK(status.status.code == 2);
    CHECK(Contains(status.err, "this is a model spec"));
    CHECK(Contains(status.err, "pass the cluster file `shardps launch` wrote"));
    CHECK_FALSE(Contains(status.err, "unknown key"));
  }

  SECTION("a stale cluster file whose servers are gone") {
    // Port 1 (tcpmux) has no listener on a test host: nothing answers.
    WriteFileBytes(dir.File("stale.toml"),
                   "model = \"clidemo\"\n[[shard]]\nindex = 0\n"
                   "endpoint = \"tcp://127.0.0.1:1\"\n");
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{bin, "status", "--cluster",
                                   dir.File("stale.toml"),
                                   "--connect-timeout-ms", "300"},
          std::vector<std::string>{bin, "pull", "--cluster",
                                   dir.File("stale.toml"), "--tensor", "tiny",
                                   "--out", dir.File("tiny.npy"),
                                   "--connect-timeout-ms", "300"}}) {
      const auto start = std::chrono::steady_clock::now();
      const RunResult run = Run(args);
      INFO(args[1] << ": " << run.err);
      CHECK(run.status.code == 1);
      CHECK(Contains(run.err, "tcp://127.0.0.1:1"));
      CHECK(Contains(run.err, "waited 300 ms"));
      CHECK(Contains(run.err, "stale.toml may be stale"));
      CHECK(Contains(run.err,
                     "was the cluster stopped? start it with "
                     "`shardps launch"));
      // --connect-timeout-ms, not the request timeout, bounded the wait.
      CHECK(std::chrono::steady_clock::now() - start < seconds(10));
    }
  }

  SECTION("every connecting command has one connect timeout default") {
    for (const char* command :
         {"status", "push", "pull", "checkpoint", "feed"}) {
      const RunResult help = Run({bin, command, "--help"});
      INFO(command << ": " << help.out);
      CHECK(Contains(help.out, "--connect-timeout-ms"));
      CHECK(Contains(help.out,
                     "--connect-timeout-ms INT:INT in [1 - 3600000]=10000"));
    }
  }

  SECTION("feed to a queue file that does not exist") {
    WriteFileBytes(dir.File("rows.csv"), "a,b\n1,2\n");
    const RunResult feed = Run({bin, "feed", "--queue", dir.File("no-queue"),
                                "--window", "1", dir.File("rows.csv")});
    INFO(feed.err);
    CHECK(feed.status.code == 2);
    CHECK(Contains(feed.err, "no-queue"));
    CHECK(Contains(feed.err, "create it with `shardps queue create " +
                                 dir.File("no-queue")));
    CHECK(Contains(feed.err, "serve --queue"));
  }
}

}  // namespace
}  // namespace shardps::testing
