// ReadConsistent: the one seqlock read loop. A stable block copies at once,
// a briefly odd one once its writer ends, and a block nobody finishes ends
// in an error at the deadline instead of a hang.
#include "common/seqlock.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

namespace shardps {
namespace {

using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST_CASE("seqlock read copies a stable block at once", "[seqlock]") {
  BlockVersion v{};
  v.seq.store(6);
  const std::vector<float> src(1024, 2.5f);
  std::vector<float> dst(1024, 0.0f);
  uint64_t version = 0;
  const Status s =
      ReadConsistent(v, src.data(), dst.data(), src.size() * sizeof(float),
                     Clock::now() + milliseconds(100), &version);
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(version == 6);
  CHECK(dst == src);
}

TEST_CASE("seqlock read of a block left mid-update fails at the deadline",
          "[seqlock]") {
  BlockVersion v{};
  v.seq.store(7);  // a writer went in and never came out
  const std::vector<float> src(1024, 1.0f);
  std::vector<float> dst(1024);
  uint64_t version = 0;
  const auto start = Clock::now();
  const Status s =
      ReadConsistent(v, src.data(), dst.data(), src.size() * sizeof(float),
                     start + milliseconds(50), &version);
  const auto took = Clock::now() - start;
  CHECK(s.code() == Code::kCorrupt);
  CHECK_THAT(s.message(), Contains("stayed mid-update"));
  CHECK_THAT(s.message(), Contains("version 7"));
  CHECK(took >= milliseconds(50));
  CHECK(took < milliseconds(2000));
}

TEST_CASE("seqlock read waits out a writer that finishes", "[seqlock]") {
  BlockVersion v{};
  v.seq.store(2);
  std::vector<float> src(1024, 1.0f);
  BeginWrite(v);
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(20));
    for (float& f : src) f = 3.0f;
    EndWrite(v);
  });
  std::vector<float> dst(1024);
  uint64_t version = 0;
  const Status s =
      ReadConsistent(v, src.data(), dst.data(), src.size() * sizeof(float),
                     Clock::now() + milliseconds(5000), &version);
  writer.join();
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(version == 4);
  CHECK(dst == std::vector<float>(1024, 3.0f));
}

}  // namespace
}  // namespace shardps
