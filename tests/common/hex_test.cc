#include "common/hex.h"

#include <catch2/catch.hpp>
#include <cstdint>

namespace shardps {
namespace {

TEST_CASE("Hex shows 64 bits as 0x and 16 lower-case digits", "[hex]") {
  CHECK(Hex(0) == "0x0000000000000000");
  CHECK(Hex(0xDEADBEEF) == "0x00000000deadbeef");
  CHECK(Hex(UINT64_MAX) == "0xffffffffffffffff");
}

}  // namespace
}  // namespace shardps
