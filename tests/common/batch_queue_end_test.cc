// A finite stream: producers mark their end, and the consumer learns the end
// from Next (kClosed) as soon as the last batch is taken, not from a timeout.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <vector>

#include "common/batch_queue_format.h"
#include "common/posix_file.h"
#include "shardps/batch_queue.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using test::TempDir;

constexpr BatchShape kShape{2, 3, 1, 1};

Status PushOne(BatchQueue& q, float value) {
  std::vector<float> f(kShape.feature_floats(), value),
      l(kShape.label_floats(), value);
  return q.Push(kShape, f.data(), l.data(), seconds(5));
}

TEST_CASE("queue ends once every producer marked its end and it is drained",
          "[batch_queue]") {
  TempDir dir;
  auto q = BatchQueue::Create(dir.File("q"), 4, 4096, /*producers=*/2);
  REQUIRE(q.ok());
  auto a = BatchQueue::Open(dir.File("q"));
  auto b = BatchQueue::Open(dir.File("q"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK((*a)->producers() == 2);
  REQUIRE(PushOne(**a, 1).ok());
  REQUIRE((*a)->MarkEnd().ok());
  // One producer's end does not end the others' stream.
  CHECK_FALSE((*q)->closed());
  REQUIRE(PushOne(**b, 2).ok());
  REQUIRE(PushOne(**b, 3).ok());
  REQUIRE((*b)->MarkEnd().ok());
  CHECK((*q)->closed());
  CHECK(PushOne(**b, 4).code() == Code::kClosed);  // the stream is over
  // Every batch committed before the last mark is still handed out...
  for (float want : {1.0f, 2.0f, 3.0f}) {
    auto batch = (*q)->Next(seconds(5));
    REQUIRE(batch.ok());
    CHECK(batch->features()[0] == want);
    (*q)->Release(*batch);
  }
  // ...and then the end, at once, whatever the timeout.
  auto end = (*q)->Next(seconds(3600));
  CHECK(end.status().code() == Code::kClosed);
  CHECK_THAT(end.status().message(),
             Catch::Matchers::Contains("all 2 producer(s) ended"));
  const QueueStats s = (*q)->Stats();
  CHECK(s.producers == 2);
  CHECK(s.ended_producers == 2);
  // A third mark is a bug in the caller, said so; it changes nothing.
  CHECK((*a)->MarkEnd().code() == Code::kInvalidArgument);
  CHECK((*q)->Stats().ended_producers == 2);
}

TEST_CASE("queue with one of two producers ended still waits for the other",
          "[batch_queue]") {
  TempDir dir;
  auto q = BatchQueue::Create(dir.File("q"), 4, 4096, /*producers=*/2);
  REQUIRE(q.ok());
  REQUIRE(PushOne(**q, 1).ok());
  REQUIRE((*q)->MarkEnd().ok());
  auto batch = (*q)->Next(seconds(5));
  REQUIRE(batch.ok());
  (*q)->Release(*batch);
  CHECK((*q)->Next(milliseconds(30)).status().code() == Code::kTimeout);
}

TEST_CASE("queue created without a producer count refuses end marks",
          "[batch_queue]") {
  TempDir dir;
  auto q = BatchQueue::Create(dir.File("q"), 4, 4096);
  REQUIRE(q.ok());
  CHECK((*q)->producers() == 0);
  const Status s = (*q)->MarkEnd();
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Matchers::Contains("--producers"));
  CHECK_FALSE((*q)->closed());
}

TEST_CASE("queue of format version 1 is refused with what to do",
          "[batch_queue]") {
  TempDir dir;
  {
    auto q = BatchQueue::Create(dir.File("q"), 2, 4096);
    REQUIRE(q.ok());
  }
  // Rewrite the version and the checksum as an old build would have them.
  auto image = ReadFileToString(dir.File("q"));
  REQUIRE(image.ok());
  const uint32_t old_version = 1;
  std::memcpy(image->data() + offsetof(QueueHeader, format_version),
              &old_version, sizeof(old_version));
  REQUIRE_FALSE(ValidateQueueImage(image->data(), image->size()).ok());
  CHECK_THAT(ValidateQueueImage(image->data(), image->size()).message(),
             Catch::Matchers::Contains("create the queue again"));
}

}  // namespace
}  // namespace shardps
