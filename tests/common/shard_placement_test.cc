#include "common/shard_placement.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace shardps {
namespace {

TEST_CASE("PlaceShard puts shard i on host i % H at port BASE + i / H",
          "[shard_placement]") {
  for (uint32_t i = 0; i < 10; ++i) {
    const ShardPlace p = PlaceShard(i, 3, 7000);
    CHECK(p.host == i % 3);
    CHECK(p.port == 7000 + i / 3);
  }
  CHECK(PlaceShard(0, 1, 5).port == 5);
  CHECK(PlaceShard(4, 1, 5).port == 9);
}

TEST_CASE("PlaceShards writes the endpoints of the layout rule",
          "[shard_placement]") {
  const std::vector<ShardAddress> shards = PlaceShards({"a", "b"}, 5, 7000);
  REQUIRE(shards.size() == 5);
  const std::vector<std::string> want = {"tcp://a:7000", "tcp://b:7000",
                                         "tcp://a:7001", "tcp://b:7001",
                                         "tcp://a:7002"};
  for (uint32_t i = 0; i < 5; ++i) {
    CHECK(shards[i].index == i);
    CHECK(shards[i].endpoint == want[i]);
    CHECK(shards[i].segment.empty());
  }
}

TEST_CASE("CheckShardPorts refuses ports outside 1..65535",
          "[shard_placement]") {
  CHECK(CheckShardPorts(6, 3, 65534, "--port").ok());
  const Status past = CheckShardPorts(7, 3, 65534, "--port");
  CHECK(past.code() == Code::kInvalidArgument);
  CHECK(past.message() ==
        "--port: shards use ports 65534..65536 on each host; they must lie "
        "in 1..65535");
  CHECK_FALSE(CheckShardPorts(1, 1, 0, "--port").ok());
  CHECK_FALSE(CheckShardPorts(1, 1, -5, "--port").ok());
}

}  // namespace
}  // namespace shardps
