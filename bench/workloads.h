// The benchmark workloads. Each measures its figures and their ceilings in
// the same run and adds them to the report; progress goes to stderr.
#ifndef SHARDPS_BENCH_WORKLOADS_H_
#define SHARDPS_BENCH_WORKLOADS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "bench/drivers.h"
#include "bench/report.h"
#include "shardps/status.h"

namespace shardps::bench {

struct SuiteOptions {
  double seconds = 0.5;                      // per measurement
  std::vector<uint64_t> sizes;               // transport payloads, bytes
  std::vector<int> inflight;                 // requests in flight
  std::vector<std::string> transports;       // "tcp", "ipc"
  uint32_t max_shards = 4;                   // scaling table, 1..max
  uint32_t max_clients = 4;                  // scaling table, 1..max
  uint64_t apply_floats = 16 << 20;          // apply workload tensor
  std::vector<uint64_t> model_floats;        // coprocessor model sizes
  std::vector<int> workers;                  // coprocessor worker counts
  int steps = 8;                             // coprocessor steps per run
  double compute_ms = 20;                    // coprocessor synthetic compute
  std::vector<uint64_t> sparse_dims;         // sparse table row widths
  uint64_t stream_rows = 200000;             // stream: rows of the series
  uint64_t stream_batches_used = 200;        // stream: batches training takes
  std::vector<uint64_t> exactly_once_sizes;  // exactly-once push payloads
  // transport and latency over tcp: also run every shardps figure against
  // CURVE servers and report it beside the plain one (ratio = CURVE cost).
  bool curve = false;
  // multihost (needs root: the namespace bed): model sizes, each trainer
  // host's link rate (tc), each host's /dev/shm, steps and compute.
  std::vector<uint64_t> multihost_floats;
  std::string multihost_rate = "1gbit";
  std::string multihost_tmpfs = "2g";
  int multihost_warmup = 2;          // steps not measured
  int multihost_steps = 3;           // measured steps
  double multihost_compute_ms = 50;  // synthetic compute (a sleep)
  // metrics: push payloads, off/on rounds, seconds per measurement and the
  // scraper's interval.
  std::vector<uint64_t> metrics_sizes;
  int metrics_rounds = 7;
  double metrics_seconds = 1.0;
  int metrics_scrape_ms = 100;
  // Where workloads that make their own plots and CSV write them (--plot).
  std::string plot_dir;
};

SuiteOptions DefaultSuite();
SuiteOptions QuickSuite();

Status RunTransport(const SuiteOptions& o, Report* report);
Status RunLatency(const SuiteOptions& o, Report* report);
Status RunApply(const SuiteOptions& o, Report* report);
Status RunCoprocessor(const SuiteOptions& o, Report* report);
Status RunSparse(const SuiteOptions& o, Report* report);
Status RunStream(const SuiteOptions& o, Report* report);
Status RunExactlyOnce(const SuiteOptions& o, Report* report);
// Push rate with /metrics scraped against no endpoint, and the counting's
// share of a small push; writes metrics.csv (and .png) into plot_dir.
Status RunMetrics(const SuiteOptions& o, Report* report);
// Prints a SKIPPED line and returns OK where the bed cannot run (not root).
Status RunMultihost(const SuiteOptions& o, Report* report);

// Child roles (hidden subcommands of shardps-bench).
int RunClientRole(const std::vector<std::string>& args);
int RunCoprocessorWorkerRole(const std::vector<std::string>& args);
int RunMultihostTrainerRole(const std::vector<std::string>& args);

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_WORKLOADS_H_
