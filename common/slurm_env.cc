#include "common/slurm_env.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "common/slurm_hostlist.h"

namespace shardps {

namespace {

// The first of `names` that is set, with its name; nullopt if none is.
std::optional<std::pair<std::string, std::string>> FirstSet(
    const EnvLookup& env, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (auto value = env(name))
      return std::make_pair(std::string(name), *value);
  return std::nullopt;
}

Status Missing(const char* context, const std::string& names) {
  return Status::InvalidArgument(std::string(context) + ": " + names +
                                 " is not set");
}

// A decimal uint32 (Slurm's task counts and ranks), refusing signs, spaces
// and overflow.
Result<uint32_t> ParseCount(const std::string& name, const std::string& text) {
  if (text.empty() || text.size() > 9 ||
      !std::all_of(text.begin(), text.end(),
                   [](char c) { return c >= '0' && c <= '9'; }))
    return Status::InvalidArgument(name + "='" + text +
                                   "': not a non-negative integer");
  return static_cast<uint32_t>(std::stoul(text));
}

Result<std::vector<std::string>> ExpandVariable(const std::string& name,
                                                const std::string& text) {
  auto nodes = ExpandHostlist(text);
  if (!nodes.ok()) return nodes.status().WithContext(name);
  return nodes;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

EnvLookup MapEnvironment(std::map<std::string, std::string> vars) {
  return
      [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
      };
}

Result<SlurmStep> ReadSlurmStep(const EnvLookup& env) {
  constexpr const char* kContext = "not inside a Slurm job step";
  SlurmStep step;
  auto procid = env("SLURM_PROCID");
  if (!procid) return Missing(kContext, "SLURM_PROCID");
  auto rank = ParseCount("SLURM_PROCID", *procid);
  if (!rank.ok()) return rank.status();
  step.procid = *rank;

  auto job = FirstSet(env, {"SLURM_JOB_ID", "SLURM_JOBID"});
  if (!job) return Missing(kContext, "SLURM_JOB_ID");
  step.job_id = job->second;

  auto ntasks = FirstSet(env, {"SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"});
  if (!ntasks)
    return Missing(kContext, "SLURM_NTASKS (or SLURM_STEP_NUM_TASKS)");
  auto count = ParseCount(ntasks->first, ntasks->second);
  if (!count.ok()) return count.status();
  if (*count == 0)
    return Status::InvalidArgument(ntasks->first + "=0: a step has tasks");
  step.ntasks = *count;
  if (step.procid >= step.ntasks)
    return Status::InvalidArgument(
        "SLURM_PROCID=" + std::to_string(step.procid) + " is not below " +
        ntasks->first + "=" + std::to_string(step.ntasks));

  auto node = env("SLURMD_NODENAME");
  if (!node) return Missing(kContext, "SLURMD_NODENAME");
  if (node->empty()) return Status::InvalidArgument("SLURMD_NODENAME is empty");
  step.node_name = *node;

  auto list = FirstSet(
      env, {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"});
  if (!list) return Missing(kContext, "SLURM_STEP_NODELIST");
  auto nodes = ExpandVariable(list->first, list->second);
  if (!nodes.ok()) return nodes.status();
  step.node_list = list->second;
  step.nodes = std::move(nodes).value();
  if (std::find(step.nodes.begin(), step.nodes.end(), step.node_name) ==
      step.nodes.end())
    return Status::InvalidArgument("SLURMD_NODENAME=" + step.node_name +
                                   " is not in " + list->first + "=" +
                                   step.node_list);
  return step;
}

Result<SlurmJob> ReadSlurmJob(const EnvLookup& env) {
  SlurmJob job;
  if (auto id = FirstSet(env, {"SLURM_JOB_ID", "SLURM_JOBID"}))
    job.job_id = id->second;
  auto list = FirstSet(env, {"SLURM_JOB_NODELIST", "SLURM_NODELIST"});
  if (!list) return Missing("not inside a Slurm job", "SLURM_JOB_NODELIST");
  auto nodes = ExpandVariable(list->first, list->second);
  if (!nodes.ok()) return nodes.status();
  job.node_list = list->second;
  job.nodes = std::move(nodes).value();
  return job;
}

}  // namespace shardps
