// ZapHandler's authorized set: replacement is all or nothing, and a key
// removed after its connection was admitted is refused and counted. The
// handshakes themselves are tested with real servers in
// tests/integration/curve_test.cc.
#include "server/zap_handler.h"

#include <zmq.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <zmq.hpp>

namespace shardps {
namespace {

std::string NewPublicKey() {
  char public_key[41], secret_key[41];
  REQUIRE(zmq_curve_keypair(public_key, secret_key) == 0);
  return public_key;
}

TEST_CASE("zap handler replaces its keys all or nothing", "[zap]") {
  const std::string a = NewPublicKey(), b = NewPublicKey();
  zmq::context_t context;
  auto zap = ZapHandler::Start(context, {a});
  REQUIRE(zap.ok());
  ZapHandler& h = **zap;
  CHECK(h.generation() == 0);
  CHECK(h.StillAuthorized(a.c_str(), "127.0.0.1"));
  CHECK(h.refusals() == 0);

  REQUIRE(h.SetAuthorizedKeys({b}).ok());
  CHECK(h.generation() == 1);
  CHECK(h.StillAuthorized(b.c_str(), "127.0.0.1"));
  CHECK_FALSE(h.StillAuthorized(a.c_str(), "127.0.0.1"));
  CHECK(h.refusals() == 1);

  // One bad key, or none at all: refused, and b stays the only key.
  const Status bad = h.SetAuthorizedKeys({a, "not a key"});
  CHECK(bad.code() == Code::kInvalidArgument);
  CHECK_THAT(bad.message(), Catch::Matchers::Contains("not a key"));
  CHECK(h.SetAuthorizedKeys({}).code() == Code::kInvalidArgument);
  CHECK(h.generation() == 1);
  CHECK(h.StillAuthorized(b.c_str(), ""));
  CHECK_FALSE(h.StillAuthorized(a.c_str(), ""));

  // A connection with no key property, or a mangled one, is not let through.
  CHECK_FALSE(h.StillAuthorized("", ""));
  CHECK_FALSE(h.StillAuthorized(b.substr(0, 39).c_str(), ""));
  CHECK(h.refusals() == 4);
  h.Stop();
}

TEST_CASE("zap handler keys may be replaced while requests are checked",
          "[zap][concurrency]") {
  const std::string a = NewPublicKey(), b = NewPublicKey();
  zmq::context_t context;
  auto zap = ZapHandler::Start(context, {a, b});
  REQUIRE(zap.ok());
  ZapHandler& h = **zap;
  std::atomic<bool> done{false};
  std::atomic<int> failed_sets{0};  // Catch2 asserts on this thread only
  // b is in every set the writer installs, so it must never be refused.
  std::atomic<bool> reading{false};
  std::thread writer([&] {
    while (!reading) std::this_thread::yield();  // overlap the two loops
    for (int i = 0; i < 2000; ++i)
      if (!h.SetAuthorizedKeys(i % 2 ? std::vector<std::string>{b}
                                     : std::vector<std::string>{a, b})
               .ok())
        ++failed_sets;
    done = true;
  });
  uint64_t checks = 0, b_refused = 0;
  reading = true;
  while (!done) {
    if (!h.StillAuthorized(b.c_str(), "")) ++b_refused;
    ++checks;
  }
  writer.join();
  CHECK(failed_sets == 0);
  CHECK(checks > 0);
  CHECK(b_refused == 0);
  CHECK(h.generation() == 2000);
}

}  // namespace
}  // namespace shardps
