// `shardps health`: is this shard (or host replica) up? For readiness and
// liveness probes (Kubernetes exec probes, systemd ExecStartPost, scripts).
//
// Exit 0: it answers and serves a model (one line on stdout saying what);
// 1: it does not answer in time, answers with an error, or serves another
// shard than asked (one line on stderr saying why); 2: bad flags or key
// files.
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "common/hex.h"
#include "common/replica_state.h"
#include "server/checkpointer.h"
#include "shardps/client.h"

namespace shardps::cli {

namespace {

struct HealthFlags {
  std::string endpoint;
  std::string cluster;
  int64_t shard = -1;  // with --cluster: -1 checks every shard
  std::string replica_storage;
  std::string model;
  std::string timeout = "2s";
  ClientCurveFlags curve;
};

int Unhealthy(const std::string& why) {
  std::fprintf(stderr, "shardps health: %s\n", why.c_str());
  return 1;
}

// One probe; `want_shard`/`want_shards` >= 0 when the caller knows which
// shard should answer there (the cluster file's place).
int CheckShard(const std::string& endpoint, const ClientOptions& options,
               int64_t want_shard, int64_t want_shards) {
  auto probe = Client::Probe(endpoint, options);
  if (!probe.ok()) {
    // The I/O thread says kUnavailable when no connection came up in time
    // and kTimeout when one did but no answer followed: both mean "down".
    const Code code = probe.status().code();
    if (code == Code::kTimeout || code == Code::kUnavailable)
      return Unhealthy(endpoint + ": no answer within " +
                       std::to_string(options.connect_timeout.count()) +
                       " ms (not running, not listening yet, or it does not "
                       "accept this client's CURVE key)");
    return Unhealthy(endpoint + ": " + probe.status().ToString());
  }
  if (want_shard >= 0 && (probe->shard != want_shard ||
                          static_cast<int64_t>(probe->shards) != want_shards))
    return Unhealthy(
        endpoint + ": serves shard " + std::to_string(probe->shard) + " of " +
        std::to_string(probe->shards) +
        ", the cluster file lists it as shard " + std::to_string(want_shard) +
        " of " + std::to_string(want_shards));
  std::printf("ok: %s serves shard %u of %u of model '%s' (spec %s)%s%s\n",
              endpoint.c_str(), probe->shard, probe->shards,
              probe->model.c_str(), Hex(probe->spec_hash).c_str(),
              probe->hostname.empty() ? "" : " on ", probe->hostname.c_str());
  return 0;
}

// A host replica has no socket: it is healthy when it holds the lock of
// every copy it keeps (ReplicaState::WriterAlive) and keeps at least one.
int CheckReplica(const HealthFlags& flags) {
  const std::string dir = flags.replica_storage + "/" + flags.model;
  std::vector<std::string> fresh;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      const std::string suffix = ".fresh";
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        fresh.push_back(dir + "/" + name);
    }
    ::closedir(d);
  }
  if (fresh.empty())
    return Unhealthy(dir +
                     ": no replica copies (*.fresh): the replica is not "
                     "running here, or has not reached its shards yet");
  std::sort(fresh.begin(), fresh.end());
  for (const std::string& path : fresh) {
    auto state = ReplicaState::OpenReadOnly(path);
    if (!state.ok()) return Unhealthy(state.status().ToString());
    if (!(*state)->WriterAlive())
      return Unhealthy(path +
                       ": the replica that keeps this copy is not running "
                       "(nobody holds its segment's lock)");
  }
  std::printf("ok: replica of '%s' keeps %zu cop%s under %s\n",
              flags.model.c_str(), fresh.size(),
              fresh.size() == 1 ? "y" : "ies", dir.c_str());
  return 0;
}

int RunHealth(const HealthFlags& flags) {
  const int forms = !flags.endpoint.empty() + !flags.cluster.empty() +
                    !flags.replica_storage.empty();
  if (forms != 1)
    return ReportError(
        "health",
        Status::InvalidArgument("give exactly one of --endpoint, --cluster or "
                                "--replica-storage"));
  if (!flags.replica_storage.empty()) {
    if (flags.model.empty())
      return ReportError(
          "health", Status::InvalidArgument("--replica-storage needs --model"));
    return CheckReplica(flags);
  }
  if (flags.shard >= 0 && flags.cluster.empty())
    return ReportError("health",
                       Status::InvalidArgument("--shard needs --cluster"));
  auto timeout = ParseDuration(flags.timeout);
  if (!timeout.ok())
    return ReportError("health", timeout.status().WithContext("--timeout"));
  if (timeout->count() <= 0)
    return ReportError("health",
                       Status::InvalidArgument("--timeout must be positive"));
  ClientOptions options;
  options.connect_timeout = *timeout;
  options.request_timeout = *timeout;
  options.tune_malloc = false;  // a short-lived probe allocates little
  Status keys = ApplyClientCurveFlags(flags.curve, &options);
  if (!keys.ok()) return ReportError("health", keys);
  if (!flags.endpoint.empty()) {
    if (Status s = CheckShardEndpoint(flags.endpoint); !s.ok())
      return ReportError("health", s.WithContext("--endpoint"));
    return CheckShard(flags.endpoint, options, -1, -1);
  }
  auto cluster = LoadCluster(flags.cluster);
  if (!cluster.ok()) return ReportError("health", cluster.status());
  if (options.curve_server_key.empty())
    options.curve_server_key = cluster->server_key;
  const int64_t n = static_cast<int64_t>(cluster->shards.size());
  if (flags.shard >= n)
    return ReportError(
        "health",
        Status::InvalidArgument("--shard " + std::to_string(flags.shard) +
                                ": " + flags.cluster + " lists shards 0.." +
                                std::to_string(n - 1)));
  int rc = 0;
  for (const ShardAddress& shard : cluster->shards) {
    if (flags.shard >= 0 && shard.index != flags.shard) continue;
    if (CheckShard(shard.endpoint, options, shard.index, n) != 0) rc = 1;
  }
  return rc;
}

}  // namespace

void RegisterHealth(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<HealthFlags>();
  CLI::App* cmd = app.add_subcommand(
      "health",
      "Exit 0 if a shard (or host replica) is up, 1 if not: for probes");
  cmd->add_option("--endpoint", flags->endpoint,
                  "The shard's endpoint, e.g. tcp://127.0.0.1:7000");
  cmd->add_option("--cluster", flags->cluster,
                  "Cluster file: check its shards (all, or --shard)");
  cmd->add_option("--shard", flags->shard,
                  "With --cluster: check only this shard index")
      ->check(CLI::Range(int64_t{0}, int64_t{UINT32_MAX}));
  cmd->add_option("--replica-storage", flags->replica_storage,
                  "Check the host replica keeping copies under DIR (its "
                  "--storage) instead of a shard");
  cmd->add_option("--model", flags->model,
                  "With --replica-storage: the model's name");
  cmd->add_option("--timeout", flags->timeout,
                  "How long to wait for the answer: 500ms, 2s, ...")
      ->capture_default_str();
  AddClientCurveFlags(cmd, &flags->curve);
  cmd->callback([flags, exit_code] { *exit_code = RunHealth(*flags); });
}

}  // namespace shardps::cli
