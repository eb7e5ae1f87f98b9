#include "common/slurm_env.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>

namespace shardps {
namespace {

using Vars = std::map<std::string, std::string>;

Vars StepVars() {
  return {{"SLURM_JOB_ID", "42"},
          {"SLURM_PROCID", "4"},
          {"SLURM_NTASKS", "6"},
          {"SLURMD_NODENAME", "node2"},
          {"SLURM_STEP_NODELIST", "node[1-3]"},
          {"SLURM_JOB_NODELIST", "node[1-4]"}};
}

std::string StepError(const Vars& vars) {
  auto step = ReadSlurmStep(MapEnvironment(vars));
  REQUIRE_FALSE(step.ok());
  CHECK(step.status().code() == Code::kInvalidArgument);
  return step.status().message();
}

TEST_CASE("ReadSlurmStep reads the task's rank, count, node and nodes",
          "[slurm_env]") {
  auto step = ReadSlurmStep(MapEnvironment(StepVars()));
  INFO(step.status().ToString());
  REQUIRE(step.ok());
  CHECK(step->job_id == "42");
  CHECK(step->procid == 4);
  CHECK(step->ntasks == 6);
  CHECK(step->node_name == "node2");
  // The step's list, not the job's.
  CHECK(step->node_list == "node[1-3]");
  CHECK(step->nodes == std::vector<std::string>{"node1", "node2", "node3"});
}

TEST_CASE("ReadSlurmStep prefers the step's variables and falls back",
          "[slurm_env]") {
  Vars vars = StepVars();
  vars["SLURM_STEP_NUM_TASKS"] = "5";
  auto step = ReadSlurmStep(MapEnvironment(vars));
  REQUIRE(step.ok());
  CHECK(step->ntasks == 5);

  vars = StepVars();
  vars.erase("SLURM_STEP_NODELIST");
  step = ReadSlurmStep(MapEnvironment(vars));
  REQUIRE(step.ok());
  CHECK(step->nodes.size() == 4);  // the job's list

  vars.erase("SLURM_JOB_NODELIST");
  vars["SLURM_NODELIST"] = "node2";
  vars["SLURM_PROCID"] = "0";
  vars.erase("SLURM_JOB_ID");
  vars["SLURM_JOBID"] = "7";
  step = ReadSlurmStep(MapEnvironment(vars));
  REQUIRE(step.ok());
  CHECK(step->nodes == std::vector<std::string>{"node2"});
  CHECK(step->job_id == "7");
}

TEST_CASE("ReadSlurmStep says which variable is missing", "[slurm_env]") {
  CHECK(StepError({}) ==
        "not inside a Slurm job step: SLURM_PROCID is not set");
  for (const char* name : {"SLURM_JOB_ID", "SLURM_NTASKS", "SLURMD_NODENAME",
                           "SLURM_STEP_NODELIST"}) {
    Vars vars = StepVars();
    vars.erase(name);
    if (std::string(name) == "SLURM_STEP_NODELIST")
      vars.erase("SLURM_JOB_NODELIST");
    INFO(name);
    const std::string error = StepError(vars);
    CHECK(error.find("not inside a Slurm job step") == 0);
    CHECK(error.find(std::string(name) + " ") != std::string::npos);
  }
}

TEST_CASE("ReadSlurmStep refuses malformed variables", "[slurm_env]") {
  auto with = [](const std::string& name, const std::string& value) {
    Vars vars = StepVars();
    vars[name] = value;
    return StepError(vars);
  };
  CHECK(with("SLURM_PROCID", "x") ==
        "SLURM_PROCID='x': not a non-negative integer");
  CHECK(with("SLURM_PROCID", "-1").find("not a non-negative") !=
        std::string::npos);
  CHECK(with("SLURM_PROCID", "").find("not a non-negative") !=
        std::string::npos);
  CHECK(with("SLURM_PROCID", "99999999999").find("not a non-negative") !=
        std::string::npos);
  CHECK(with("SLURM_PROCID", "6") ==
        "SLURM_PROCID=6 is not below SLURM_NTASKS=6");
  CHECK(with("SLURM_NTASKS", "0") == "SLURM_NTASKS=0: a step has tasks");
  CHECK(with("SLURM_NTASKS", "2 ").find("not a non-negative") !=
        std::string::npos);
  CHECK(with("SLURMD_NODENAME", "") == "SLURMD_NODENAME is empty");
  CHECK(with("SLURMD_NODENAME", "node9") ==
        "SLURMD_NODENAME=node9 is not in SLURM_STEP_NODELIST=node[1-3]");
  CHECK(with("SLURM_STEP_NODELIST", "node[3-1]")
            .find("SLURM_STEP_NODELIST: host list item 'node[3-1]'") == 0);
}

TEST_CASE("ReadSlurmJob reads the job's node list", "[slurm_env]") {
  auto job = ReadSlurmJob(MapEnvironment(StepVars()));
  REQUIRE(job.ok());
  CHECK(job->job_id == "42");
  CHECK(job->node_list == "node[1-4]");
  CHECK(job->nodes.size() == 4);

  job = ReadSlurmJob(MapEnvironment({{"SLURM_NODELIST", "a,b"}}));
  REQUIRE(job.ok());
  CHECK(job->job_id.empty());
  CHECK(job->nodes == std::vector<std::string>{"a", "b"});

  job = ReadSlurmJob(MapEnvironment({}));
  REQUIRE_FALSE(job.ok());
  CHECK(job.status().message() ==
        "not inside a Slurm job: SLURM_JOB_NODELIST is not set");
  job = ReadSlurmJob(MapEnvironment({{"SLURM_JOB_NODELIST", "n[1-"}}));
  REQUIRE_FALSE(job.ok());
  CHECK(job.status().code() == Code::kInvalidArgument);
}

TEST_CASE("ProcessEnvironment reads this process's variables", "[slurm_env]") {
  ::setenv("SHARDPS_SLURM_ENV_TEST", "v", 1);
  const EnvLookup env = ProcessEnvironment();
  CHECK(env("SHARDPS_SLURM_ENV_TEST") == std::optional<std::string>("v"));
  ::unsetenv("SHARDPS_SLURM_ENV_TEST");
  CHECK_FALSE(env("SHARDPS_SLURM_ENV_TEST").has_value());
}

}  // namespace
}  // namespace shardps
