// The multihost workload's parts (docs/benchmarks.md#multihost): the model
// every run trains, the trainer role's argv, one run's measurements and the
// CSV and plots made from them.
#ifndef SHARDPS_BENCH_MULTIHOST_H_
#define SHARDPS_BENCH_MULTIHOST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace shardps::bench {

inline constexpr const char* kMhModel = "mh";
inline constexpr const char* kMhTensor = "t";
inline constexpr uint64_t kMhBlockFloats = 262144;  // 1 MiB blocks
// Every worker's gradient, every float: a power of two, so with lr 1 the
// model after any clock is exact in float and a trainer can check it.
inline constexpr float kMhGrad = 1.0f / 64;

// argv[1..] of the `__mh-trainer` role (multihost_trainer.cc). `mode` is
// "classic", "replica" or "streamed"; `replica_storage` the host replica's
// --storage.
std::vector<std::string> MultihostTrainerArgv(
    const std::string& cluster, const std::string& mode, int warmup, int steps,
    double compute_ms, int worker, int workers,
    const std::string& replica_storage, uint32_t shards);

// One measured run: a mode at a model size, per measured step.
struct MultihostRun {
  uint64_t floats = 0;
  std::string mode;       // "classic", "replica" or "streamed"
  double step_ms = 0;     // wall time per step, all trainers in lockstep
  double push_ms = 0;     // trainers' mean Push + Clock().Wait()
  double fetch_ms = 0;    // trainers' mean Pull, or replica wait + read
  double bound_ms = 0;    // the link bound for this mode, plus compute
  double overlap_ms = 0;  // replica: the bound if download overlapped upload
  double server_tx = 0;   // bytes sent by the servers' host link
  double server_rx = 0;   // bytes received by it
  double host_rx = 0;     // bytes received per trainer host (mean)
  double host_tx = 0;     // bytes sent per trainer host (mean)
  double cpu_busy = 0;    // machine-wide CPU busy fraction during the run
  double bed_cpu = 0;     // the run's own processes' CPU, in cores
};

struct SuiteOptions;

// Measures `mode` at `floats` on a fresh bed (multihost_workload.cc):
// kUnavailable when the machine cannot run a bed.
Result<MultihostRun> MeasureMultihostRun(const SuiteOptions& o, uint64_t floats,
                                         const std::string& mode);

// Writes multihost.csv, multihost-step.png and multihost-bytes.png into
// `dir` (the PNGs through gnuplot; kUnavailable without it, the CSV is
// written first either way).
Status WriteMultihostResults(const std::string& dir,
                             const std::vector<MultihostRun>& runs);

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_MULTIHOST_H_
