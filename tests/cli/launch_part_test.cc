// A cluster across "hosts", played on loopback by 127.0.0.1 and 127.0.0.2
// (both in 127.0.0.0/8, which the bind policy treats as loopback): `shardps
// cluster` writes the file, one `shardps launch --this-host` per address
// starts that host's shards, and clients use the pair as one cluster.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/curve_keys.h"
#include "common/posix_file.h"
#include "common/segment.h"
#include "shardps/client.h"
#include "shardps/cluster.h"
#include "shardps/model_spec.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kBlockFloats = 1024;
constexpr size_t kFloats = 8 * kBlockFloats;  // two blocks per shard of 4
const char* const kHostA = "127.0.0.1";
const char* const kHostB = "127.0.0.2";

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Whether TCP port `port` of `host` can be bound right now.
bool PortFree(const char* host, int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host, &addr.sin_addr);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ==
         0;
}

// A base port whose next `count` ports are free on both hosts, below the
// kernel's ephemeral range (where `tcp://...:*` binds of parallel tests
// land). Another process could still take one before the servers bind it;
// the launch then fails loudly, naming the port.
int FreePortRange(int count) {
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> base(20000, 30000);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = base(random);
    bool free = true;
    for (int k = 0; k < count && free; ++k)
      free = PortFree(kHostA, port + k) && PortFree(kHostB, port + k);
    if (free) return port;
  }
  FAIL("no free port range on " << kHostA << " and " << kHostB);
  return 0;
}

CurveKeyPair KeyGen(const TempDir& dir, const std::string& name) {
  const RunResult r = Run({kShardpsBinary, "keygen", "--out", dir.File(name)});
  INFO(r.err);
  REQUIRE(r.status.ok());
  auto pair = LoadCurveKeyPair(dir.File(name));
  REQUIRE(pair.ok());
  return *pair;
}

std::string PartSpec(const TempDir& dir) {
  return WriteSpec(
      dir.File("spec.toml"),
      SpecText("mh", kBlockFloats, 1.0, {{"w", {kFloats}, "constant:10"}}));
}

TEST_CASE("cluster places shard i on host i % H at port BASE + i / H",
          "[cli][integration]") {
  TempDir dir;
  const std::string spec = PartSpec(dir);
  const std::string file = dir.File("cluster.toml");
  const RunResult r =
      Run({kShardpsBinary, "cluster", "--spec", spec, "--shards", "5",
           "--hosts", "127.0.0.1,127.0.0.2", "--port", "41000", "-o", file});
  INFO(r.err);
  REQUIRE(r.status.ok());
  auto cluster = LoadCluster(file);
  INFO(cluster.status().ToString());
  REQUIRE(cluster.ok());
  CHECK(cluster->model == "mh");
  auto loaded = LoadModelSpec(spec);
  REQUIRE(loaded.ok());
  REQUIRE(cluster->spec_hash.has_value());
  CHECK(*cluster->spec_hash == SpecHash(*loaded));
  CHECK(cluster->server_key.empty());
  const std::vector<std::string> want = {
      "tcp://127.0.0.1:41000", "tcp://127.0.0.2:41000", "tcp://127.0.0.1:41001",
      "tcp://127.0.0.2:41001", "tcp://127.0.0.1:41002"};
  REQUIRE(cluster->shards.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("shard " << i);
    CHECK(cluster->shards[i].index == i);
    CHECK(cluster->shards[i].endpoint == want[i]);
    // Each segment exists on its own host only: the file names none.
    CHECK(cluster->shards[i].segment.empty());
  }

  SECTION("with --server-key-file the file carries the servers' public key") {
    const CurveKeyPair server = KeyGen(dir, "server");
    const std::string keyed = dir.File("keyed.toml");
    const RunResult k =
        Run({kShardpsBinary, "cluster", "--model", "mh", "--shards", "2",
             "--hosts", "10.1.0.1,10.1.0.2", "--port", "5000",
             "--server-key-file", dir.File("server.pub"), "-o", keyed});
    INFO(k.err);
    REQUIRE(k.status.ok());
    auto info = LoadCluster(keyed);
    REQUIRE(info.ok());
    CHECK(info->server_key == server.public_key);
    CHECK_FALSE(info->spec_hash.has_value());
    CHECK(info->shards[1].endpoint == "tcp://10.1.0.2:5000");
  }
  SECTION("an existing file is never overwritten") {
    const std::string before = ReadFileBytes(file);
    const RunResult again =
        Run({kShardpsBinary, "cluster", "--model", "other", "--shards", "1",
             "--hosts", "127.0.0.1", "--port", "6000", "-o", file});
    CHECK(again.status.code == 2);
    CHECK(Contains(again.err, "already exists"));
    CHECK(ReadFileBytes(file) == before);
  }
}

TEST_CASE("cluster rejects bad flags with exit code 2 and a message",
          "[cli][integration]") {
  TempDir dir;
  const std::string file = dir.File("cluster.toml");
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const CurveKeyPair server = KeyGen(dir, "server");
  const std::vector<Case> cases = {
      {{"--shards", "2", "--hosts", "", "--port", "5000"}, "empty host"},
      {{"--shards", "2", "--hosts", "127.0.0.1,,127.0.0.2", "--port", "5000"},
       "empty host"},
      {{"--shards", "2", "--hosts", "127.0.0.1,127.0.0.1", "--port", "5000"},
       "listed twice"},
      {{"--shards", "0", "--hosts", "127.0.0.1", "--port", "5000"},
       "--shards: must be 1..256"},
      {{"--shards", "3", "--hosts", "127.0.0.1", "--port", "65534"},
       "65534..65536"},
      {{"--shards", "1", "--hosts", "127.0.0.1", "--port", "0"}, "1..65535"},
      {{"--shards", "1", "--hosts", "127.0.0.1:5000", "--port", "5000"},
       "no port here"},
      {{"--shards", "1", "--hosts", "tcp://127.0.0.1", "--port", "5000"},
       "not an endpoint"},
      {{"--shards", "1", "--hosts", "0.0.0.0", "--port", "5000"}, "wildcard"},
      {{"--shards", "2", "--hosts", "10.1.0.1,10.1.0.2", "--port", "5000"},
       "--server-key-file"},
      {{"--shards", "1", "--hosts", "10.1.0.1", "--port", "5000",
        "--server-key-file", dir.File("server.key")},
       "secret key file"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {kShardpsBinary, "cluster", "--model",
                                     "mh",           "-o",      file};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    const RunResult r = Run(argv);
    INFO("flags: " << argv.back() << " ... expecting: " << c.message);
    INFO("stderr: " << r.err << "\nstdout: " << r.out);
    CHECK(r.status.exited);
    CHECK(r.status.code == 2);
    CHECK(Contains(r.err, c.message));
    CHECK_FALSE(FileExists(file));
  }
  const RunResult no_model =
      Run({kShardpsBinary, "cluster", "--shards", "1", "--hosts", "127.0.0.1",
           "--port", "5000", "-o", file});
  CHECK(no_model.status.code == 2);
  CHECK(Contains(no_model.err, "--model NAME or --spec SPEC"));
  CHECK_FALSE(FileExists(file));
}

// One host's `shardps launch --this-host`, started and ready.
std::unique_ptr<ChildProcess> LaunchPart(const std::vector<std::string>& argv) {
  auto launch = ChildProcess::Spawn(argv);
  REQUIRE(launch.ok());
  const auto ready = (*launch)->ReadLineContaining("ready", kStartTimeout);
  INFO("launch stderr: " << (*launch)->Stderr());
  REQUIRE(ready.has_value());
  return std::move(launch).value();
}

// Connects to `file` with `key`, pushes gradient k % 7 at float k `rounds`
// times and checks that every float pulled back is exactly 10 - total (k %
// 7) (the spec's init 10, sgd with lr 1), `total` being every round pushed
// so far: every shard on both hosts applied every push once.
void PushAndCheck(const std::string& file, const CurveKeyPair& key, int rounds,
                  int total) {
  ClientOptions options;
  options.curve_public_key = key.public_key;
  options.curve_secret_key = key.secret_key;
  options.connect_timeout = milliseconds(10000);
  options.request_timeout = milliseconds(10000);
  auto client = Client::Connect(file, options);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  std::vector<float> grad(kFloats);
  for (size_t k = 0; k < kFloats; ++k) grad[k] = static_cast<float>(k % 7);
  for (int round = 0; round < rounds; ++round) {
    Status s = (*client)->Push("w", grad.data(), grad.size()).Wait();
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  std::vector<float> w(kFloats);
  Status s = (*client)->Pull("w", w.data(), w.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  size_t wrong = 0;
  for (size_t k = 0; k < kFloats; ++k)
    wrong += w[k] != 10.0f - static_cast<float>(total * (k % 7));
  CHECK(wrong == 0);
}

// Shard i's segment was made on host i % 2's storage, and on no other.
void CheckSegmentsOnOwnHost(const std::string& storage_a,
                            const std::string& storage_b) {
  for (uint32_t i = 0; i < 4; ++i) {
    const std::string& home = i % 2 == 0 ? storage_a : storage_b;
    const std::string& other = i % 2 == 0 ? storage_b : storage_a;
    INFO("shard " << i);
    CHECK(FileExists(Segment::PathFor(home, "mh", i, 4)));
    CHECK_FALSE(FileExists(Segment::PathFor(other, "mh", i, 4)));
  }
}

TEST_CASE("two launch --this-host serve one 4-shard CURVE cluster together",
          "[cli][integration]") {
  TempDir dir;
  const std::string spec = PartSpec(dir);
  const CurveKeyPair client_key = KeyGen(dir, "client");
  KeyGen(dir, "server");
  WriteFileBytes(dir.File("authorized"), client_key.public_key + "\n");
  const std::string file = dir.File("cluster.toml");
  const int port = FreePortRange(2);
  const RunResult made = Run(
      {kShardpsBinary, "cluster", "--spec", spec, "--shards", "4", "--hosts",
       std::string(kHostA) + "," + kHostB, "--port", std::to_string(port),
       "--server-key-file", dir.File("server.pub"), "-o", file});
  INFO(made.err);
  REQUIRE(made.status.ok());
  const std::string written = ReadFileBytes(file);

  // Each "host" has storage of its own, as separate machines would.
  auto launch_on = [&](const char* host, const std::string& storage) {
    return LaunchPart({kShardpsBinary, "launch", "--spec", spec,
                       "--cluster-file", file, "--this-host", host, "--storage",
                       storage, "--curve-secret-key", dir.File("server.key"),
                       "--authorized-keys", dir.File("authorized")});
  };
  const std::string storage_a = dir.File("host-a"),
                    storage_b = dir.File("host-b");
  std::unique_ptr<ChildProcess> a = launch_on(kHostA, storage_a);
  std::unique_ptr<ChildProcess> b = launch_on(kHostB, storage_b);
  INFO("host A stderr: " << a->Stderr() << "\nhost B stderr: " << b->Stderr());
  // Each launch started its own two shards, on the file's endpoints.
  CHECK(Contains(a->lines_seen().back(), "2 of 4 shard(s)"));
  CHECK(Contains(b->lines_seen().back(), "2 of 4 shard(s)"));
  CheckSegmentsOnOwnHost(storage_a, storage_b);

  PushAndCheck(file, client_key, 3, 3);

  SECTION("a launch for an address with no shard exits 2, naming the hosts") {
    const RunResult none =
        Run({kShardpsBinary, "launch", "--spec", spec, "--cluster-file", file,
             "--this-host", "127.0.0.3", "--storage", dir.File("host-c"),
             "--curve-secret-key", dir.File("server.key"), "--authorized-keys",
             dir.File("authorized")});
    CHECK(none.status.code == 2);
    CHECK(Contains(none.err, "no shard of " + file + " is on 127.0.0.3"));
    CHECK(Contains(none.err, "127.0.0.1, 127.0.0.2"));
  }
  SECTION("a killed shard comes back on the file's endpoint, weights kept") {
    // Its two shard lines follow the "ready" line.
    REQUIRE(b->ReadLine(kStartTimeout).has_value());
    REQUIRE(b->ReadLine(kStartTimeout).has_value());
    const std::vector<pid_t> pids = ShardPids(b->lines_seen());
    REQUIRE(pids.size() == 2);
    REQUIRE(::kill(pids[0], SIGKILL) == 0);
    CHECK(b->WaitForStderr("shard 1 restarted", kStartTimeout));
    CHECK(Contains(b->Stderr(), "tcp://127.0.0.2:" + std::to_string(port)));
    PushAndCheck(file, client_key, 1, 4);
  }
  SECTION("a launch without CURVE on a file with server_key exits 2") {
    const RunResult plain =
        Run({kShardpsBinary, "launch", "--spec", spec, "--cluster-file", file,
             "--this-host", kHostA, "--storage", dir.File("host-c")});
    CHECK(plain.status.code == 2);
    CHECK(Contains(plain.err, "--curve-secret-key"));
  }

  REQUIRE(a->Signal(SIGINT));
  REQUIRE(b->Signal(SIGINT));
  const auto a_exit = a->Wait(kExitTimeout), b_exit = b->Wait(kExitTimeout);
  REQUIRE(a_exit.has_value());
  REQUIRE(b_exit.has_value());
  CHECK(a_exit->ok());
  CHECK(b_exit->ok());
  // Both hosts read the file; neither rewrote or deleted it.
  REQUIRE(FileExists(file));
  CHECK(ReadFileBytes(file) == written);
}

TEST_CASE("launch --this-host refuses a missing file and --shards",
          "[cli][integration]") {
  TempDir dir;
  const std::string spec = PartSpec(dir);
  const RunResult missing =
      Run({kShardpsBinary, "launch", "--spec", spec, "--cluster-file",
           dir.File("nope.toml"), "--this-host", kHostA, "--storage",
           dir.File("s")});
  CHECK(missing.status.code == 2);
  CHECK(Contains(missing.err, "write it with `shardps cluster`"));
  CHECK_FALSE(FileExists(dir.File("nope.toml")));

  const RunResult shards =
      Run({kShardpsBinary, "launch", "--spec", spec, "--cluster-file",
           dir.File("nope.toml"), "--this-host", kHostA, "--shards", "2"});
  CHECK(shards.status.code == 2);
  CHECK(Contains(shards.err, "--shards excludes --this-host"));
}

}  // namespace
}  // namespace shardps::testing
