// `shardps health` against real shard servers and a real host replica (the
// probe Kubernetes and systemd run), the pattern form of the cluster file
// end to end, and `serve --shard-from-hostname` in a UTS namespace.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

std::string HealthSpec() {
  return SpecText("healthdemo", 1024, 1.0, {{"w", {40, 100}, "zeros"}});
}

// Starts `shardps serve` for shard `shard` of `shards` on `listen` and
// waits for its "listening on" line; returns the endpoint in *endpoint.
std::unique_ptr<ChildProcess> StartShard(const TempDir& dir,
                                         const std::string& spec, int shard,
                                         int shards, const std::string& listen,
                                         std::string* endpoint) {
  auto child = ChildProcess::Spawn(
      {kShardpsBinary, "serve", "--spec", spec, "--shard",
       std::to_string(shard), "--shards", std::to_string(shards), "--listen",
       listen, "--storage", dir.File("storage")});
  REQUIRE(child.ok());
  auto line = (*child)->ReadLineContaining("listening on", kStartTimeout);
  INFO("serve stderr: " << (*child)->Stderr());
  REQUIRE(line.has_value());
  *endpoint = line->substr(line->rfind(' ') + 1);
  return std::move(child).value();
}

void CheckExit(const RunResult& run, int code) {
  INFO("stdout: " << run.out << "\nstderr: " << run.err);
  CHECK(run.status.exited);
  CHECK(run.status.code == code);
}

TEST_CASE("health exits 0 for a serving shard and 1 once it is gone",
          "[integration][health]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), HealthSpec());
  std::string endpoint;
  auto shard = StartShard(dir, spec, 0, 1, "tcp://127.0.0.1:*", &endpoint);

  const RunResult up = Run({kShardpsBinary, "health", "--endpoint", endpoint});
  CheckExit(up, 0);
  CHECK(Contains(up.out, "serves shard 0 of 1 of model 'healthdemo'"));
  CHECK(up.err.empty());

  REQUIRE(shard->Signal(SIGKILL));
  REQUIRE(shard->Wait(kStartTimeout).has_value());
  const RunResult down = Run(
      {kShardpsBinary, "health", "--endpoint", endpoint, "--timeout", "300ms"});
  CheckExit(down, 1);
  CHECK(Contains(down.err, endpoint + ": no answer within 300 ms"));
  CHECK(down.out.empty());
  // One line saying why.
  CHECK(down.err.find('\n') == down.err.size() - 1);
}

TEST_CASE(
    "health and status reach shards named by a cluster file's "
    "endpoint_pattern",
    "[integration][health]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), HealthSpec());
  std::string ep0, ep1;
  auto shard0 =
      StartShard(dir, spec, 0, 2, "ipc://" + dir.File("shard-0.sock"), &ep0);
  auto shard1 =
      StartShard(dir, spec, 1, 2, "ipc://" + dir.File("shard-1.sock"), &ep1);
  const std::string cluster =
      WriteSpec(dir.File("cluster.toml"),
                "model = \"healthdemo\"\nshards = 2\n"
                "endpoint_pattern = \"ipc://" +
                    dir.File("shard-{i}.sock") + "\"\n");

  const RunResult all = Run({kShardpsBinary, "health", "--cluster", cluster});
  CheckExit(all, 0);
  CHECK(Contains(all.out, ep0 + " serves shard 0 of 2"));
  CHECK(Contains(all.out, ep1 + " serves shard 1 of 2"));

  const RunResult status =
      Run({kShardpsBinary, "status", "--cluster", cluster});
  CheckExit(status, 0);
  CHECK(Contains(status.out, ep1));

  SECTION("one shard of the file") {
    const RunResult one =
        Run({kShardpsBinary, "health", "--cluster", cluster, "--shard", "1"});
    CheckExit(one, 0);
    CHECK(Contains(one.out, "serves shard 1 of 2"));
    CHECK_FALSE(Contains(one.out, "shard 0"));
  }

  SECTION("a shard answering at another shard's place is unhealthy") {
    const std::string swapped = WriteSpec(
        dir.File("swapped.toml"),
        "model = \"healthdemo\"\n[[shard]]\nindex = 0\nendpoint = "
        "\"" +
            ep1 + "\"\n[[shard]]\nindex = 1\nendpoint = \"" + ep0 + "\"\n");
    const RunResult wrong =
        Run({kShardpsBinary, "health", "--cluster", swapped, "--shard", "0"});
    CheckExit(wrong, 1);
    CHECK(Contains(wrong.err,
                   "serves shard 1 of 2, the cluster file lists "
                   "it as shard 0 of 2"));
  }

  SECTION("the host replica is healthy while it runs") {
    const std::string storage = dir.File("replica");
    auto replica = ChildProcess::Spawn({kShardpsBinary, "replica", "--cluster",
                                        cluster, "--spec", spec, "--storage",
                                        storage, "--all-shards"});
    REQUIRE(replica.ok());
    INFO("replica stderr: " << (*replica)->Stderr());
    REQUIRE((*replica)
                ->ReadLineContaining("replica ready", kStartTimeout)
                .has_value());
    const RunResult up = Run({kShardpsBinary, "health", "--replica-storage",
                              storage, "--model", "healthdemo"});
    CheckExit(up, 0);
    CHECK(Contains(up.out, "keeps 2 copies"));

    REQUIRE((*replica)->Signal(SIGKILL));
    REQUIRE((*replica)->Wait(kStartTimeout).has_value());
    const RunResult down = Run({kShardpsBinary, "health", "--replica-storage",
                                storage, "--model", "healthdemo"});
    CheckExit(down, 1);
    CHECK(Contains(down.err, "is not running"));
  }
}

TEST_CASE("health refuses bad flags with exit code 2",
          "[integration][health]") {
  TempDir dir;
  const std::string bin = kShardpsBinary;
  const RunResult none = Run({bin, "health"});
  CheckExit(none, 2);
  CHECK(Contains(none.err, "give exactly one of --endpoint, --cluster"));
  CheckExit(Run({bin, "health", "--endpoint", "tcp://127.0.0.1:1", "--cluster",
                 dir.File("c.toml")}),
            2);
  const RunResult scheme = Run({bin, "health", "--endpoint", "localhost:7000"});
  CheckExit(scheme, 2);
  CHECK(Contains(scheme.err, "--endpoint"));
  const RunResult timeout = Run(
      {bin, "health", "--endpoint", "tcp://127.0.0.1:1", "--timeout", "soon"});
  CheckExit(timeout, 2);
  CHECK(Contains(timeout.err, "--timeout"));
  CheckExit(Run({bin, "health", "--replica-storage", dir.path()}), 2);
  CheckExit(
      Run({bin, "health", "--endpoint", "tcp://127.0.0.1:1", "--shard", "0"}),
      2);
  const RunResult missing =
      Run({bin, "health", "--replica-storage", dir.path(), "--model", "m"});
  CheckExit(missing, 1);
  CHECK(Contains(missing.err, "no replica copies"));
}

TEST_CASE("serve --shard-from-hostname serves the pod ordinal's shard",
          "[integration][health]") {
  if (::geteuid() != 0) {
    WARN("skipped: needs root for a UTS namespace (unshare -u)");
    return;
  }
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), HealthSpec());
  const std::string serve = std::string(kShardpsBinary) + " serve --spec " +
                            spec + " --shards 3 --shard-from-hostname " +
                            "--storage " + dir.File("storage") +
                            " --listen tcp://127.0.0.1:*";

  SECTION("a StatefulSet pod name") {
    auto child = ChildProcess::Spawn({"/usr/bin/unshare", "-u", "/bin/sh", "-c",
                                      "hostname shardps-2 && exec " + serve});
    REQUIRE(child.ok());
    auto line = (*child)->ReadLineContaining("listening on", kStartTimeout);
    INFO("serve stderr: " << (*child)->Stderr());
    REQUIRE(line.has_value());
    const std::string endpoint = line->substr(line->rfind(' ') + 1);
    const RunResult up =
        Run({kShardpsBinary, "health", "--endpoint", endpoint});
    CheckExit(up, 0);
    CHECK(Contains(up.out, "serves shard 2 of 3"));
    CHECK(Contains(up.out, "on shardps-2"));
  }

  SECTION("a hostname without an ordinal, or beyond --shards") {
    const RunResult none = Run({"/usr/bin/unshare", "-u", "/bin/sh", "-c",
                                "hostname trainer && exec " + serve});
    CheckExit(none, 2);
    CHECK(Contains(none.err, "hostname 'trainer' has no trailing ordinal"));
    const RunResult beyond = Run({"/usr/bin/unshare", "-u", "/bin/sh", "-c",
                                  "hostname shardps-3 && exec " + serve});
    CheckExit(beyond, 2);
    CHECK(Contains(beyond.err, "gives shard 3, but --shards is 3"));
  }

  SECTION("neither --shard nor --shard-from-hostname, or both") {
    CheckExit(Run({kShardpsBinary, "serve", "--spec", spec, "--shards", "1"}),
              2);
    CheckExit(Run({kShardpsBinary, "serve", "--spec", spec, "--shards", "1",
                   "--shard", "0", "--shard-from-hostname"}),
              2);
  }
}

}  // namespace
}  // namespace shardps::testing
