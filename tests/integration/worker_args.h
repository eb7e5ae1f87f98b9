// The flags of one shardps_test_worker, in one struct that both sides use:
// the harness turns it into a command line (StartWorker), and the worker
// (test_worker.cc) parses its command line back into it.
#ifndef SHARDPS_TESTS_INTEGRATION_WORKER_ARGS_H_
#define SHARDPS_TESTS_INTEGRATION_WORKER_ARGS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace shardps::testing {

struct WorkerArgs {
  std::string cluster;
  std::vector<std::string> tensors;
  std::string table;  // with rows > 0: PushRows to rows 0..rows-1 too
  int rows = 0;
  int pushes = 1;
  double value = 1.0;
  bool ramp = false;
  bool retry = false;
  bool until_signal = false;
  int timeout_ms = 5000;
  bool at_least_once = false;  // ClientOptions::exactly_once = false
  uint64_t client_id = 0;      // ClientOptions::client_id (0: random)
  // CURVE: the client key pair's prefix (PREFIX.key/.pub, `shardps keygen`);
  // the servers' key comes from the cluster file. "": plain connections.
  std::string curve_key;
};

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_INTEGRATION_WORKER_ARGS_H_
