// `shardps feed` as separate producer processes: the stream's end reaches
// the consumer as kClosed (not as a timeout) once every producer has marked
// its end, one producer's end does not cut off another, and the metadata
// feed records parses with ParseStreamMeta.
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "shardps/batch_queue.h"
#include "shardps/windowing.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A one-column CSV of `rows` values first, first + 1, ...
std::string WriteSeries(const TempDir& dir, const std::string& name, int first,
                        int rows) {
  const std::string path = dir.File(name);
  std::ofstream out(path);
  out << "value\n";
  for (int i = 0; i < rows; ++i) out << first + i << "\n";
  return path;
}

std::unique_ptr<ChildProcess> StartFeed(const std::string& queue,
                                        const std::string& csv,
                                        std::vector<std::string> extra) {
  std::vector<std::string> argv = {SHARDPS_BINARY, "feed", "--queue",     queue,
                                   "--window",     "3",    "--horizon",   "1",
                                   "--batch",      "4",    "--end-at-eof"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(csv);
  auto child = ChildProcess::Spawn(argv);
  REQUIRE(child.ok());
  return std::move(child).value();
}

// Takes batches until Next fails; returns the windows taken and the status
// that ended the loop.
Status Drain(BatchQueue& q, uint64_t* batches, uint64_t* windows,
             milliseconds timeout) {
  for (;;) {
    auto b = q.Next(timeout);
    if (!b.ok()) return b.status();
    ++*batches;
    *windows += b->shape().batch;
    q.Release(*b);
  }
}

TEST_CASE("feed --end-at-eof ends the stream once every producer ended",
          "[integration][feed]") {
  TempDir dir;
  const std::string queue = dir.File("q");
  RunResult created = Run({SHARDPS_BINARY, "queue", "create", queue, "--slots",
                           "4", "--slot-bytes", "4096", "--producers", "2"});
  INFO(created.out << created.err);
  REQUIRE(created.status.ok());
  auto q = BatchQueue::Open(queue);
  REQUIRE(q.ok());

  // 23 rows: 20 windows of 3 (+1 label row), 5 full batches.
  auto first = StartFeed(queue, WriteSeries(dir, "a.csv", 0, 23), {});
  uint64_t batches = 0, windows = 0;
  // Five batches for four slots: this feed waits for the consumer too.
  while (windows < 20) {
    auto b = (*q)->Next(seconds(30));
    INFO(b.status().ToString());
    REQUIRE(b.ok());
    ++batches;
    windows += b->shape().batch;
    (*q)->Release(*b);
  }
  auto exit = first->Wait(seconds(30));
  REQUIRE(exit.has_value());
  INFO(first->Stderr());
  CHECK(exit->ok());
  CHECK(Contains(first->ReadRemainingStdout(seconds(5)), "end marked"));
  // The other producer has not ended: the stream goes on.
  CHECK((*q)->Next(milliseconds(100)).status().code() == Code::kTimeout);
  CHECK_FALSE((*q)->closed());

  // 26 rows: 23 windows, 5 full batches and a short one of 3, dropped.
  auto second =
      StartFeed(queue, WriteSeries(dir, "b.csv", 100, 26), {"--drop-last"});
  // A timeout far beyond the test's own: only the end mark can stop this.
  const Status end = Drain(**q, &batches, &windows, seconds(3600));
  INFO(end.ToString());
  CHECK(end.code() == Code::kClosed);
  CHECK(batches == 10);
  CHECK(windows == 40);
  exit = second->Wait(seconds(30));
  REQUIRE(exit.has_value());
  CHECK(exit->ok());
  CHECK(Contains(second->ReadRemainingStdout(seconds(5)),
                 "dropped the last 3 window(s)"));

  // The metadata the first feed recorded, read through the one parser.
  auto meta = ParseStreamMeta((*q)->Meta());
  INFO((*q)->Meta());
  REQUIRE(meta.ok());
  CHECK(meta->target == 0);
  CHECK(meta->window == 3);
  CHECK(meta->horizon == 1);
  REQUIRE(meta->normalizer.columns() == 1);
  CHECK(meta->normalizer.mean(0) == Approx(11));  // rows 0..22
}

TEST_CASE("feed --end-at-eof on a queue without a producer count fails first",
          "[integration][feed]") {
  TempDir dir;
  const std::string queue = dir.File("q");
  auto q = BatchQueue::Create(queue, 4, 4096);
  REQUIRE(q.ok());
  RunResult r = Run({SHARDPS_BINARY, "feed", "--queue", queue, "--window", "3",
                     "--end-at-eof", WriteSeries(dir, "a.csv", 0, 10)});
  CHECK(r.status.exited);
  CHECK(r.status.code == 2);
  CHECK(Contains(r.err, "--producers"));
  CHECK((*q)->Stats().produced == 0);  // refused before feeding anything
}

}  // namespace
}  // namespace shardps::testing
