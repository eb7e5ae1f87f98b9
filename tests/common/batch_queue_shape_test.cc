// Regression: a batch shape whose 64-bit element count wraps around seemed
// to fit any slot, so Push accepted it and a consumer was handed a shape
// far larger than its slot (and read past it). Found while writing
// fuzz/queue_fuzzer.
#include <catch2/catch.hpp>
#include <chrono>
#include <vector>

#include "common/batch_queue_format.h"
#include "shardps/batch_queue.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

// 2^16 * 2^24 * 2^24 = 2^64: zero in 64-bit arithmetic.
constexpr uint32_t kWrapBatch = 1u << 16;
constexpr uint32_t kWrapDim = 1u << 24;

TEST_CASE("queue slot shape that wraps 64 bits does not fit a slot",
          "[batch_queue]") {
  CHECK(ShapeFitsSlot(2, 3, 4, 1, 2 * 3 * 4 * 4 + 2 * 4));
  CHECK_FALSE(ShapeFitsSlot(2, 3, 4, 1, 2 * 3 * 4 * 4 + 2 * 4 - 1));
  CHECK(ShapeFitsSlot(0, kWrapDim, kWrapDim, 0, 0));
  CHECK_FALSE(ShapeFitsSlot(kWrapBatch, kWrapDim, kWrapDim, 0, 4096));
  CHECK_FALSE(ShapeFitsSlot(UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX,
                            UINT64_MAX));
}

TEST_CASE("queue push of a shape that wraps 64 bits is refused",
          "[batch_queue]") {
  test::TempDir dir;
  auto q = BatchQueue::Create(dir.File("q"), 2, 4096);
  REQUIRE(q.ok());
  const std::vector<float> none(1);
  const Status s =
      (*q)->Push(BatchShape{kWrapBatch, kWrapDim, kWrapDim, 0}, none.data(),
                 none.data(), std::chrono::milliseconds(100));
  CHECK(s.code() == Code::kSizeMismatch);
}

}  // namespace
}  // namespace shardps
