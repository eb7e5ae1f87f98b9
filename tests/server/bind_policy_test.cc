#include "server/bind_policy.h"

#include <catch2/catch.hpp>

namespace shardps {
namespace {

TEST_CASE("bind policy treats loopback and local IPC as private",
          "[bind_policy]") {
  CHECK(IsLoopbackEndpoint("tcp://127.0.0.1:*"));
  CHECK(IsLoopbackEndpoint("tcp://127.1.2.3:5555"));
  CHECK(IsLoopbackEndpoint("tcp://localhost:5555"));
  CHECK(IsLoopbackEndpoint("tcp://[::1]:5555"));
  CHECK(IsLoopbackEndpoint("ipc:///tmp/s0"));
  CHECK(IsLoopbackEndpoint("inproc://s0"));
  CHECK_FALSE(IsLoopbackEndpoint("tcp://0.0.0.0:5555"));
  CHECK_FALSE(IsLoopbackEndpoint("tcp://*:5555"));
  CHECK_FALSE(IsLoopbackEndpoint("tcp://10.0.0.7:5555"));
  CHECK_FALSE(IsLoopbackEndpoint("tcp://eth0:5555"));
  CHECK_FALSE(IsLoopbackEndpoint("tcp://127.evil.example:5555"));
  CHECK_FALSE(IsLoopbackEndpoint("tcp://[::]:5555"));
}

TEST_CASE("bind policy refuses a public bind without CURVE unless insecure",
          "[bind_policy]") {
  const Status refused = CheckBindPolicy("tcp://0.0.0.0:*", false, false);
  CHECK(refused.code() == Code::kInvalidArgument);
  CHECK_THAT(refused.message(),
             Catch::Matchers::Contains("--curve-secret-key"));
  CHECK(CheckBindPolicy("tcp://0.0.0.0:*", true, false).ok());
  CHECK(CheckBindPolicy("tcp://0.0.0.0:*", false, true).ok());
  CHECK(CheckBindPolicy("tcp://127.0.0.1:*", false, false).ok());
  // Regression: inproc:// was accepted, though no client can connect to it.
  const Status inproc = CheckBindPolicy("inproc://s0", true, false);
  CHECK(inproc.code() == Code::kInvalidArgument);
  CHECK(inproc.message().find("no client could connect") != std::string::npos);
}

}  // namespace
}  // namespace shardps
