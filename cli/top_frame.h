// One frame of `shardps top` (docs/top.md): the lines drawn from two
// samples of every shard's Stats, with the rates between them. Pure
// functions over values, so the tests can check a frame without a terminal.
#ifndef SHARDPS_CLI_TOP_FRAME_H_
#define SHARDPS_CLI_TOP_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/stats_poller.h"

namespace shardps::cli {

// Every line of a frame fits this many columns.
inline constexpr size_t kTopWidth = 80;
// Workers listed one per line; the rest are summed up in one line.
inline constexpr size_t kTopMaxWorkerRows = 16;

struct FrameInput {
  std::string model;
  std::string time_text;  // e.g. "12:34:56"; empty: none shown
  double interval_s = 1;  // what the header says
  // The sample before `current`, by shard; empty for the first frame (then
  // every rate shows "-").
  std::vector<ShardSample> previous;
  std::vector<ShardSample> current;
  // Seconds between the two samples as this process measured them; used
  // when a shard's own uptime does not give the interval.
  double elapsed_s = 0;
};

// The frame's lines, without line ends, each at most kTopWidth columns.
std::vector<std::string> RenderTopFrame(const FrameInput& in);

// The q-quantile (0 < q <= 1) of the observations between two snapshots
// of one histogram's buckets (shard_stats.h, kLatencyBoundsSeconds),
// interpolated linearly inside its bucket. NaN when there were none (or
// the bucket lists do not match); +infinity when the quantile lies above
// the last bound.
double LatencyQuantile(const std::vector<uint64_t>& before,
                       const std::vector<uint64_t>& after, double q);

// Human-readable values in at most 8 columns: "-" for NaN.
std::string FormatRate(double per_second);  // 12.3, 45.6k, 7.8M
std::string FormatSeconds(double seconds);  // 85us, 1.2ms, 3.45s, >10s

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_TOP_FRAME_H_
