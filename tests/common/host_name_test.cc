#include "common/host_name.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

namespace shardps {
namespace {

TEST_CASE("HostName is the kernel's host name", "[host_name]") {
  std::ifstream in("/proc/sys/kernel/hostname");
  std::string want;
  REQUIRE(std::getline(in, want));
  CHECK(HostName() == want);
}

TEST_CASE("HostNameOrdinal takes a StatefulSet pod's trailing ordinal",
          "[host_name]") {
  CHECK(HostNameOrdinal("shardps-0").value() == 0);
  CHECK(HostNameOrdinal("shardps-17").value() == 17);
  CHECK(HostNameOrdinal("my-shard-set-3").value() == 3);
  CHECK(HostNameOrdinal("shardps-2.shardps.ml.svc.cluster.local").value() == 2);
  CHECK(HostNameOrdinal("a-4294967295").value() == 4294967295u);
}

TEST_CASE("HostNameOrdinal refuses a hostname without an ordinal",
          "[host_name]") {
  for (const char* bad : {"shardps", "shardps-", "shardps-x1", "shardps-1a",
                          "shardps--", "", "node7", "shardps-+1"}) {
    INFO(bad);
    Result<uint32_t> r = HostNameOrdinal(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK_THAT(r.status().message(),
               Catch::Matchers::Contains("expected <name>-<number>"));
  }
  Result<uint32_t> big = HostNameOrdinal("shardps-4294967296");
  REQUIRE_FALSE(big.ok());
  CHECK_THAT(big.status().message(), Catch::Matchers::Contains("too large"));
}

}  // namespace
}  // namespace shardps
