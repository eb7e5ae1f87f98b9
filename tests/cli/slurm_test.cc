// `shardps serve --slurm` and `shardps cluster --slurm` in a faked Slurm
// step: the test sets the variables srun would (through env -i, so a real
// job around the test changes nothing), on localhost, which resolves to
// 127.0.0.1. And the refusals: no step, a task on the wrong node,
// conflicting flags, all exit 2.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/posix_file.h"
#include "shardps/cluster.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using Vars = std::map<std::string, std::string>;

bool PortFree(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ==
         0;
}

// A base port whose next `count` ports are free now, below the ephemeral
// range; a process taking one meanwhile makes the serve fail loudly.
int FreePorts(int count) {
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> base(30000, 40000);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = base(random);
    bool free = true;
    for (int k = 0; k < count && free; ++k) free = PortFree(port + k);
    if (free) return port;
  }
  FAIL("no free port range on 127.0.0.1");
  return 0;
}

// `shardps ARGS` in exactly the environment `vars`.
std::vector<std::string> WithEnv(const Vars& vars,
                                 const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/env", "-i"};
  for (const auto& [name, value] : vars) argv.push_back(name + "=" + value);
  argv.push_back(kShardpsBinary);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// What srun gives task `procid` of `ntasks` on node `node` of `nodes`.
Vars Task(int procid, int ntasks, const std::string& node,
          const std::string& nodes) {
  return {{"SLURM_JOB_ID", "77"},
          {"SLURM_PROCID", std::to_string(procid)},
          {"SLURM_NTASKS", std::to_string(ntasks)},
          {"SLURMD_NODENAME", node},
          {"SLURM_STEP_NODELIST", nodes},
          {"SLURM_JOB_NODELIST", nodes}};
}

std::string TestSpec(const TempDir& dir) {
  return WriteSpec(
      dir.File("spec.toml"),
      SpecText("slurmdemo", 1024, 1.0, {{"w", {4096}, "constant:2"}}));
}

TEST_CASE("serve --slurm shards are reached through cluster --slurm's file",
          "[cli][slurm][integration]") {
  TempDir dir;
  const std::string spec = TestSpec(dir);
  const std::string storage = dir.File("storage");
  const int port = FreePorts(2);
  // Two tasks on the one node: shard 1 takes the next port (i / H).
  std::vector<std::unique_ptr<ChildProcess>> shards;
  for (int i = 0; i < 2; ++i) {
    auto child = ChildProcess::Spawn(
        WithEnv(Task(i, 2, "localhost", "localhost"),
                {"serve", "--slurm", "--port", std::to_string(port), "--spec",
                 spec, "--storage", storage}));
    REQUIRE(child.ok());
    const auto line = (*child)->ReadLine(kStartTimeout);
    INFO("serve stderr: " << (*child)->Stderr());
    REQUIRE(line.has_value());
    // The stdout contract: the bound endpoint, the node's address.
    CHECK(*line == "listening on tcp://127.0.0.1:" + std::to_string(port + i));
    CHECK(Contains(
        (*child)->Stderr(),
        "Slurm job 77, task " + std::to_string(i) + " of 2 on node localhost"));
    shards.push_back(std::move(child).value());
  }

  const std::string file = dir.File("cluster.toml");
  const RunResult made =
      Run(WithEnv({{"SLURM_JOB_NODELIST", "localhost"}},
                  {"cluster", "--slurm", "--spec", spec, "--port",
                   std::to_string(port), "--shards", "2", "-o", file}));
  INFO(made.err);
  REQUIRE(made.status.ok());
  CHECK(Contains(made.out, "wrote " + file + ": 2 shard(s)"));
  auto cluster = LoadCluster(file);
  REQUIRE(cluster.ok());
  REQUIRE(cluster->shards.size() == 2);
  CHECK(cluster->shards[1].endpoint ==
        "tcp://localhost:" + std::to_string(port + 1));

  const RunResult status =
      Run({kShardpsBinary, "status", "--cluster", file, "--json"});
  INFO(status.err);
  REQUIRE(status.status.ok());
  CHECK(Contains(status.out, "\"shard\": 0"));
  CHECK(Contains(status.out, "\"shard\": 1"));
  CHECK(Contains(status.out, "slurmdemo"));

  SECTION("a replica on the node mirrors no shard of its own node") {
    auto replica =
        ChildProcess::Spawn({kShardpsBinary, "replica", "--cluster", file,
                             "--spec", spec, "--storage", dir.File("replica")});
    REQUIRE(replica.ok());
    const auto ready =
        (*replica)->ReadLineContaining("replica ready", kStartTimeout);
    INFO("replica stderr: " << (*replica)->Stderr());
    REQUIRE(ready.has_value());
    CHECK(*ready == "replica ready: mirroring shard(s) [], on this host [0,1]");
  }
  SECTION("SIGTERM stops a serve --slurm shard cleanly") {
    REQUIRE(shards[0]->Signal(SIGTERM));
    const auto exit = shards[0]->Wait(kExitTimeout);
    REQUIRE(exit.has_value());
    CHECK(exit->ok());
    CHECK(Contains(shards[0]->Stderr(), "stopped cleanly"));
  }
}

TEST_CASE("serve --slurm refuses to start outside its place, exit 2",
          "[cli][slurm][integration]") {
  TempDir dir;
  const std::string spec = TestSpec(dir);
  const std::vector<std::string> serve = {"serve",     "--slurm",    "--port",
                                          "31000",     "--spec",     spec,
                                          "--storage", dir.File("s")};
  auto refused = [&](const Vars& vars, std::vector<std::string> args) {
    const RunResult r = Run(WithEnv(vars, args));
    INFO(r.out << r.err);
    CHECK(r.status.exited);
    CHECK(r.status.code == 2);
    CHECK(r.out.empty());  // never "listening on"
    return r.err;
  };
  SECTION("outside a step") {
    CHECK(Contains(refused({}, serve),
                   "shardps serve: invalid argument: --slurm: not inside a "
                   "Slurm job step: SLURM_PROCID is not set"));
    Vars vars = Task(0, 1, "localhost", "localhost");
    vars.erase("SLURMD_NODENAME");
    CHECK(Contains(refused(vars, serve), "SLURMD_NODENAME is not set"));
  }
  SECTION("a task on another node than its shard's") {
    // Block distribution put tasks 0 and 1 on the first node; the layout
    // wants task 1 on the second.
    const std::string err =
        refused(Task(1, 2, "localhost", "localhost,node-b"), serve);
    CHECK(Contains(err,
                   "task 1 runs on node localhost, but shard 1 belongs "
                   "on node node-b"));
    CHECK(Contains(err, "--ntasks-per-node"));
    CHECK(Contains(err, "--distribution=cyclic"));
  }
  SECTION("flags that --slurm replaces") {
    const Vars task = Task(0, 1, "localhost", "localhost");
    for (const std::vector<std::string>& extra :
         std::vector<std::vector<std::string>>{
             {"--shard", "0"},
             {"--shards", "1"},
             {"--listen", "tcp://127.0.0.1:31000"}}) {
      std::vector<std::string> args = serve;
      args.insert(args.end(), extra.begin(), extra.end());
      CHECK(
          Contains(refused(task, args), extra[0] + " conflicts with --slurm"));
    }
    CHECK(Contains(refused(task, {"serve", "--slurm", "--spec", spec}),
                   "--slurm needs --port BASE"));
  }
  SECTION("a node name that does not resolve") {
    CHECK(Contains(
        refused(Task(0, 1, "no-such-node.invalid", "no-such-node.invalid"),
                serve),
        "cannot resolve host 'no-such-node.invalid'"));
  }
  SECTION("ports past 65535") {
    std::vector<std::string> args = serve;
    args[3] = "65535";
    CHECK(Contains(refused(Task(0, 2, "localhost", "localhost"), args),
                   "--port: shards use ports 65535..65536"));
  }
}

TEST_CASE("cluster --slurm places the job's nodes and writes to stdout",
          "[cli][slurm][integration]") {
  TempDir dir;
  const std::string spec = TestSpec(dir);
  SECTION("one shard per node by default, from SLURM_JOB_NODELIST") {
    const RunResult r =
        Run(WithEnv({{"SLURM_JOB_NODELIST", "node[1-3]"}},
                    {"cluster", "--slurm", "--spec", spec, "--port", "7000",
                     "--insecure", "-o", "-"}));
    INFO(r.err);
    REQUIRE(r.status.ok());
    auto cluster = ParseCluster(r.out);
    INFO(cluster.status().ToString());
    REQUIRE(cluster.ok());
    REQUIRE(cluster->shards.size() == 3);
    CHECK(cluster->shards[2].endpoint == "tcp://node3:7000");
    CHECK(Contains(r.err, "3 shard(s) of model 'slurmdemo' on 3 host(s)"));
  }
  SECTION("--nodelist overrides the environment; --shards N wraps around") {
    const RunResult r = Run(
        WithEnv({{"SLURM_JOB_NODELIST", "other"}},
                {"cluster", "--slurm", "--nodelist", "n[08-09]", "--model", "m",
                 "--shards", "3", "--port", "7000", "--insecure", "-o", "-"}));
    INFO(r.err);
    REQUIRE(r.status.ok());
    auto cluster = ParseCluster(r.out);
    REQUIRE(cluster.ok());
    REQUIRE(cluster->shards.size() == 3);
    CHECK(cluster->shards[0].endpoint == "tcp://n08:7000");
    CHECK(cluster->shards[1].endpoint == "tcp://n09:7000");
    CHECK(cluster->shards[2].endpoint == "tcp://n08:7001");
  }
  SECTION("refusals, exit 2") {
    auto refused = [&](const Vars& vars, std::vector<std::string> args) {
      const RunResult r = Run(WithEnv(vars, args));
      INFO(r.out << r.err);
      CHECK(r.status.code == 2);
      CHECK(r.out.empty());
      return r.err;
    };
    const std::vector<std::string> base = {
        "cluster", "--slurm", "--model", "m", "--port", "7000", "-o", "-"};
    CHECK(Contains(refused({}, base),
                   "not inside a Slurm job: SLURM_JOB_NODELIST is not set"));
    CHECK(Contains(refused({{"SLURM_JOB_NODELIST", "n[2-1]"}}, base),
                   "range 2-1 is reversed"));
    // Not loopback: CURVE or --insecure, as with --hosts.
    CHECK(Contains(refused({{"SLURM_JOB_NODELIST", "node1"}}, base),
                   "host 'node1' is not loopback"));
    std::vector<std::string> both = base;
    both.insert(both.end(), {"--hosts", "a"});
    CHECK(Contains(refused({{"SLURM_JOB_NODELIST", "a"}}, both), "excludes"));
    CHECK(Contains(refused({}, {"cluster", "--nodelist", "a", "--model", "m",
                                "--port", "1"}),
                   "requires --slurm"));
    CHECK(Contains(refused({}, {"cluster", "--model", "m", "--port", "1"}),
                   "--hosts A,B --shards N, or --slurm"));
  }
}

}  // namespace
}  // namespace shardps::testing
