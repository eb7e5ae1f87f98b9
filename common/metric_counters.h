// Counters and latency histograms that a hot path bumps and a metrics thread
// reads (docs/metrics.md).
//
// Thread-safety: each object has ONE writer thread. Add/Observe are a relaxed
// load and store (no read-modify-write, no lock, no fence), so counting costs
// what a plain increment costs; any thread may read at any time and sees a
// value at most a few updates old. A histogram read is not a snapshot of one
// instant: buckets are read one by one, and Read() derives the count from the
// buckets it read so that count and buckets agree. Objects used by several
// writers must be one per writer (see PerWriter), merged when read.
#ifndef SHARDPS_COMMON_METRIC_COUNTERS_H_
#define SHARDPS_COMMON_METRIC_COUNTERS_H_

#include <time.h>

#include <array>
#include <atomic>
#include <cstdint>

namespace shardps {

// CLOCK_MONOTONIC in nanoseconds; cheap (vDSO), for latency measurements.
inline uint64_t MetricNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<uint64_t>(ts.tv_nsec);
}

class OwnedCounter {
 public:
  void Add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n,
                 std::memory_order_relaxed);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value the writer sets and readers read (a gauge).
template <typename T>
class Published {
 public:
  void Set(T v) { value_.store(v, std::memory_order_relaxed); }
  T value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<T> value_{};
};

// Latencies from 10 us to 10 s in 1-2.5-5 steps; slower ones land in +Inf.
class LatencyHistogram {
 public:
  static constexpr int kBounds = 19;
  // Upper bounds of the finite buckets, in nanoseconds, ascending.
  static constexpr std::array<uint64_t, kBounds> kBoundsNs = {
      10'000,        25'000,        50'000,        100'000,       250'000,
      500'000,       1'000'000,     2'500'000,     5'000'000,     10'000'000,
      25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

  struct Snapshot {
    // counts[i]: observations in bucket i (not cumulative); [kBounds] is
    // +Inf.
    std::array<uint64_t, kBounds + 1> counts{};
    uint64_t count = 0;
    double sum_seconds = 0;
    void Merge(const Snapshot& other);
  };

  void ObserveNs(uint64_t ns) {
    int i = 0;
    while (i < kBounds && ns > kBoundsNs[static_cast<size_t>(i)]) ++i;
    Bump(counts_[static_cast<size_t>(i)], 1);
    Bump(sum_ns_, ns);
  }
  Snapshot Read() const;

 private:
  static void Bump(std::atomic<uint64_t>& a, uint64_t n) {
    a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kBounds + 1> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// One T per writer thread, each on its own cache line so writers never
// share one.
template <typename T>
struct alignas(64) PerWriter {
  T value;
};

}  // namespace shardps

#endif  // SHARDPS_COMMON_METRIC_COUNTERS_H_
