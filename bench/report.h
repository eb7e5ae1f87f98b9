// Report: every figure the harness measures, beside its ceiling.
//
// A figure is only meaningful next to the ceiling measured in the same run
// on the same machine (raw ZeroMQ for transport, memcpy for apply, ...), so
// each row carries both and their ratio (figure / ceiling).
#ifndef SHARDPS_BENCH_REPORT_H_
#define SHARDPS_BENCH_REPORT_H_

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "shardps/status.h"

namespace shardps::bench {

struct Figure {
  std::string workload;  // transport, latency, apply, coprocessor, ...
  std::string name;      // what was measured, e.g. "push"
  // Ordered (key, value) pairs: payload, inflight, shards, clients, ...
  std::vector<std::pair<std::string, std::string>> config;
  double value = 0;
  std::string unit;          // "GB/s", "us", "ms", ...
  double ceiling = 0;        // 0 when there is none
  std::string ceiling_name;  // e.g. "raw zmq zero-copy"
  std::string note;          // "unavailable: ..." and the like

  double ratio() const { return ceiling > 0 ? value / ceiling : 0; }
  std::string ConfigString() const;
};

class Report {
 public:
  void Add(Figure f) { figures_.push_back(std::move(f)); }
  const std::vector<Figure>& figures() const { return figures_; }

  void PrintTable(std::FILE* out) const;
  // Every figure, its ceiling, config and the machine, as JSON.
  Status WriteJson(const std::string& path, const std::string& suite) const;
  // PNG charts through gnuplot (kUnavailable if gnuplot is missing).
  Status WritePlots(const std::string& dir) const;

 private:
  std::vector<Figure> figures_;
};

// "AMD EPYC, 2 cores" from /proc/cpuinfo.
std::string MachineDescription();

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_REPORT_H_
