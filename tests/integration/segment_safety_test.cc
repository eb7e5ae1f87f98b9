// A segment is never served twice, never served from the wrong spec and
// never overwritten when it is refused.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/segment.h"
#include "shardps/client.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::seconds;

constexpr uint64_t kBlockFloats = 1024;

std::string SpecWithShape(uint64_t floats) {
  return SpecText("safety", kBlockFloats, 0.5,
                  {{"w", {floats}, "constant:3"}, {"b", {7}, "zeros"}});
}

// A server of shard 0 of 1 for `spec` with segments under `storage`.
ServeArgs Shard0(const std::string& spec, const std::string& storage) {
  ServeArgs args;
  args.spec = spec;
  args.storage = storage;
  return args;
}

ServerProcess RequireStarted(const ServeArgs& args) {
  auto server = StartServer(args);
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  return std::move(server).value();
}

void RequireStopsCleanly(ServerProcess& server) {
  REQUIRE(server.process->Signal(SIGTERM));
  const auto exit = server.process->Wait(kExitTimeout);
  INFO(server.process->Stderr());
  REQUIRE(exit.has_value());
  REQUIRE(exit->ok());
}

// Runs `shardps serve` to completion; the callers expect it to refuse.
RunResult Serve(const ServeArgs& args) { return Run(ServeArgv(args)); }

TEST_CASE("second server on the same shard exits with in use",
          "[integration]") {
  TempDir dir;
  const std::string spec =
      WriteSpec(dir.File("spec.toml"), SpecWithShape(3000));
  const ServeArgs args = Shard0(spec, dir.File("storage"));
  ServerProcess first = RequireStarted(args);

  const RunResult second = Serve(args);
  INFO(second.err);
  CHECK(second.status.exited);
  CHECK(second.status.code != 0);
  CHECK(second.err.find("in use") != std::string::npos);
  CHECK(second.out.find("listening on") == std::string::npos);

  // The first server never noticed: still running and answering.
  REQUIRE(first.process->Running());
  ClusterInfo cluster;
  cluster.shards.push_back({0, first.endpoint, ""});
  auto client = Client::Connect(cluster);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  std::vector<float> w(3000);
  REQUIRE((*client)->Pull("w", w.data(), w.size()).Wait().ok());
  CHECK(w[0] == 3.0f);
  CHECK(w[2999] == 3.0f);
}

TEST_CASE(
    "server refuses a segment made from another spec and leaves it "
    "unchanged",
    "[integration]") {
  TempDir dir;
  const std::string storage = dir.File("storage");
  const std::string spec_a = WriteSpec(dir.File("a.toml"), SpecWithShape(3000));
  // Same model name, storage and block size; one tensor has another shape.
  const std::string spec_b = WriteSpec(dir.File("b.toml"), SpecWithShape(3001));
  const std::string segment = Segment::PathFor(storage, "safety", 0, 1);

  ServerProcess a = RequireStarted(Shard0(spec_a, storage));
  SECTION("after a clean shutdown") { RequireStopsCleanly(a); }
  SECTION("after a crash") {
    // A crashed owner leaves its pid and an unclean flag in the header:
    // state a refusing server must not "tidy up" either.
    REQUIRE(a.process->Signal(SIGKILL));
    REQUIRE(a.process->Wait(kExitTimeout).has_value());
  }
  const std::string before = ReadFileBytes(segment);

  const RunResult refused = Serve(Shard0(spec_b, storage));
  INFO(refused.err);
  CHECK(refused.status.exited);
  CHECK(refused.status.code == 2);
  CHECK(refused.err.find("spec mismatch") != std::string::npos);
  CHECK(refused.out.find("listening on") == std::string::npos);
  CHECK(ReadFileBytes(segment) == before);

  // The rightful spec still opens it, weights intact.
  ServerProcess again = RequireStarted(Shard0(spec_a, storage));
  ClusterInfo cluster;
  cluster.shards.push_back({0, again.endpoint, ""});
  auto client = Client::Connect(cluster);
  REQUIRE(client.ok());
  std::vector<float> w(3000);
  REQUIRE((*client)->Pull("w", w.data(), w.size()).Wait().ok());
  CHECK(w[1234] == 3.0f);
}

TEST_CASE(
    "server refuses a corrupt or truncated segment and leaves it "
    "unchanged",
    "[integration]") {
  TempDir dir;
  const std::string storage = dir.File("storage");
  const std::string spec =
      WriteSpec(dir.File("spec.toml"), SpecWithShape(3000));
  const std::string segment = Segment::PathFor(storage, "safety", 0, 1);
  {
    ServerProcess creator = RequireStarted(Shard0(spec, storage));
    RequireStopsCleanly(creator);
  }
  const std::string good = ReadFileBytes(segment);
  REQUIRE(good.size() > 8192);

  std::string damaged = good;
  std::string expect_message;
  SECTION("a flipped byte in the header's model name") {
    damaged[20] = static_cast<char>(damaged[20] ^ 0x40);
    expect_message = "checksum";
  }
  SECTION("a flipped byte in the tensor directory") {
    damaged[4096 + 3] = static_cast<char>(damaged[4096 + 3] ^ 0x01);
    expect_message = "checksum";
  }
  SECTION("the last page cut off") {
    damaged.resize(good.size() - 4096);
    expect_message = "truncated";
  }
  SECTION("cut inside the header") {
    damaged.resize(100);
    expect_message = "too small";
  }
  WriteFileBytes(segment, damaged);

  const RunResult refused = Serve(Shard0(spec, storage));
  INFO(refused.err);
  CHECK(refused.status.exited);
  CHECK(refused.status.code == 2);
  CHECK(refused.err.find("corrupt") != std::string::npos);
  CHECK(refused.err.find(expect_message) != std::string::npos);
  CHECK(refused.out.find("listening on") == std::string::npos);
  CHECK(ReadFileBytes(segment) == damaged);
}

}  // namespace
}  // namespace shardps::testing
