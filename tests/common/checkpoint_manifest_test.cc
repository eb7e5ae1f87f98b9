// ParseCheckpointManifest: the MANIFEST a restore reads from a directory
// that may be damaged or not a checkpoint at all.
#include <catch2/catch.hpp>
#include <string>

#include "common/checkpoint.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

const std::string kHead =
    "format = 1\nmodel = m\nspec_hash = 0x00000000deadbeef\nshards = 1\n";
const std::string kShard0 =
    "shard.0.file = shard-0-of-1.ckpt\nshard.0.bytes = 8192\n"
    "shard.0.crc32c = 0a0b0c0d\nshard.0.updates_applied = 5\n"
    "shard.0.applied_clock = 2\nshard.0.worker_clocks = 3,-1,0\n";

void RequireCorrupt(const std::string& text, const std::string& says) {
  auto m = ParseCheckpointManifest(text);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == Code::kCorrupt);
  CHECK_THAT(m.status().message(), Contains(says));
}

TEST_CASE("checkpoint manifest parses what WriteCheckpoint writes",
          "[checkpoint]") {
  auto m = ParseCheckpointManifest(kHead + kShard0);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  CHECK(m->model == "m");
  CHECK(m->spec_hash == 0xdeadbeef);
  REQUIRE(m->shards.size() == 1);
  const CheckpointShard& s = m->shards[0];
  CHECK(s.file == "shard-0-of-1.ckpt");
  CHECK(s.bytes == 8192);
  CHECK(s.crc == 0x0a0b0c0d);
  CHECK(s.updates_applied == 5);
  CHECK(s.applied_clock == 2);
  CHECK(s.clocks == std::vector<int64_t>{3, -1, 0});
  CHECK(s.segment_identity.empty());  // older manifests have none
}

TEST_CASE("checkpoint manifest records the source segment's identity",
          "[checkpoint]") {
  auto m = ParseCheckpointManifest(
      kHead + kShard0 +
      "shard.0.segment_identity = 00112233445566778899aabbccddeeff\n");
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  const SegmentId id = m->shards[0].segment_identity;
  CHECK(id.hi == 0x0011223344556677ull);
  CHECK(id.lo == 0x8899aabbccddeeffull);
  CHECK(id.ToString() == "00112233445566778899aabbccddeeff");
  RequireCorrupt(kHead + kShard0 + "shard.0.segment_identity = 0011\n",
                 "segment_identity");
  RequireCorrupt(kHead + kShard0 +
                     "shard.0.segment_identity = "
                     "zz112233445566778899aabbccddeeff\n",
                 "not 32 hex digits");
}

// Regression: a MANIFEST without a model line threw std::out_of_range out
// of RestoreCheckpoint (found by fuzz/manifest_fuzzer).
TEST_CASE("checkpoint manifest without a model line is refused as corrupt",
          "[checkpoint]") {
  RequireCorrupt("format = 1\nspec_hash = 0x1\nshards = 1\n" + kShard0,
                 "MANIFEST lacks model");
}

// Regression: worker clocks went through atoll, which took any text as 0.
TEST_CASE("checkpoint manifest refuses worker clocks that are not numbers",
          "[checkpoint]") {
  RequireCorrupt(kHead + kShard0 + "shard.0.worker_clocks = 1,x\n",
                 "bad clock 'x'");
  RequireCorrupt(kHead + kShard0 + "shard.0.worker_clocks = 1,,2\n",
                 "bad clock ''");
  RequireCorrupt(kHead + kShard0 + "shard.0.worker_clocks = 1,\n",
                 "bad clock ''");
  RequireCorrupt(kHead + kShard0 + "shard.0.worker_clocks = -\n",
                 "bad clock '-'");
  std::string many;
  for (int i = 0; i < 65; ++i) many += (i ? ",1" : "1");
  RequireCorrupt(kHead + kShard0 + "shard.0.worker_clocks = " + many + "\n",
                 "more than 64 clocks");
}

TEST_CASE("checkpoint manifest refuses numbers strtoull would bend",
          "[checkpoint]") {
  RequireCorrupt(kHead + kShard0 + "shard.0.bytes = -1\n", "not a number");
  RequireCorrupt(kHead + kShard0 + "shard.0.bytes =  7\n", "not a number");
  RequireCorrupt(kHead + kShard0 + "shard.0.bytes = 99999999999999999999999\n",
                 "not a number");
  RequireCorrupt(kHead + kShard0 + "shard.0.crc32c = 1ffffffff\n",
                 "out of range");
}

// A shard server's own checkpoint (serve --checkpoint-dir) lists only its
// shard of the model's N.
TEST_CASE("checkpoint manifest of one shard of several", "[checkpoint]") {
  std::string one = kShard0;
  for (size_t at; (at = one.find("shard.0.")) != std::string::npos;)
    one.replace(at, 8, "shard.1.");
  auto m = ParseCheckpointManifest(
      "format = 1\nmodel = m\nspec_hash = 0x1\nshards = 2\n" + one);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  CHECK(m->shard_count == 2);
  REQUIRE(m->shards.size() == 1);
  CHECK(m->shards[0].index == 1);
  CHECK(m->shards[0].file == "shard-1-of-2.ckpt");
}

TEST_CASE("checkpoint manifest refuses bad structure with the reason",
          "[checkpoint]") {
  RequireCorrupt("format = 2\n", "checkpoint format 2");
  RequireCorrupt(kHead + "no equals sign\n", "line 5");
  RequireCorrupt(kHead, "MANIFEST lists no shard");
  RequireCorrupt(kHead + "shard.0.file = shard-0-of-1.ckpt\n",
                 "MANIFEST lacks shard.0.bytes");
  RequireCorrupt("format = 1\nmodel = m\nspec_hash = 1\nshards = 0\n",
                 "want 1..4096");
  RequireCorrupt("format = 1\nmodel = m\nspec_hash = 1\nshards = 4097\n",
                 "want 1..4096");
}

}  // namespace
}  // namespace shardps
