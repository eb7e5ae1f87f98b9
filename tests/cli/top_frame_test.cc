// `shardps top`'s frame from hand-made samples: the rates between two
// samples, the latency quantile, DOWN shards, restarts and the width.
#include "cli/top_frame.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

namespace shardps::cli {
namespace {

using Catch::Matchers::Contains;

ShardSample Up(uint32_t shard, uint64_t uptime_ms, uint64_t pushes,
               uint64_t bytes_in) {
  ShardSample s;
  s.shard = shard;
  s.endpoint = "tcp://127.0.0.1:" + std::to_string(4000 + shard);
  s.stats.shard = shard;
  s.stats.pid = 100 + static_cast<int>(shard);
  s.stats.uptime_ms = uptime_ms;
  s.stats.pushes = pushes;
  s.stats.bytes_in = bytes_in;
  s.stats.consistency = "async";
  return s;
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

TEST_CASE("top frame shows rates over the shard's own interval", "[top]") {
  FrameInput in;
  in.model = "m";
  in.previous = {Up(0, 10'000, 100, 0)};
  in.current = {Up(0, 12'000, 300, 4'000'000)};  // 2 s later on the shard
  in.previous[0].stats.apply = {10, 0.001, std::vector<uint64_t>(20, 0)};
  in.current[0].stats.apply = {20, 0.003, std::vector<uint64_t>(20, 0)};
  in.current[0].stats.apply.buckets[2] = 5;  // 5 applies in (25us, 50us]
  in.current[0].stats.apply.buckets[3] = 5;  // 5 in (50us, 100us]
  in.elapsed_s = 5;  // ignored: the shard's uptime brackets its counters
  const std::string frame = Joined(RenderTopFrame(in));
  INFO(frame);
  // 200 pushes / 2 s, 4 MB / 2 s, 2 ms / 10 applies, and p99 98% into
  // its bucket: 50us + 0.98 * 50us.
  CHECK_THAT(frame, Contains("\n0        100.0      0.0     2.00     0.00   "
                             "200us    99us      0.0      0\n"));
}

TEST_CASE("top frame shows no rates across a restart or on the first sample",
          "[top]") {
  FrameInput in;
  in.model = "m";
  in.current = {Up(0, 1'000, 5, 5)};
  SECTION("first sample") {}
  SECTION("another process") {
    in.previous = {Up(0, 500, 1, 1)};
    in.previous[0].stats.pid = 7;
  }
  SECTION("uptime went back") { in.previous = {Up(0, 9'000, 1, 1)}; }
  const std::vector<std::string> lines = RenderTopFrame(in);
  INFO(Joined(lines));
  REQUIRE(lines.size() > 3);
  CHECK(lines[3].rfind("0            -        -        -        -", 0) == 0);
}

TEST_CASE("top frame shows a shard that did not answer as DOWN with why",
          "[top]") {
  FrameInput in;
  in.model = "m";
  ShardSample down;
  down.shard = 1;
  down.endpoint = "tcp://10.0.0.9:5555";
  down.status = Status(Code::kTimeout, "no answer within 1000 ms");
  in.current = {Up(0, 1'000, 5, 5), down};
  const std::string frame = Joined(RenderTopFrame(in));
  INFO(frame);
  CHECK_THAT(frame, Contains("2 shards, 1 up"));
  CHECK_THAT(frame, Contains("1     DOWN  tcp://10.0.0.9:5555\n"
                             "      timeout: no answer within 1000 ms"));
}

TEST_CASE("top frame lists workers with staleness and fits 80 columns",
          "[top]") {
  FrameInput in;
  in.model = std::string(100, 'x');  // a long name is cut, not wrapped
  for (uint32_t shard = 0; shard < 2; ++shard) {
    ShardSample s = Up(shard, 1'000, 0, 0);
    s.stats.workers = 20;
    for (int64_t w = 0; w < 20; ++w)
      s.stats.workers_detail.push_back(
          {w == 17 ? 3 : 10 + shard, WorkerStats::State::kConnected, 5});
    s.stats.queues = {{std::string(40, 'q'), 8, 3, 10, 7, 0, 0, false}};
    in.current.push_back(s);
  }
  in.current[0].stats.workers_detail[1].state = WorkerStats::State::kGone;
  in.current[1].stats.workers_detail[1].state = WorkerStats::State::kGone;
  const std::vector<std::string> lines = RenderTopFrame(in);
  const std::string frame = Joined(lines);
  INFO(frame);
  for (const std::string& l : lines) CHECK(l.size() <= kTopWidth);
  // Clock range over the shards, clocks behind the fastest (11).
  CHECK_THAT(frame, Contains("\n0             10..11      1 connected"));
  CHECK_THAT(frame, Contains("\n1             10..11      1 gone"));
  CHECK_THAT(frame, Contains("... 4 more workers; the slowest of them: "
                             "worker 17 at clock 3"));
  CHECK_THAT(frame, Contains("3/8"));
}

TEST_CASE("latency quantile interpolates inside the bucket", "[top]") {
  std::vector<uint64_t> before(20, 0), after(20, 0);
  CHECK(std::isnan(LatencyQuantile(before, after, 0.99)));
  after[0] = 50;  // (0, 10us]
  after[1] = 50;  // (10us, 25us]
  CHECK(LatencyQuantile(before, after, 0.5) == Approx(10e-6));
  CHECK(LatencyQuantile(before, after, 0.99) == Approx(10e-6 + 15e-6 * 0.98));
  before[1] = 50;  // only the first bucket grew between the samples
  CHECK(LatencyQuantile(before, after, 0.99) == Approx(9.9e-6));
  after[19] = 100;  // above 10 s
  CHECK(std::isinf(LatencyQuantile(before, after, 0.99)));
  CHECK(std::isnan(LatencyQuantile({}, std::vector<uint64_t>(3, 1), 0.5)));
  CHECK(FormatSeconds(LatencyQuantile(before, after, 0.99)) == ">10s");
}

TEST_CASE("top formats rates and durations in few columns", "[top]") {
  CHECK(FormatRate(12.34) == "12.3");
  CHECK(FormatRate(45'600) == "45.6k");
  CHECK(FormatRate(7'800'000) == "7.8M");
  CHECK(FormatRate(std::nan("")) == "-");
  CHECK(FormatSeconds(85e-6) == "85us");
  CHECK(FormatSeconds(1.24e-3) == "1.2ms");
  CHECK(FormatSeconds(3.456) == "3.46s");
}

}  // namespace
}  // namespace shardps::cli
