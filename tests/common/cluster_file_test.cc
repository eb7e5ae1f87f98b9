#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>

#include "shardps/cluster.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using test::TempDir;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void CheckEqual(const ClusterInfo& a, const ClusterInfo& b) {
  CHECK(a.model == b.model);
  CHECK(a.spec_hash == b.spec_hash);
  CHECK(a.server_key == b.server_key);
  REQUIRE(a.shards.size() == b.shards.size());
  for (size_t i = 0; i < a.shards.size(); ++i) {
    INFO("shard " << i);
    CHECK(a.shards[i].index == b.shards[i].index);
    CHECK(a.shards[i].endpoint == b.shards[i].endpoint);
    CHECK(a.shards[i].segment == b.shards[i].segment);
  }
}

ClusterInfo TwoShards() {
  ClusterInfo cluster;
  cluster.model = "demo";
  cluster.spec_hash = 0x1234abcd5678ef00ULL;
  cluster.shards = {
      {0, "tcp://127.0.0.1:40123", "/dev/shm/shardps/demo/shard-0-of-2.seg"},
      {1, "tcp://10.0.0.2:40124", ""},
  };
  return cluster;
}

// Parses `text`, which must fail, and returns the error.
Status ParseError(const std::string& text) {
  Result<ClusterInfo> result = ParseCluster(text);
  REQUIRE_FALSE(result.ok());
  return result.status();
}

void CheckInvalid(const std::string& text, const std::string& message) {
  INFO(text);
  const Status status = ParseError(text);
  CHECK(status.code() == Code::kInvalidArgument);
  CHECK(status.message() == message);
}

const char kModelLine[] = "model = \"demo\"\n";
const char kShard0[] = "[[shard]]\nindex = 0\nendpoint = \"tcp://h:1\"\n";

}  // namespace

TEST_CASE("cluster file round-trips through ToToml and ParseCluster",
          "[cluster]") {
  const ClusterInfo cluster = TwoShards();
  Result<ClusterInfo> parsed = ParseCluster(cluster.ToToml());
  REQUIRE(parsed.ok());
  CheckEqual(*parsed, cluster);
}

TEST_CASE("cluster file round-trips without a spec hash or segments",
          "[cluster]") {
  ClusterInfo cluster;
  cluster.model = "m";
  cluster.shards = {{0, "ipc:///tmp/s0", ""}, {1, "tcp://h1:5555", ""}};
  Result<ClusterInfo> parsed = ParseCluster(cluster.ToToml());
  REQUIRE(parsed.ok());
  CheckEqual(*parsed, cluster);
}

TEST_CASE("cluster file round-trips the servers' CURVE key", "[cluster]") {
  ClusterInfo cluster = TwoShards();
  // Z85 uses '#', '$' and '"'-free punctuation; all must survive TOML.
  cluster.server_key = "k0I:zvR$8<o4pdosFdSp/&hjde2o@Dyza+:7+t[F";
  Result<ClusterInfo> parsed = ParseCluster(cluster.ToToml());
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  CheckEqual(*parsed, cluster);
}

TEST_CASE("cluster file rejects a server_key that is not a Z85 key",
          "[cluster]") {
  Result<ClusterInfo> parsed = ParseCluster(
      "model = \"m\"\nserver_key = \"short\"\n[[shard]]\nindex = 0\n"
      "endpoint = \"tcp://127.0.0.1:1\"\n");
  CHECK(parsed.status().code() == Code::kInvalidArgument);
  CHECK_THAT(parsed.status().message(), Contains("server_key"));
}

TEST_CASE("cluster file round-trips strings that need escaping", "[cluster]") {
  ClusterInfo cluster;
  cluster.model = "we\"ird\\name\twith\nnewline\x01 and caf\xc3\xa9";
  cluster.spec_hash = 0;
  cluster.shards = {{0, "ipc:///tmp/a \"b\"", "/tmp/seg\\x\x7f.seg"}};
  Result<ClusterInfo> parsed = ParseCluster(cluster.ToToml());
  REQUIRE(parsed.ok());
  CheckEqual(*parsed, cluster);
}

TEST_CASE("cluster file writes spec_hash as 0x plus 16 lowercase hex digits",
          "[cluster]") {
  ClusterInfo cluster = TwoShards();
  cluster.spec_hash = 0xABCULL;
  CHECK(cluster.ToToml().find("spec_hash = \"0x0000000000000abc\"\n") !=
        std::string::npos);
  cluster.spec_hash = ~0ULL;
  Result<ClusterInfo> parsed = ParseCluster(cluster.ToToml());
  REQUIRE(parsed.ok());
  CHECK(parsed->spec_hash == ~0ULL);
}

TEST_CASE("cluster file parser sorts shards listed in any order", "[cluster]") {
  Result<ClusterInfo> parsed = ParseCluster(
      "model = \"demo\"\n"
      "spec_hash = \"0x1234abcd5678ef00\"\n"
      "[[shard]]\nindex = 2\nendpoint = \"tcp://c:3\"\n"
      "[[shard]]\nindex = 0\nendpoint = \"tcp://a:1\"\nsegment = \"/s0\"\n"
      "[[shard]]\nindex = 1\nendpoint = \"tcp://b:2\"\n");
  REQUIRE(parsed.ok());
  CHECK(parsed->model == "demo");
  CHECK(parsed->spec_hash == 0x1234abcd5678ef00ULL);
  REQUIRE(parsed->shards.size() == 3);
  CHECK(parsed->shards[0].endpoint == "tcp://a:1");
  CHECK(parsed->shards[0].segment == "/s0");
  CHECK(parsed->shards[1].endpoint == "tcp://b:2");
  CHECK(parsed->shards[1].segment.empty());
  CHECK(parsed->shards[2].endpoint == "tcp://c:3");
  for (uint32_t i = 0; i < 3; ++i) CHECK(parsed->shards[i].index == i);
}

TEST_CASE("cluster file parser accepts a short or upper-case spec hash",
          "[cluster]") {
  Result<ClusterInfo> parsed = ParseCluster(
      std::string(kModelLine) + "spec_hash = \"0xAbC\"\n" + kShard0);
  REQUIRE(parsed.ok());
  CHECK(parsed->spec_hash == 0xabcULL);
}

TEST_CASE("cluster file parser reports a missing model", "[cluster]") {
  CheckInvalid(kShard0, "model: missing");
}

TEST_CASE("cluster file parser reports a model of the wrong type",
          "[cluster]") {
  CheckInvalid(std::string("model = 3\n") + kShard0, "model: must be a string");
  CheckInvalid(std::string("model = \"\"\n") + kShard0,
               "model: must not be empty");
}

TEST_CASE("cluster file parser reports unknown keys", "[cluster]") {
  CheckInvalid(std::string(kModelLine) + "modle = \"x\"\n" + kShard0,
               "modle: unknown key");
  CheckInvalid(std::string(kModelLine) + kShard0 + "port = 5\n",
               "shard[0].port: unknown key");
}

TEST_CASE("cluster file parser reports missing shards", "[cluster]") {
  CheckInvalid(kModelLine, "shard: missing (need [[shard]])");
  CheckInvalid(std::string(kModelLine) + "shard = []\n",
               "shard: need at least one shard");
  CheckInvalid(std::string(kModelLine) + "shard = 1\n",
               "shard: must be an array of tables");
  CheckInvalid(std::string(kModelLine) + "shard = [1]\n",
               "shard[0]: must be a table ([[shard]])");
}

TEST_CASE("cluster file parser reports a missing endpoint", "[cluster]") {
  CheckInvalid(std::string(kModelLine) + kShard0 + "[[shard]]\nindex = 1\n",
               "shard[1].endpoint: missing");
}

// Regression: inproc:// endpoints were accepted, yet they connect only
// sockets of one ZeroMQ context and a client never shares the server's, so
// such a cluster could only time out.
TEST_CASE("cluster file parser refuses inproc endpoints, naming the schemes",
          "[cluster]") {
  Result<ClusterInfo> parsed =
      ParseCluster(std::string(kModelLine) +
                   "[[shard]]\nindex = 0\nendpoint = \"inproc://s0\"\n");
  CHECK(parsed.status().code() == Code::kInvalidArgument);
  CHECK_THAT(parsed.status().message(), StartsWith("shard[0].endpoint: "));
  CHECK_THAT(parsed.status().message(), Contains("tcp://host:port"));
  CHECK_THAT(parsed.status().message(), Contains("ipc://path"));
  CHECK_THAT(parsed.status().message(), Contains("'inproc://s0'"));

  CHECK(CheckShardEndpoint("inproc://s0").code() == Code::kInvalidArgument);
  CHECK(CheckShardEndpoint("tcp://127.0.0.1:1").ok());
  CHECK(CheckShardEndpoint("ipc:///tmp/s0").ok());
}

TEST_CASE("cluster file saver refuses an inproc endpoint and keeps the file",
          "[cluster]") {
  TempDir dir;
  const std::string path = dir.File("cluster.toml");
  REQUIRE(SaveCluster(TwoShards(), path).ok());
  const std::string before = ReadText(path);

  ClusterInfo bad = TwoShards();
  bad.shards[1].endpoint = "inproc://s1";
  const Status status = SaveCluster(bad, path);
  CHECK(status.code() == Code::kInvalidArgument);
  CHECK_THAT(status.message(), Contains("shard[1].endpoint: inproc://"));
  CHECK(ReadText(path) == before);
}

TEST_CASE("cluster file parser reports a bad endpoint", "[cluster]") {
  CheckInvalid(std::string(kModelLine) +
                   "[[shard]]\nindex = 0\nendpoint = \"http://h:1\"\n",
               "shard[0].endpoint: must start with tcp:// or ipc:// (got "
               "'http://h:1')");
  CheckInvalid(
      std::string(kModelLine) + "[[shard]]\nindex = 0\nendpoint = \"tcp://\"\n",
      "shard[0].endpoint: no address after tcp://");
  CheckInvalid(std::string(kModelLine) + "[[shard]]\nindex = 0\nendpoint = 7\n",
               "shard[0].endpoint: must be a string");
}

TEST_CASE("cluster file parser reports a bad segment", "[cluster]") {
  CheckInvalid(std::string(kModelLine) + kShard0 + "segment = false\n",
               "shard[0].segment: must be a string");
}

TEST_CASE("cluster file parser reports a missing or bad shard index",
          "[cluster]") {
  CheckInvalid(
      std::string(kModelLine) + "[[shard]]\nendpoint = \"tcp://h:1\"\n",
      "shard[0].index: missing");
  CheckInvalid(std::string(kModelLine) +
                   "[[shard]]\nindex = \"0\"\nendpoint = \"tcp://h:1\"\n",
               "shard[0].index: must be an integer");
  CheckInvalid(std::string(kModelLine) +
                   "[[shard]]\nindex = -1\nendpoint = \"tcp://h:1\"\n",
               "shard[0].index: must be in 0..4294967295 (got -1)");
  CheckInvalid(std::string(kModelLine) +
                   "[[shard]]\nindex = 4294967296\nendpoint = \"tcp://h:1\"\n",
               "shard[0].index: must be in 0..4294967295 (got 4294967296)");
}

TEST_CASE("cluster file parser reports a duplicate shard index", "[cluster]") {
  CheckInvalid(std::string(kModelLine) + kShard0 +
                   "[[shard]]\nindex = 1\nendpoint = \"tcp://h:2\"\n"
                   "[[shard]]\nindex = 0\nendpoint = \"tcp://h:3\"\n",
               "shard[2].index: duplicate index 0");
}

TEST_CASE("cluster file parser reports a gap in shard indices", "[cluster]") {
  CheckInvalid(std::string(kModelLine) + kShard0 +
                   "[[shard]]\nindex = 2\nendpoint = \"tcp://h:2\"\n"
                   "[[shard]]\nindex = 3\nendpoint = \"tcp://h:3\"\n",
               "shard: indices must be 0..2, missing 1");
}

TEST_CASE("cluster file parser reports a bad spec hash", "[cluster]") {
  const std::string want = "spec_hash: must be a string \"0x\" + 16 hex digits";
  CheckInvalid(std::string(kModelLine) + "spec_hash = 12\n" + kShard0, want);
  CheckInvalid(std::string(kModelLine) + "spec_hash = \"1234\"\n" + kShard0,
               want + " (got '1234')");
  CheckInvalid(std::string(kModelLine) + "spec_hash = \"0x\"\n" + kShard0,
               want + " (got '0x')");
  CheckInvalid(std::string(kModelLine) + "spec_hash = \"0xfg\"\n" + kShard0,
               want + " (got '0xfg')");
  CheckInvalid(std::string(kModelLine) +
                   "spec_hash = \"0x00000000000000001\"\n" + kShard0,
               want + " (got '0x00000000000000001')");
}

TEST_CASE("cluster file parser reports TOML syntax errors with line:column",
          "[cluster]") {
  const Status status = ParseError("model = \"demo\"\nindex = = 3\n");
  CHECK(status.code() == Code::kInvalidArgument);
  INFO(status.message());
  CHECK(status.message().rfind("2:", 0) == 0);
}

TEST_CASE("cluster file parser expands shards = N with an endpoint_pattern",
          "[cluster]") {
  Result<ClusterInfo> cluster = ParseCluster(
      std::string(kModelLine) +
      "shards = 3\nendpoint_pattern = \"tcp://shardps-{i}.shardps:700{i}\"\n");
  REQUIRE(cluster.ok());
  CHECK(cluster->model == "demo");
  REQUIRE(cluster->shards.size() == 3);
  for (uint32_t i = 0; i < 3; ++i) {
    INFO("shard " << i);
    CHECK(cluster->shards[i].index == i);
    CHECK(cluster->shards[i].endpoint == "tcp://shardps-" + std::to_string(i) +
                                             ".shardps:700" +
                                             std::to_string(i));
    CHECK(cluster->shards[i].segment.empty());
  }
  // ToToml writes the expanded tables, which read back the same.
  Result<ClusterInfo> again = ParseCluster(cluster->ToToml());
  REQUIRE(again.ok());
  CheckEqual(*cluster, *again);
}

TEST_CASE("cluster file parser refuses a bad endpoint_pattern form",
          "[cluster]") {
  const std::string pattern =
      "endpoint_pattern = \"tcp://shardps-{i}.shardps:7000\"\n";
  CheckInvalid(std::string(kModelLine) + "shards = 2\n" +
                   "endpoint_pattern = \"tcp://shardps.shardps:7000\"\n",
               "endpoint_pattern: must contain {i} (the shard index), e.g. "
               "\"tcp://shardps-{i}.shardps:7000\" (got "
               "'tcp://shardps.shardps:7000')");
  CheckInvalid(std::string(kModelLine) + "shards = 0\n" + pattern,
               "shards: must be in 1..4096 (got 0)");
  CheckInvalid(std::string(kModelLine) + "shards = 4097\n" + pattern,
               "shards: must be in 1..4096 (got 4097)");
  CheckInvalid(std::string(kModelLine) + "shards = -1\n" + pattern,
               "shards: must be in 1..4096 (got -1)");
  CheckInvalid(std::string(kModelLine) + "shards = \"3\"\n" + pattern,
               "shards: must be an integer");
  CheckInvalid(std::string(kModelLine) + "shards = 2\n" + pattern + kShard0,
               "shard: give either [[shard]] tables or shards = N with "
               "endpoint_pattern, not both");
  CheckInvalid(std::string(kModelLine) + pattern,
               "shards: missing (endpoint_pattern needs shards = N)");
  CheckInvalid(std::string(kModelLine) + "shards = 2\n",
               "endpoint_pattern: missing (shards = N needs an "
               "endpoint_pattern such as \"tcp://shardps-{i}.shardps:7000\")");
  CheckInvalid(std::string(kModelLine) + "shards = 2\n" +
                   "endpoint_pattern = \"shardps-{i}:7000\"\n",
               "endpoint_pattern: must start with tcp:// or ipc:// (got "
               "'shardps-0:7000')");
}

TEST_CASE("cluster file saves and loads through a temp directory",
          "[cluster]") {
  TempDir dir;
  const std::string path = dir.path() + "/cluster.toml";
  const ClusterInfo cluster = TwoShards();
  REQUIRE(SaveCluster(cluster, path).ok());
  CHECK(ReadText(path) == cluster.ToToml());

  Result<ClusterInfo> loaded = LoadCluster(path);
  REQUIRE(loaded.ok());
  CheckEqual(*loaded, cluster);

  // Saving again replaces the file and leaves no temp file behind.
  ClusterInfo changed = cluster;
  changed.model = "other";
  REQUIRE(SaveCluster(changed, path).ok());
  loaded = LoadCluster(path);
  REQUIRE(loaded.ok());
  CHECK(loaded->model == "other");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator(dir.path())) {
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("cluster file loader reports a missing file", "[cluster]") {
  TempDir dir;
  const std::string path = dir.path() + "/absent.toml";
  Result<ClusterInfo> loaded = LoadCluster(path);
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.status().code() == Code::kNotFound);
  CHECK(loaded.status().message().rfind(path +
                                            ": no such file: is "
                                            "`shardps launch` still starting?",
                                        0) == 0);
}

TEST_CASE("cluster file loader says a model spec is not a cluster file",
          "[cluster]") {
  Result<ClusterInfo> parsed = ParseCluster(
      "[model]\nname = \"m\"\n[optimizer]\nkind = \"sgd\"\n"
      "[[tensor]]\nname = \"w\"\nshape = [4]\n");
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == Code::kInvalidArgument);
  CHECK(parsed.status().message().find("this is a model spec") !=
        std::string::npos);
  CHECK(parsed.status().message().find("unknown key") == std::string::npos);
}

TEST_CASE("cluster file loader prefixes parse errors with the path",
          "[cluster]") {
  TempDir dir;
  const std::string path = dir.path() + "/bad.toml";
  WriteText(path, kShard0);
  Result<ClusterInfo> loaded = LoadCluster(path);
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.status().code() == Code::kInvalidArgument);
  CHECK(loaded.status().message() == path + ": model: missing");
}

TEST_CASE("cluster file saver refuses an invalid cluster", "[cluster]") {
  TempDir dir;
  const std::string path = dir.path() + "/cluster.toml";
  REQUIRE(SaveCluster(TwoShards(), path).ok());
  const std::string before = ReadText(path);

  ClusterInfo bad = TwoShards();
  bad.shards[1].index = 0;
  const Status status = SaveCluster(bad, path);
  CHECK(status.code() == Code::kInvalidArgument);
  CHECK(status.message() == path + ": shard[1].index: duplicate index 0");
  CHECK(ReadText(path) == before);
}

TEST_CASE("cluster file saver reports an unwritable path", "[cluster]") {
  TempDir dir;
  const std::string path = dir.path() + "/no/such/dir/cluster.toml";
  const Status status = SaveCluster(TwoShards(), path);
  CHECK(status.code() == Code::kIoError);
  INFO(status.message());
  CHECK(status.message().find(path) != std::string::npos);
  CHECK(status.message().find("No such file or directory") !=
        std::string::npos);
}

}  // namespace shardps
