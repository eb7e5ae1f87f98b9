// The Slurm job and step a process runs in, read from the variables Slurm
// sets (SLURM_PROCID, SLURM_STEP_NODELIST, ...), so `shardps serve --slurm`
// and `shardps cluster --slurm` need no coordinator: every task of a step
// derives the same cluster from the same environment.
//
// The environment is a parameter (EnvLookup), never read deep inside, so
// tests pass a map and two readers in one process do not interfere.
//
// Thread-safety: the readers are pure functions of `env`;
// ProcessEnvironment() reads getenv, which is safe while no thread
// modifies the environment.
#ifndef SHARDPS_COMMON_SLURM_ENV_H_
#define SHARDPS_COMMON_SLURM_ENV_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace shardps {

// A variable's value, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

// This process's environment (getenv).
EnvLookup ProcessEnvironment();

// A fixed environment, for tests. The returned function owns a copy.
EnvLookup MapEnvironment(std::map<std::string, std::string> vars);

// One task of a job step, as Slurm describes it.
struct SlurmStep {
  std::string job_id;     // SLURM_JOB_ID (or the older SLURM_JOBID)
  uint32_t procid = 0;    // SLURM_PROCID: this task's rank in the step
  uint32_t ntasks = 0;    // SLURM_STEP_NUM_TASKS, else SLURM_NTASKS
  std::string node_name;  // SLURMD_NODENAME: the node this task runs on
  // SLURM_STEP_NODELIST, else SLURM_JOB_NODELIST, else SLURM_NODELIST, as
  // given and expanded (ExpandHostlist), in Slurm's order.
  std::string node_list;
  std::vector<std::string> nodes;
};

// Reads the step from `env`. Errors are kInvalidArgument naming the
// variable: "not inside a Slurm job step: SLURM_PROCID is not set" when one
// is missing, or saying what is wrong with a malformed one (not a number,
// procid >= ntasks, a bad host list, SLURMD_NODENAME not in the list).
Result<SlurmStep> ReadSlurmStep(const EnvLookup& env);

// The job's nodes, for commands run in the batch script (outside a step).
struct SlurmJob {
  std::string job_id;     // SLURM_JOB_ID / SLURM_JOBID; empty when not set
  std::string node_list;  // SLURM_JOB_NODELIST, else SLURM_NODELIST
  std::vector<std::string> nodes;
};

// Reads the job from `env`. Errors are kInvalidArgument: "not inside a
// Slurm job: SLURM_JOB_NODELIST is not set" or a bad host list.
Result<SlurmJob> ReadSlurmJob(const EnvLookup& env);

}  // namespace shardps

#endif  // SHARDPS_COMMON_SLURM_ENV_H_
