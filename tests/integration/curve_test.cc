// CURVE end to end through real `shardps serve` processes: an authorized
// client works; a client with an unknown key, or with no CURVE at all, gets
// no reply, changes nothing, and is counted in the servers' auth_refusals;
// SIGHUP rotates the authorized keys of running servers.
#include <signal.h>
#include <sys/stat.h>
#include <zmq.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/curve_keys.h"
#include "protocol_generated.h"
#include "shardps/client.h"
#include "shardps/cluster.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using Catch::Matchers::Contains;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kBlockFloats = 1024;
constexpr uint32_t kShards = 2;
// Two blocks per shard.
constexpr size_t kFloats = 4 * kBlockFloats;

// Runs `shardps keygen --out dir/name` and returns the pair it wrote.
CurveKeyPair KeyGen(const TempDir& dir, const std::string& name) {
  const RunResult r = Run({kShardpsBinary, "keygen", "--out", dir.File(name)});
  INFO(r.err);
  REQUIRE(r.status.ok());
  auto pair = LoadCurveKeyPair(dir.File(name));
  INFO(pair.status().ToString());
  REQUIRE(pair.ok());
  return *pair;
}

// A Push of ones to block 0 of "w", as a trainer's DEALER would send it.
std::vector<std::string> PushFrames() {
  flatbuffers::FlatBufferBuilder b(256);
  auto model = b.CreateString("sec");
  auto tensor = b.CreateString("w");
  std::vector<uint32_t> block_list = {0};
  auto blocks = b.CreateVector(block_list);
  wire::RequestBuilder req(b);
  req.add_op(wire::Op::Push);
  req.add_request_id(7);
  req.add_client_id(99);
  req.add_model(model);
  req.add_tensor(tensor);
  req.add_blocks(blocks);
  req.add_dtype(wire::DType::F32);
  b.Finish(req.Finish());
  std::vector<float> ones(kBlockFloats, 1.0f);
  return {std::string(reinterpret_cast<const char*>(b.GetBufferPointer()),
                      b.GetSize()),
          std::string(reinterpret_cast<const char*>(ones.data()),
                      ones.size() * sizeof(float))};
}

// Sends a raw Push over a DEALER (with `key` as its CURVE identity when
// set) and reports whether any reply came within `wait`.
bool RawPushGetsReply(const std::string& endpoint,
                      const std::string& server_key, const CurveKeyPair* key,
                      milliseconds wait) {
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  if (key != nullptr) {
    dealer.set(zmq::sockopt::curve_serverkey, server_key);
    dealer.set(zmq::sockopt::curve_publickey, key->public_key);
    dealer.set(zmq::sockopt::curve_secretkey, key->secret_key);
  }
  dealer.connect(endpoint);
  const std::vector<std::string> frames = PushFrames();
  // Without ZMQ_IMMEDIATE the message is queued and goes out as soon as a
  // handshake succeeds, which it must not.
  dealer.send(zmq::buffer(frames[0]), zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(frames[1]), zmq::send_flags::none);
  zmq_pollitem_t item = {dealer.handle(), 0, ZMQ_POLLIN, 0};
  return zmq_poll(&item, 1, static_cast<long>(wait.count())) > 0;
}

struct CurveCluster {
  TempDir dir;
  CurveKeyPair server, client, intruder;
  std::vector<ServerProcess> servers;
  ClusterInfo info;
};

void StartCurveCluster(CurveCluster& c) {
  c.server = KeyGen(c.dir, "server");
  c.client = KeyGen(c.dir, "client");
  c.intruder = KeyGen(c.dir, "intruder");
  WriteFileBytes(c.dir.File("authorized"),
                 "# who may train\n" + c.client.public_key + "  # trainer\n");
  const std::string spec = WriteSpec(
      c.dir.File("spec.toml"),
      SpecText("sec", kBlockFloats, 0.5, {{"w", {kFloats}, "zeros"}}));
  c.info.model = "sec";
  c.info.server_key = c.server.public_key;
  for (uint32_t i = 0; i < kShards; ++i) {
    ServeArgs args;
    args.spec = spec;
    args.shard = i;
    args.shards = kShards;
    args.storage = c.dir.File("storage");
    args.extra = {"--curve-secret-key", c.dir.File("server.key"),
                  "--authorized-keys", c.dir.File("authorized")};
    auto server = StartServer(args);
    INFO(server.status().ToString());
    REQUIRE(server.ok());
    c.info.shards.push_back({i, server->endpoint, ""});
    c.servers.push_back(std::move(server).value());
  }
  REQUIRE(SaveCluster(c.info, c.dir.File("cluster.toml")).ok());
}

ClientOptions KeyedOptions(const CurveKeyPair& key) {
  ClientOptions options;
  options.curve_public_key = key.public_key;
  options.curve_secret_key = key.secret_key;
  options.connect_timeout = milliseconds(10000);
  options.request_timeout = milliseconds(10000);
  return options;
}

std::vector<float> PullAll(Client& client) {
  std::vector<float> w(kFloats);
  Status s = client.Pull("w", w.data(), w.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return w;
}

// Refused handshakes counted by all shards so far.
uint64_t TotalRefusals(Client& client) {
  auto stats = client.Stats();
  INFO(stats.status().ToString());
  REQUIRE(stats.ok());
  uint64_t total = 0;
  for (const ShardStats& s : *stats) total += s.auth_refusals;
  return total;
}

// Waits up to 10 s for the shards' refusal count to reach `at_least` and
// returns the last count. A refusal is counted by the server's ZAP handler
// or socket monitor, possibly after the refused client gave up: on a busy
// machine that can come a little after the client's timeout.
uint64_t WaitForRefusals(Client& client, uint64_t at_least) {
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  uint64_t refusals = TotalRefusals(client);
  while (refusals < at_least && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
    refusals = TotalRefusals(client);
  }
  return refusals;
}

TEST_CASE("curve server serves an authorized client", "[curve][integration]") {
  CurveCluster c;
  StartCurveCluster(c);
  // The server key comes from the cluster file.
  auto client =
      Client::Connect(c.dir.File("cluster.toml"), KeyedOptions(c.client));
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  std::vector<float> grad(kFloats, 2.0f);
  REQUIRE((*client)->Push("w", grad.data(), grad.size()).Wait().ok());
  const std::vector<float> w = PullAll(**client);
  for (float v : w) REQUIRE(v == -1.0f);  // 0 - 0.5 * 2

  // The CLI finds the server key in the cluster file too.
  const RunResult status =
      Run({kShardpsBinary, "status", "--cluster", c.dir.File("cluster.toml"),
           "--curve-key", c.dir.File("client"), "--json"});
  INFO(status.err);
  CHECK(status.status.ok());
  CHECK_THAT(status.out, Contains("\"auth_refusals\": 0"));

  // A raw request with the authorized key is answered, so the silence the
  // refusal test expects is the refusal, not a malformed request.
  CHECK(RawPushGetsReply(c.info.shards[0].endpoint, c.server.public_key,
                         &c.client, milliseconds(5000)));
}

TEST_CASE("curve server refuses unknown keys and plain clients silently",
          "[curve][integration]") {
  CurveCluster c;
  StartCurveCluster(c);
  auto trainer = Client::Connect(c.info, KeyedOptions(c.client));
  INFO(trainer.status().ToString());
  REQUIRE(trainer.ok());
  std::vector<float> grad(kFloats);
  for (size_t i = 0; i < kFloats; ++i) grad[i] = static_cast<float>(i % 7);
  REQUIRE((*trainer)->Push("w", grad.data(), grad.size()).Wait().ok());
  const std::vector<float> before = PullAll(**trainer);
  const uint64_t refusals_before = TotalRefusals(**trainer);
  CHECK(refusals_before == 0);

  SECTION("a client library with an unknown key times out") {
    ClientOptions options = KeyedOptions(c.intruder);
    options.connect_timeout = milliseconds(700);
    auto intruder = Client::Connect(c.info, options);
    CHECK_FALSE(intruder.ok());
    CHECK(intruder.status().code() != Code::kInvalidArgument);
  }
  SECTION("a client library without CURVE times out") {
    ClusterInfo plain = c.info;
    plain.server_key.clear();
    ClientOptions options;
    options.connect_timeout = milliseconds(700);
    auto intruder = Client::Connect(plain, options);
    CHECK_FALSE(intruder.ok());
    CHECK(intruder.status().code() != Code::kInvalidArgument);
  }
  SECTION("raw pushes with an unknown key or no CURVE get no reply") {
    for (const ShardAddress& shard : c.info.shards) {
      CHECK_FALSE(RawPushGetsReply(shard.endpoint, c.server.public_key,
                                   &c.intruder, milliseconds(700)));
      CHECK_FALSE(RawPushGetsReply(shard.endpoint, c.server.public_key, nullptr,
                                   milliseconds(700)));
    }
  }
  SECTION("a client with the wrong server key times out") {
    ClientOptions options = KeyedOptions(c.client);
    options.curve_server_key = c.intruder.public_key;
    options.connect_timeout = milliseconds(700);
    CHECK_FALSE(Client::Connect(c.info, options).ok());
  }

  // Bit for bit what the authorized trainer left.
  const std::vector<float> after = PullAll(**trainer);
  REQUIRE(after.size() == before.size());
  CHECK(std::memcmp(after.data(), before.data(),
                    before.size() * sizeof(float)) == 0);
  CHECK(WaitForRefusals(**trainer, refusals_before + 1) > refusals_before);
  bool logged = false;
  for (ServerProcess& s : c.servers)
    logged = logged ||
             s.process->WaitForStderr("refused connection", milliseconds(2000));
  CHECK(logged);
}

// Rewrites the authorized-keys file the servers were started with, then
// sends each SIGHUP and waits until each logged `outcome`.
void ReloadKeys(CurveCluster& c, const std::string& contents,
                const std::string& outcome) {
  WriteFileBytes(c.dir.File("authorized"), contents);
  for (ServerProcess& s : c.servers) {
    REQUIRE(s.process->Signal(SIGHUP));
    INFO("server stderr: " << s.process->Stderr());
    REQUIRE(s.process->WaitForStderr(outcome, seconds(10)));
  }
}

TEST_CASE("SIGHUP rotates the authorized keys of running servers",
          "[curve][integration]") {
  CurveCluster c;
  StartCurveCluster(c);
  const CurveKeyPair rotated = KeyGen(c.dir, "rotated");
  auto old_trainer = Client::Connect(c.info, KeyedOptions(c.client));
  INFO(old_trainer.status().ToString());
  REQUIRE(old_trainer.ok());
  std::vector<float> ones(kFloats, 1.0f);
  REQUIRE((*old_trainer)->Push("w", ones.data(), ones.size()).Wait().ok());

  // The new list names only the rotated key.
  ReloadKeys(c, rotated.public_key + "\n",
             "SIGHUP: reloaded 1 authorized client key(s)");
  auto new_trainer = Client::Connect(c.info, KeyedOptions(rotated));
  INFO(new_trainer.status().ToString());
  REQUIRE(new_trainer.ok());
  REQUIRE((*new_trainer)->Push("w", ones.data(), ones.size()).Wait().ok());
  const std::vector<float> before = PullAll(**new_trainer);
  for (float v : before) REQUIRE(v == -1.0f);  // two pushes of 1, lr 0.5

  // The removed key's open connection is refused from its next request,
  // with a reason, and changes nothing.
  const Status revoked =
      (*old_trainer)->Push("w", ones.data(), ones.size()).Wait();
  CHECK(revoked.code() == Code::kPermissionDenied);
  CHECK_THAT(revoked.message(), Contains("authorized keys"));
  const std::vector<float> after = PullAll(**new_trainer);
  CHECK(std::memcmp(after.data(), before.data(),
                    before.size() * sizeof(float)) == 0);
  // Counted before the error was sent, so no wait.
  CHECK(TotalRefusals(**new_trainer) >= kShards);  // once per shard
  // And it cannot come back through a new handshake.
  ClientOptions options = KeyedOptions(c.client);
  options.connect_timeout = milliseconds(700);
  CHECK_FALSE(Client::Connect(c.info, options).ok());

  // A file that does not load leaves the running list alone.
  ReloadKeys(c, "not a key\n", "SIGHUP: kept the previous authorized keys");
  CHECK((*new_trainer)->Push("w", ones.data(), ones.size()).Wait().ok());
}

TEST_CASE("SIGHUP without CURVE is logged and ignored",
          "[curve][integration]") {
  TempDir dir;
  ServeArgs args;
  args.spec = WriteSpec(
      dir.File("spec.toml"),
      SpecText("plain", kBlockFloats, 0.5, {{"w", {kFloats}, "zeros"}}));
  args.storage = dir.File("storage");
  auto server = StartServer(args);
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  REQUIRE(server->process->Signal(SIGHUP));
  CHECK(server->process->WaitForStderr("SIGHUP ignored: CURVE is off",
                                       seconds(10)));
  CHECK(server->process->Running());
}

TEST_CASE("serve refuses a non-loopback bind without CURVE unless insecure",
          "[curve][integration]") {
  TempDir dir;
  const std::string spec = WriteSpec(
      dir.File("spec.toml"),
      SpecText("pub", kBlockFloats, 0.5, {{"w", {kFloats}, "zeros"}}));
  ServeArgs args;
  args.spec = spec;
  args.storage = dir.File("storage");
  args.listen = "tcp://0.0.0.0:*";
  const RunResult refused = Run(ServeArgv(args));
  CHECK(refused.status.exited);
  CHECK(refused.status.code == 2);
  CHECK_THAT(refused.err, Contains("without CURVE"));
  CHECK_THAT(refused.err, Contains("--insecure"));

  args.extra = {"--insecure"};
  auto server = StartServer(args);
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  CHECK(server->process->WaitForStderr("WARNING", milliseconds(5000)));
}

TEST_CASE("serve and keygen reject unsafe or malformed key files",
          "[curve][integration]") {
  TempDir dir;
  const CurveKeyPair server = KeyGen(dir, "server");
  const CurveKeyPair client = KeyGen(dir, "client");
  const std::string spec = WriteSpec(
      dir.File("spec.toml"),
      SpecText("keys", kBlockFloats, 0.5, {{"w", {kFloats}, "zeros"}}));
  ServeArgs args;
  args.spec = spec;
  args.storage = dir.File("storage");

  SECTION("keygen never overwrites") {
    const std::string before = ReadFileBytes(dir.File("server.key"));
    const RunResult again =
        Run({kShardpsBinary, "keygen", "--out", dir.File("server")});
    CHECK_FALSE(again.status.ok());
    CHECK_THAT(again.err, Contains("already exists"));
    CHECK(ReadFileBytes(dir.File("server.key")) == before);
  }
  SECTION("a secret key others can read") {
    WriteFileBytes(dir.File("authorized"), client.public_key + "\n");
    REQUIRE(::chmod(dir.File("server.key").c_str(), 0644) == 0);
    args.extra = {"--curve-secret-key", dir.File("server.key"),
                  "--authorized-keys", dir.File("authorized")};
    const RunResult r = Run(ServeArgv(args));
    CHECK(r.status.code == 2);
    CHECK_THAT(r.err, Contains("chmod 600"));
  }
  SECTION("an authorized-keys file with a bad line") {
    WriteFileBytes(dir.File("authorized"), client.public_key + "\nnot a key\n");
    args.extra = {"--curve-secret-key", dir.File("server.key"),
                  "--authorized-keys", dir.File("authorized")};
    const RunResult r = Run(ServeArgv(args));
    CHECK(r.status.code == 2);
    CHECK_THAT(r.err, Contains("line 2"));
  }
  SECTION("an empty authorized-keys file") {
    WriteFileBytes(dir.File("authorized"), "# nobody\n");
    args.extra = {"--curve-secret-key", dir.File("server.key"),
                  "--authorized-keys", dir.File("authorized")};
    const RunResult r = Run(ServeArgv(args));
    CHECK(r.status.code == 2);
    CHECK_THAT(r.err, Contains("no client could connect"));
  }
  SECTION("a secret key without authorized keys") {
    args.extra = {"--curve-secret-key", dir.File("server.key")};
    const RunResult r = Run(ServeArgv(args));
    CHECK(r.status.code == 2);
  }
  (void)server;
}

}  // namespace
}  // namespace shardps::testing

namespace shardps::testing {
namespace {

TEST_CASE("launch passes CURVE to its servers and names their key",
          "[curve][integration]") {
  TempDir dir;
  const CurveKeyPair server = KeyGen(dir, "server");
  const CurveKeyPair client = KeyGen(dir, "client");
  KeyGen(dir, "stranger");
  WriteFileBytes(dir.File("authorized"), client.public_key + "\n");
  const std::string spec =
      WriteSpec(dir.File("spec.toml"),
                SpecText("lc", kBlockFloats, 0.5, {{"w", {kFloats}, "zeros"}}));
  const std::string cluster_file = dir.File("cluster.toml");
  auto launch = ChildProcess::Spawn(
      {kShardpsBinary, "launch", "--spec", spec, "--shards", "2",
       "--cluster-file", cluster_file, "--storage", dir.File("storage"),
       "--curve-secret-key", dir.File("server.key"), "--authorized-keys",
       dir.File("authorized")});
  REQUIRE(launch.ok());
  const auto ready = (*launch)->ReadLineContaining("ready", kStartTimeout);
  INFO("launch stderr: " << (*launch)->Stderr());
  REQUIRE(ready.has_value());

  auto info = LoadCluster(cluster_file);
  REQUIRE(info.ok());
  CHECK(info->server_key == server.public_key);

  const RunResult ok =
      Run({kShardpsBinary, "push", "--cluster", cluster_file, "--tensor", "w",
           "--fill", "1", "--curve-key", dir.File("client")});
  INFO(ok.err);
  CHECK(ok.status.ok());
  // No key pair for a CURVE cluster: refused locally, with the fix.
  const RunResult keyless =
      Run({kShardpsBinary, "status", "--cluster", cluster_file});
  CHECK(keyless.status.code == 2);
  CHECK_THAT(keyless.err, Contains("--curve-key"));
  // A key the servers do not know: no answer, so the call times out.
  const RunResult stranger =
      Run({kShardpsBinary, "push", "--cluster", cluster_file, "--tensor", "w",
           "--fill", "100", "--curve-key", dir.File("stranger"), "--timeout-ms",
           "700"});
  CHECK(stranger.status.code == 1);

  auto trainer = Client::Connect(cluster_file, KeyedOptions(client));
  REQUIRE(trainer.ok());
  for (float v : PullAll(**trainer)) REQUIRE(v == -0.5f);  // one push of 1s
  CHECK(WaitForRefusals(**trainer, 2) >= 2);  // the stranger, per shard

  // launch forwards SIGHUP: both shards re-read the authorized keys.
  REQUIRE((*launch)->Signal(SIGHUP));
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  size_t reloads = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string err = (*launch)->Stderr();
    reloads = 0;
    for (size_t at = err.find("SIGHUP: reloaded"); at != std::string::npos;
         at = err.find("SIGHUP: reloaded", at + 1))
      ++reloads;
    if (reloads == 2) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  INFO("launch stderr: " << (*launch)->Stderr());
  CHECK(reloads == 2);
  CHECK((*launch)->Running());
}

}  // namespace
}  // namespace shardps::testing
