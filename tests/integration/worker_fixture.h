// Driving the shardps_test_worker processes of a test case: waiting for
// progress, stopping them and checking how they ended. Each helper fails the
// test (REQUIRE) with the worker's stderr when a worker misbehaves.
//
// Thread-safety: like Catch2's macros, call from the test thread only.
#ifndef SHARDPS_TESTS_INTEGRATION_WORKER_FIXTURE_H_
#define SHARDPS_TESTS_INTEGRATION_WORKER_FIXTURE_H_

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <utility>
#include <vector>

#include "tests/integration/harness.h"

namespace shardps::testing {

// `count` workers started with the same `args`.
inline std::vector<WorkerProcess> StartWorkers(const WorkerArgs& args,
                                               int count) {
  std::vector<WorkerProcess> workers;
  for (int k = 0; k < count; ++k) {
    auto worker = StartWorker(args);
    INFO(worker.status().ToString());
    REQUIRE(worker.ok());
    workers.push_back(std::move(worker).value());
  }
  return workers;
}

// Whether every worker has printed its final "done" line.
inline bool AllDone(const std::vector<WorkerProcess>& workers) {
  for (const WorkerProcess& w : workers)
    if (!w.done) return false;
  return true;
}

// Pumps the workers until each has acknowledged `acks` more pushes than when
// called (true), or `timeout` passes or a worker finishes first (false: a
// worker that stopped early will never get there).
inline bool PumpUntilEachAcked(std::vector<WorkerProcess>& workers, long acks,
                               std::chrono::milliseconds timeout) {
  std::vector<long> from;
  for (const WorkerProcess& w : workers) from.push_back(w.acked);
  bool stopped_early = false;
  const bool reached = PumpWorkers(
      workers,
      [&] {
        for (size_t k = 0; k < workers.size(); ++k) {
          if (workers[k].acked >= from[k] + acks) continue;
          stopped_early = workers[k].done;
          return stopped_early;
        }
        return true;
      },
      timeout);
  return reached && !stopped_early;
}

// Waits for every worker to exit and requires that each exited 0.
inline void RequireAllExitedCleanly(std::vector<WorkerProcess>& workers) {
  for (size_t k = 0; k < workers.size(); ++k) {
    const auto exit = workers[k].process->Wait(kExitTimeout);
    INFO("worker " << k << " stderr: " << workers[k].process->Stderr());
    REQUIRE(exit.has_value());
    INFO(exit->ToString());
    REQUIRE(exit->ok());
  }
}

// Stops --until-signal workers with SIGTERM and requires that each printed
// its "done" line and exited 0.
inline void StopWorkers(std::vector<WorkerProcess>& workers) {
  for (WorkerProcess& w : workers) REQUIRE(w.process->Signal(SIGTERM));
  PumpWorkers(
      workers, [&] { return AllDone(workers); }, kExitTimeout);
  RequireAllExitedCleanly(workers);
  for (const WorkerProcess& w : workers) REQUIRE(w.done);
}

// The pushes the stopped workers had acknowledged, all together, checking
// that each push was acknowledged at its first attempt (none failed).
inline long AckedFirstTime(const std::vector<WorkerProcess>& workers) {
  long acked = 0;
  for (size_t k = 0; k < workers.size(); ++k) {
    INFO("worker " << k << " stderr: " << workers[k].process->Stderr());
    CHECK(workers[k].done_attempts == workers[k].done_acked);
    acked += workers[k].done_acked;
  }
  return acked;
}

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_INTEGRATION_WORKER_FIXTURE_H_
