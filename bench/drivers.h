// Load drivers: the raw ZeroMQ ceilings and the shardps figures, measured
// the same way (a window of requests in flight, a fixed time budget).
//
// Each driver runs on the calling thread, owns its sockets or Client, and
// returns what it moved. Raw drivers talk to RunRawSink in another process.
#ifndef SHARDPS_BENCH_DRIVERS_H_
#define SHARDPS_BENCH_DRIVERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace shardps::bench {

enum class Direction { kPush, kPull, kPushPull };

struct LoadSpec {
  Direction direction = Direction::kPush;
  uint64_t bytes = 0;        // payload per request
  int inflight = 1;          // requests kept outstanding
  double seconds = 0.5;      // measurement budget (after a short warm-up)
  bool zero_copy = true;     // raw only: borrow the send buffer or copy it
  bool exactly_once = true;  // shardps only: ClientOptions::exactly_once
};

struct LoadResult {
  uint64_t bytes = 0;  // payload bytes moved (both ways for PushPull)
  uint64_t requests = 0;
  double seconds = 0;
  std::vector<double> latencies_us;  // filled when inflight == 1

  double gbps() const { return seconds > 0 ? bytes / seconds / 1e9 : 0; }
};

// The raw ceiling's server: a ROUTER that answers each request with as many
// bytes as the request asks for. Prints "listening on EP", runs until killed.
int RunRawSink(const std::string& listen);

Result<LoadResult> RawLoad(const std::string& endpoint, const LoadSpec& spec);

// The shardps figure: Push/Pull/PushPull of the whole tensor `tensor`
// (spec.bytes / 4 floats) through a Client connected to `cluster_file`.
// `curve_key`: the client's CURVE key (PREFIX of PREFIX.key) for servers
// that run with CURVE (the cluster file names their key); empty: plain.
Result<LoadResult> ShardpsLoad(const std::string& cluster_file,
                               const std::string& tensor, const LoadSpec& spec,
                               const std::string& curve_key = "");

// The sparse figure: PushRows (spec.direction kPush) or PullRows (kPull) of
// `ids_per_request` ids of table `table` (dim floats per row), drawn
// uniformly from `id_pool` distinct ids spread over the 64-bit id space.
// LoadResult.bytes counts the ids and rows sent or received.
Result<LoadResult> SparseLoad(const std::string& cluster_file,
                              const std::string& table, uint64_t dim,
                              uint64_t ids_per_request, uint64_t id_pool,
                              const LoadSpec& spec);

// Median and 99th percentile of `samples` (sorted in place).
double Percentile(std::vector<double>& samples, double p);

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_DRIVERS_H_
