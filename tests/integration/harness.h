// Test harness for running real shard servers and workers as processes.
//
// The binaries under test are the ones CMake built: SHARDPS_BINARY (the
// `shardps` CLI) and SHARDPS_TEST_WORKER (test_worker.cc), passed in as
// compile definitions.
//
// Thread-safety: like ChildProcess, use each object from the test thread.
#ifndef SHARDPS_TESTS_INTEGRATION_HARNESS_H_
#define SHARDPS_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shardps/cluster.h"
#include "shardps/status.h"
#include "tests/integration/process.h"
#include "tests/integration/worker_args.h"

namespace shardps::testing {

inline const char* const kShardpsBinary = SHARDPS_BINARY;
inline const char* const kWorkerBinary = SHARDPS_TEST_WORKER;

// Generous bounds for events that normally take milliseconds; they only
// matter when something is broken, and then they keep a test from hanging.
inline constexpr std::chrono::seconds kStartTimeout{15};
inline constexpr std::chrono::seconds kExitTimeout{15};

// One tensor of a spec written by SpecText.
struct TensorDef {
  std::string name;
  std::vector<uint64_t> shape;
  std::string init = "zeros";
};

// A model spec as TOML: sgd with learning rate `lr`, blocks of
// `block_floats` floats. Storage is left out; tests pass --storage.
std::string SpecText(const std::string& model, uint64_t block_floats, double lr,
                     const std::vector<TensorDef>& tensors);

// Writes `text` to `path` and returns `path`.
std::string WriteSpec(const std::string& path, const std::string& text);

// The arguments of one `shardps serve`.
struct ServeArgs {
  std::string spec;
  uint32_t shard = 0;
  uint32_t shards = 1;
  std::string listen = "tcp://127.0.0.1:*";
  std::string storage;
  std::vector<std::string> extra;  // more flags: CURVE, fault switches
};

std::vector<std::string> ServeArgv(const ServeArgs& args);

// A `shardps serve` that announced its endpoint.
struct ServerProcess {
  std::unique_ptr<ChildProcess> process;
  std::string endpoint;  // from "listening on <endpoint>", port resolved
};

// Starts `shardps serve` and waits for its first stdout line, "listening on
// <endpoint>". Errors: kUnavailable, with the server's exit status and
// stderr, when it exits or stays silent for kStartTimeout.
Result<ServerProcess> StartServer(const ServeArgs& args);

// N `shardps serve` processes of one spec, all on 127.0.0.1, with their
// cluster file. The destructor kills every server still running.
class LocalCluster {
 public:
  // Starts shards 0..shards-1 of `spec_path` with segments under `storage`
  // and writes the cluster file (with segment paths) to `cluster_file`.
  static Result<std::unique_ptr<LocalCluster>> Start(
      const std::string& spec_path, const std::string& storage, uint32_t shards,
      const std::string& cluster_file,
      const std::vector<std::string>& serve_flags = {});

  const ClusterInfo& info() const { return info_; }
  const std::string& cluster_file() const { return cluster_file_; }
  ServerProcess& server(uint32_t shard) { return servers_[shard]; }

  // Starts shard `shard` again on the endpoint it had, so clients that knew
  // it reconnect. REQUIRES: the previous process has exited.
  Status Restart(uint32_t shard);
  // The extra `serve` flags of later Restarts (e.g. to drop a fault switch).
  void set_serve_flags(std::vector<std::string> flags) {
    base_.extra = std::move(flags);
  }

 private:
  LocalCluster() = default;

  ServeArgs base_;
  std::string cluster_file_;
  ClusterInfo info_;
  std::vector<ServerProcess> servers_;
};

// A running shardps_test_worker and what its stdout has said so far.
struct WorkerProcess {
  std::unique_ptr<ChildProcess> process;
  long acked = 0;                   // from the last "acked <n>"
  std::vector<std::string> errors;  // every "error <status>" line
  bool done = false;                // saw "done acked=<n> attempts=<m>"
  long done_acked = 0;
  long done_attempts = 0;

  // Updates the fields above from one stdout line.
  void Absorb(const std::string& line);
};

// The command line of a shardps_test_worker with `args`.
std::vector<std::string> WorkerArgv(const WorkerArgs& args);
Result<WorkerProcess> StartWorker(const WorkerArgs& args);

// Reads every worker's stdout, without letting any pipe fill up, until
// `until()` holds (true) or `timeout` passes (false).
bool PumpWorkers(std::vector<WorkerProcess>& workers,
                 const std::function<bool()>& until,
                 std::chrono::milliseconds timeout);

// Runs `argv` to completion (up to kExitTimeout) and returns its exit status
// with everything it printed.
struct RunResult {
  ExitStatus status;
  std::string out;
  std::string err;
};
RunResult Run(const std::vector<std::string>& argv);

// Whether `text` (a process's output, a message) contains `needle`.
inline bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// The pids in `shardps launch`'s "  shard <i>  pid <pid>  <endpoint>" lines,
// in the order printed; other lines are skipped.
std::vector<pid_t> ShardPids(const std::vector<std::string>& lines);

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_INTEGRATION_HARNESS_H_
