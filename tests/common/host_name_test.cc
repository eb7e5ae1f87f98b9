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

}  // namespace
}  // namespace shardps
