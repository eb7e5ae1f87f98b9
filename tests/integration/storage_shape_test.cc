// What `serve` and `launch` do when the storage holds a model in another
// shape than asked for: trained at another shard count, or from a spec that
// has changed since. Both refuse with exit 2 before creating or changing
// anything, name what differs and say the way out.
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::seconds;

std::string ShapeSpec() {
  return SpecText("shapes", 1024, 1.0,
                  {{"big", {50, 100}, "constant:4"}, {"tiny", {3}, "zeros"}});
}

// Every file under `dir` with its bytes: what "nothing changed" compares.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      files[e.path().string()] = ReadFileBytes(e.path().string());
  return files;
}

// Serves every shard of `shards` once and stops it cleanly, leaving trained
// (pushed-to) segments behind.
void TrainAt(const std::string& spec, const std::string& storage,
             uint32_t shards, const std::string& cluster_file) {
  auto cluster = LocalCluster::Start(spec, storage, shards, cluster_file);
  INFO(cluster.status().ToString());
  REQUIRE(cluster.ok());
  const RunResult push = Run({kShardpsBinary, "push", "--cluster", cluster_file,
                              "--tensor", "big", "--fill", "0.5"});
  INFO(push.err);
  REQUIRE(push.status.ok());
  for (uint32_t i = 0; i < shards; ++i) {
    ChildProcess& p = *(*cluster)->server(i).process;
    REQUIRE(p.Signal(SIGINT));
    const auto exit = p.Wait(kExitTimeout);
    REQUIRE(exit.has_value());
    REQUIRE(exit->ok());
  }
}

TEST_CASE("serve and launch refuse a new shard count beside trained segments",
          "[integration]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), ShapeSpec());
  const std::string storage = dir.File("storage");
  const std::string bin = kShardpsBinary;
  TrainAt(spec, storage, 2, dir.File("trained.toml"));
  const auto before = Snapshot(storage);
  const std::string model_dir = storage + "/shapes";
  const std::string three = model_dir + "/shard-0-of-3.seg";

  auto check_refusal = [&](const RunResult& run) {
    INFO(run.err);
    CHECK(run.status.exited);
    CHECK(run.status.code == 2);
    CHECK(
        Contains(run.err, "already holds model 'shapes' trained at 2 shards"));
    CHECK(Contains(run.err, "shard-0-of-2.seg"));
    CHECK(Contains(run.err, "shard-1-of-2.seg"));
    CHECK(Contains(run.err, "untouched"));
    CHECK(Contains(run.err, "--shards 2"));
    CHECK(Contains(run.err, "shardps restore"));
    CHECK(Contains(run.err, "--new"));
    CHECK_FALSE(Contains(run.err, "created"));
    CHECK_FALSE(Contains(run.out, "listening on"));
    CHECK_FALSE(Contains(run.out, "ready"));
    // Nothing created, nothing changed.
    CHECK(Snapshot(storage) == before);
  };

  SECTION("serve --shards 3") {
    check_refusal(Run({bin, "serve", "--spec", spec, "--shard", "0", "--shards",
                       "3", "--storage", storage}));
  }

  SECTION("launch --shards 3") {
    check_refusal(
        Run({bin, "launch", "--spec", spec, "--shards", "3", "--cluster-file",
             dir.File("cluster.toml"), "--storage", storage}));
    CHECK_FALSE(std::filesystem::exists(dir.File("cluster.toml")));
  }

  SECTION("serve --shards 3 --new starts a fresh model, loudly") {
    auto server =
        StartServer({spec, 0, 3, "tcp://127.0.0.1:*", storage, {"--new"}});
    INFO(server.status().ToString());
    REQUIRE(server.ok());
    ChildProcess& p = *server->process;
    REQUIRE(p.WaitForStderr("(created)", seconds(10)));
    const std::string err = p.Stderr();
    INFO(err);
    CHECK(Contains(err, "WARNING"));
    CHECK(Contains(err, "new 3-shard model"));
    CHECK(Contains(err, "trained at 2 shards"));
    CHECK(std::filesystem::exists(three));
    REQUIRE(p.Signal(SIGINT));
    REQUIRE(p.Wait(kExitTimeout).has_value());
    // The trained segments are as they were.
    for (const auto& [path, bytes] : before)
      if (Contains(path, "-of-2.seg")) CHECK(ReadFileBytes(path) == bytes);
  }

  SECTION("launch --shards 3 --new starts, and restarts a killed shard") {
    const std::string cluster_file = dir.File("cluster.toml");
    auto launch = ChildProcess::Spawn(
        {bin, "launch", "--spec", spec, "--shards", "3", "--cluster-file",
         cluster_file, "--storage", storage, "--new"});
    REQUIRE(launch.ok());
    ChildProcess& launcher = **launch;
    INFO("launch stderr: " << launcher.Stderr());
    REQUIRE(launcher.ReadLineContaining("ready", kStartTimeout).has_value());
    for (int i = 0; i < 3; ++i)
      REQUIRE(launcher.ReadLine(seconds(5)).has_value());
    const std::vector<pid_t> pids = ShardPids(launcher.lines_seen());
    REQUIRE(pids.size() == 3);
    CHECK(Contains(launcher.Stderr(), "WARNING"));
    CHECK(std::filesystem::exists(three));

    // The restarted shard reopens its own segment: no refusal, no --new
    // question, even though the 2-shard segments are still there.
    REQUIRE(::kill(pids[1], SIGKILL) == 0);
    REQUIRE(launcher.WaitForStderr("shard 1 restarted", seconds(30)));
    CHECK(Run({bin, "status", "--cluster", cluster_file}).status.ok());
    REQUIRE(launcher.Signal(SIGINT));
    const auto exit = launcher.Wait(kExitTimeout);
    REQUIRE(exit.has_value());
    CHECK(exit->ok());

    // Both shapes are now there; a 2-shard server reopens its segment
    // without --new.
    auto two = StartServer({spec, 1, 2, "tcp://127.0.0.1:*", storage, {}});
    INFO(two.status().ToString());
    REQUIRE(two.ok());
    REQUIRE(two->process->WaitForStderr("(reopened)", seconds(10)));
  }
}

// The same model, changed: another shape, a new tensor, one gone, another
// optimizer.
std::string ChangedSpec() {
  return R"([model]
name = "shapes"
block_floats = 1024

[optimizer]
kind = "sgd"
lr = 1.0

[[tensor]]
name = "big"
shape = [60, 100]
init = "constant:4"

[[tensor]]
name = "extra"
shape = [7]
init = "zeros"
)";
}

TEST_CASE("serve and launch name how a spec differs from its segments",
          "[integration]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), ShapeSpec());
  const std::string changed =
      WriteSpec(dir.File("changed.toml"), ChangedSpec());
  const std::string storage = dir.File("storage");
  const std::string bin = kShardpsBinary;
  TrainAt(spec, storage, 1, dir.File("trained.toml"));
  const auto before = Snapshot(storage);

  auto check_refusal = [&](const RunResult& run) {
    INFO(run.err);
    CHECK(run.status.exited);
    CHECK(run.status.code == 2);
    CHECK(Contains(run.err, "shard-0-of-1.seg"));
    CHECK(Contains(run.err,
                   "tensor 'big' has shape [50, 100] in the segment, "
                   "[60, 100] in the spec"));
    CHECK(Contains(run.err, "tensor 'tiny' is in the segment, not the spec"));
    CHECK(Contains(run.err, "tensor 'extra' is in the spec, not the segment"));
    CHECK(Contains(run.err, "serve the spec it was created with"));
    CHECK(Contains(run.err, "another --storage"));
    CHECK(Contains(run.err, "shardps restore"));
    CHECK_FALSE(Contains(run.out, "listening on"));
    CHECK_FALSE(Contains(run.out, "ready"));
    CHECK(Snapshot(storage) == before);
  };

  SECTION("serve") {
    check_refusal(Run({bin, "serve", "--spec", changed, "--shard", "0",
                       "--shards", "1", "--storage", storage}));
  }
  SECTION("launch") {
    check_refusal(Run({bin, "launch", "--spec", changed, "--shards", "1",
                       "--cluster-file", dir.File("cluster.toml"), "--storage",
                       storage}));
    CHECK_FALSE(std::filesystem::exists(dir.File("cluster.toml")));
  }
}

}  // namespace
}  // namespace shardps::testing
