// `shardps replica`: the host replica (server/host_replica.h) in the
// foreground until SIGINT/SIGTERM.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "common/metrics_export.h"
#include "common/mutex.h"
#include "server/host_replica.h"
#include "server/replica_metrics.h"
#include "shardps/cluster.h"
#include "shardps/model_spec.h"

namespace shardps::cli {

namespace {

struct ReplicaFlags {
  std::string cluster;
  std::string spec;
  std::string storage = "/dev/shm/shardps-replica";
  bool all_shards = false;
  uint32_t credits = 8;
  ClientCurveFlags curve;
  std::string metrics_listen;  // empty: no /metrics
};

// What a scrape reads: the replica running now. The endpoint outlives the
// HostReplica objects a SIGHUP replaces, so a scraper's URL stays the same.
class ReplicaScrape {
 public:
  void Serve(HostReplica* replica, const HostReplicaOptions& options)
      EXCLUDES(mu_) {
    MutexLock lock(mu_);
    replica_ = replica;
    storage_ = options.storage;
    model_ = options.cluster.model;
    shards_ = static_cast<uint32_t>(options.cluster.shards.size());
  }
  void Collect(MetricFamilies& out) const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    if (replica_ != nullptr)
      CollectReplicaMetrics(storage_, model_, shards_, replica_->Stats(), out);
  }

 private:
  mutable Mutex mu_;
  HostReplica* replica_ GUARDED_BY(mu_) = nullptr;
  std::string storage_ GUARDED_BY(mu_), model_ GUARDED_BY(mu_);
  uint32_t shards_ GUARDED_BY(mu_) = 0;
};

Result<HostReplicaOptions> MakeOptions(const ReplicaFlags& flags) {
  HostReplicaOptions options;
  auto cluster = LoadCluster(flags.cluster);
  if (!cluster.ok()) return cluster.status();
  auto spec = LoadModelSpec(flags.spec);
  if (!spec.ok()) return spec.status();
  ClientOptions keys;
  SHARDPS_RETURN_IF_ERROR(ApplyClientCurveFlags(flags.curve, &keys));
  options.cluster = std::move(cluster).value();
  options.spec = std::move(spec).value();
  options.storage = flags.storage;
  options.all_shards = flags.all_shards;
  options.credits = flags.credits;
  options.curve_server_key = keys.curve_server_key;
  options.curve_public_key = keys.curve_public_key;
  options.curve_secret_key = keys.curve_secret_key;
  return options;
}

// "ready" once every shard answered: each is mirrored and subscribed, or
// on this host. The line is the contract with scripts and tests.
bool ReportReady(const HostReplica& replica) {
  std::string mirrored, local;
  for (const ReplicaShardStats& s : replica.Stats()) {
    if (!s.local && !(s.mirrored && s.subscribed)) return false;
    std::string& list = s.mirrored ? mirrored : local;
    list += (list.empty() ? "" : ",") + std::to_string(s.shard);
  }
  std::printf("replica ready: mirroring shard(s) [%s], on this host [%s]\n",
              mirrored.c_str(), local.c_str());
  std::fflush(stdout);
  return true;
}

Result<std::unique_ptr<HostReplica>> StartReplica(const ReplicaFlags& flags,
                                                  ReplicaScrape& scrape) {
  auto options = MakeOptions(flags);
  if (!options.ok()) return options.status();
  const HostReplicaOptions kept = *options;
  auto replica = HostReplica::Start(std::move(options).value());
  if (replica.ok()) {
    std::fprintf(stderr, "shardps replica: copies under %s\n",
                 kept.storage.c_str());
    scrape.Serve(replica->get(), kept);
  }
  return replica;
}

// Stops `replica` once no scrape reads it.
void StopReplica(HostReplica& replica, ReplicaScrape& scrape) {
  scrape.Serve(nullptr, {});
  replica.Stop();
}

int RunReplica(const ReplicaFlags& flags) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ReplicaScrape scrape;
  std::unique_ptr<MetricsEndpoint> metrics;
  if (!flags.metrics_listen.empty()) {
    auto endpoint = MetricsEndpoint::Start(
        flags.metrics_listen, {},
        [&scrape](MetricFamilies& out) { scrape.Collect(out); });
    if (!endpoint.ok())
      return ReportError("replica",
                         endpoint.status().WithContext("--metrics-listen"));
    metrics = std::move(endpoint).value();
    // Before "replica ready": scripts read this line first when they asked
    // for metrics.
    std::printf("metrics on %s\n", metrics->url().c_str());
    std::fflush(stdout);
  }
  auto replica = StartReplica(flags, scrape);
  if (!replica.ok()) return ReportError("replica", replica.status());
  bool ready = false;
  int sig = 0;
  const timespec tick{0, 100 * 1000 * 1000};
  for (;;) {
    sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      // The cluster file changed (a shard moved host): start over on it.
      // The copies stay, so only what changed travels again.
      std::fprintf(stderr, "shardps replica: SIGHUP, re-reading %s\n",
                   flags.cluster.c_str());
      StopReplica(**replica, scrape);
      replica = StartReplica(flags, scrape);
      if (!replica.ok()) return ReportError("replica", replica.status());
      ready = false;
      continue;
    }
    Status error = (*replica)->error();
    if (!error.ok()) {
      StopReplica(**replica, scrape);
      return ReportError("replica", error);
    }
    if (!ready) ready = ReportReady(**replica);
  }
  std::fprintf(stderr, "shardps replica: %s, stopping\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  StopReplica(**replica, scrape);
  return 0;
}

}  // namespace

void RegisterReplica(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ReplicaFlags>();
  CLI::App* cmd = app.add_subcommand(
      "replica",
      "Keep this host's copy of the shards not on it, streamed as they "
      "change, for ModelView (one per host; until SIGINT/SIGTERM; SIGHUP "
      "re-reads the cluster file)");
  cmd->add_option("--cluster", flags->cluster, "Cluster file")->required();
  cmd->add_option("--spec", flags->spec, "The servers' model spec (TOML)")
      ->required();
  cmd->add_option("--storage", flags->storage,
                  "Directory of the copies (a tmpfs; not the shards' own "
                  "storage)")
      ->capture_default_str();
  cmd->add_option("--credits", flags->credits,
                  "Stream messages in flight per shard (1..16)")
      ->capture_default_str();
  cmd->add_flag("--all-shards", flags->all_shards,
                "Mirror shards on this host too (tests, benchmarks)");
  cmd->add_option("--metrics-listen", flags->metrics_listen,
                  "Serve Prometheus metrics at http://ADDR/metrics: PORT "
                  "(loopback) or HOST:PORT; 0 picks a free port. Off by "
                  "default (docs/metrics.md)");
  AddClientCurveFlags(cmd, &flags->curve);
  cmd->callback([flags, exit_code] { *exit_code = RunReplica(*flags); });
}

}  // namespace shardps::cli
