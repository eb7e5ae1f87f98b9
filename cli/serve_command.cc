// `shardps serve`: run one shard server until SIGINT or SIGTERM; SIGHUP
// re-reads the CURVE authorized keys.
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/shard_count_check.h"
#include "cli/slurm_shard.h"
#include "common/curve_keys.h"
#include "common/host_name.h"
#include "common/metrics_export.h"
#include "common/segment.h"
#include "server/bind_policy.h"
#include "server/shard_server.h"

namespace shardps::cli {

namespace {

constexpr uint32_t kMaxShards = 4096;

struct ServeFlags {
  std::string spec;
  uint32_t shard = 0;
  bool shard_from_hostname = false;
  uint32_t shards = 1;
  std::string listen = "tcp://127.0.0.1:*";
  uint32_t threads = 1;
  std::string storage;
  std::string segment;
  uint32_t workers = 0;             // 0: the spec's [consistency] workers
  std::vector<std::string> queues;  // NAME:SLOTS:SLOT_BYTES
  uint32_t fault_drop_push_replies = 0;
  uint64_t fault_kill_mid_update = 0;
  std::string checkpoint_dir;
  std::string checkpoint_every = "10m";
  uint32_t checkpoint_keep = 3;
  uint32_t max_clients = 1024;
  uint64_t max_reply_bytes_per_client =
      ServerOptions{}.max_reply_bytes_per_client;
  uint64_t max_reply_bytes = ServerOptions{}.max_reply_bytes;
  std::string curve_secret_key;  // file
  std::string authorized_keys;   // file
  bool insecure = false;
  bool allow_new = false;      // --new
  std::string metrics_listen;  // empty: no /metrics
  bool slurm = false;          // shard, shards, listen from the Slurm step
  int64_t port = 0;            // --slurm: the port base
};

// Loads the key files named by the CURVE flags into `options`.
Status LoadCurveFlags(const ServeFlags& flags, ServerOptions* options) {
  if (flags.curve_secret_key.empty()) return Status::Ok();
  auto pair = LoadCurveSecretKey(flags.curve_secret_key);
  if (!pair.ok()) return pair.status();
  auto keys = LoadAuthorizedKeys(flags.authorized_keys);
  if (!keys.ok()) return keys.status();
  if (keys->empty())
    return Status(Code::kInvalidArgument,
                  flags.authorized_keys +
                      ": no keys: no client could connect (add clients' "
                      ".pub keys, one per line)");
  options->curve_secret_key = pair->secret_key;
  options->authorized_keys = std::move(keys).value();
  return Status::Ok();
}

// SIGHUP: re-reads --authorized-keys. A file that does not load (missing,
// unsafe mode, a bad line, no keys) leaves the running list as it was.
void ReloadAuthorizedKeys(const ServeFlags& flags, ShardServer& server) {
  if (flags.authorized_keys.empty()) {
    std::fprintf(stderr,
                 "shardps serve: SIGHUP ignored: CURVE is off, there are no "
                 "authorized keys to reload\n");
    return;
  }
  auto keys = LoadAuthorizedKeys(flags.authorized_keys);
  Status s = keys.ok() ? server.ReloadAuthorizedKeys(*keys) : keys.status();
  if (!s.ok()) {
    std::fprintf(stderr,
                 "shardps serve: SIGHUP: kept the previous authorized keys: "
                 "%s\n",
                 s.ToString().c_str());
    return;
  }
  std::fprintf(stderr,
               "shardps serve: SIGHUP: reloaded %zu authorized client key(s) "
               "from %s\n",
               keys->size(), flags.authorized_keys.c_str());
}

// The server's options: the spec (with --storage and --workers applied)
// and the flags. Refuses bad input (spec, --queue, --checkpoint-every, key
// files) and a new segment beside the model at another shard count.
Result<ServerOptions> MakeServerOptions(const ServeFlags& flags) {
  auto spec = LoadModelSpec(flags.spec);
  if (!spec.ok()) return spec.status();
  ServerOptions options;
  options.spec = std::move(spec).value();
  if (!flags.storage.empty()) options.spec.storage = flags.storage;
  if (flags.workers != 0) options.spec.consistency.workers = flags.workers;
  for (const std::string& q : flags.queues) {
    auto parsed = QueueOption::Parse(q);
    if (!parsed.ok()) return parsed.status();
    options.queues.push_back(*parsed);
  }
  if (flags.segment.empty() && flags.shard < flags.shards) {
    // Only when this would create the segment: reopening one (a restart)
    // is what a model at this shard count always does.
    const std::string own = Segment::PathFor(
        options.spec.storage, options.spec.name, flags.shard, flags.shards);
    struct stat st;
    if (::stat(own.c_str(), &st) != 0 && errno == ENOENT) {
      Status count =
          CheckShardCount("serve", options.spec.storage, options.spec.name,
                          flags.shards, flags.allow_new);
      if (!count.ok()) return count;
    }
  }
  options.shard = flags.shard;
  options.shards = flags.shards;
  options.listen = flags.listen;
  options.threads = flags.threads;
  options.segment_path = flags.segment;
  options.test_faults.drop_push_replies = flags.fault_drop_push_replies;
  options.test_faults.kill_mid_update = flags.fault_kill_mid_update;
  options.max_clients = flags.max_clients;
  options.max_reply_bytes_per_client = flags.max_reply_bytes_per_client;
  options.max_reply_bytes = flags.max_reply_bytes;
  if (!flags.checkpoint_dir.empty()) {
    auto every = ParseDuration(flags.checkpoint_every);
    if (!every.ok()) return every.status().WithContext("--checkpoint-every");
    options.checkpoint = {flags.checkpoint_dir, *every, flags.checkpoint_keep};
  }
  options.allow_insecure_bind = flags.insecure;
  if (!flags.metrics_listen.empty()) {
    auto listen = ParseMetricsListen(flags.metrics_listen);
    if (!listen.ok()) return listen.status().WithContext("--metrics-listen");
    options.metrics_listen = *listen;
  }
  Status curve = LoadCurveFlags(flags, &options);
  if (!curve.ok()) return curve;
  return Result<ServerOptions>(std::move(options));
}

// The startup lines on stderr: the shard, its segment and queues, and what
// is on (checkpoints, CURVE, bsp/ssp).
void ReportServing(const ServeFlags& flags, const ShardServer& server,
                   const std::vector<QueueOption>& queues,
                   const CheckpointOptions& checkpoint, size_t authorized,
                   const ConsistencySpec& consistency) {
  const SegmentOpenReport& r = server.open_report();
  std::fprintf(stderr, "shardps serve: shard %u of %u, segment %s (%s%s)\n",
               flags.shard, flags.shards, server.segment_path().c_str(),
               r.created ? "created" : "reopened",
               r.unclean ? ", after an unclean shutdown" : "");
  for (const QueueOption& q : queues)
    std::fprintf(stderr, "shardps serve: hosting queue '%s' at %s\n",
                 q.name.c_str(), server.queue_path(q.name).c_str());
  if (!checkpoint.root.empty())
    std::fprintf(stderr,
                 "shardps serve: checkpoints every %s to %s/shard-%u-of-%u, "
                 "keeping %u\n",
                 flags.checkpoint_every.c_str(), checkpoint.root.c_str(),
                 flags.shard, flags.shards, checkpoint.keep);
  if (authorized > 0)
    std::fprintf(stderr,
                 "shardps serve: CURVE on, %zu authorized client key(s)\n",
                 authorized);
  if (consistency.waits())
    std::fprintf(stderr, "shardps serve: %s with %u workers\n",
                 consistency.ModeName().c_str(), consistency.workers);
}

// What reopening the segment after a crash did, on stderr.
void ReportRecovery(const SegmentOpenReport& r) {
  if (!r.journal_discarded.empty())
    std::fprintf(stderr, "shardps serve: ignored the update journal: %s\n",
                 r.journal_discarded.c_str());
  if (r.journal_restored_rows > 0)
    std::fprintf(stderr,
                 "shardps serve: restored %llu table row(s) to before the row "
                 "push a crash interrupted; it was never acknowledged, and "
                 "exactly-once clients retry it\n",
                 static_cast<unsigned long long>(r.journal_restored_rows));
  if (r.journal_restored > 0)
    std::fprintf(stderr,
                 "shardps serve: restored %llu block(s) to before the update "
                 "a crash interrupted; it was never acknowledged, and "
                 "exactly-once clients retry it\n",
                 static_cast<unsigned long long>(r.journal_restored));
  else if (r.torn_blocks > 0)
    std::fprintf(stderr,
                 "shardps serve: %llu block(s) were mid-update at the crash; "
                 "those updates were never acknowledged\n",
                 static_cast<unsigned long long>(r.torn_blocks));
}

// --shard (or --shard-from-hostname) and --shards are required without
// --slurm (checked here, not by CLI11, because --slurm replaces them).
Status CheckPlainFlags(const CLI::Option& shard, const CLI::Option& from_host,
                       const CLI::Option& shards) {
  if ((shard.count() == 0 && from_host.count() == 0) || shards.count() == 0)
    return Status::InvalidArgument(
        "give --shard I (or --shard-from-hostname) and --shards N (or "
        "--slurm inside a Slurm step)");
  return Status::Ok();
}

// --slurm takes the shard, the shard count and the endpoint from the step;
// a flag that also gives one of them would be a second, conflicting truth.
Status CheckSlurmFlags(const CLI::Option& shard, const CLI::Option& shards,
                       const CLI::Option& listen, const CLI::Option& port) {
  for (const CLI::Option* o : {&shard, &shards, &listen})
    if (o->count() > 0)
      return Status::InvalidArgument(
          o->get_name() +
          " conflicts with --slurm: --slurm takes the shard from "
          "SLURM_PROCID, the shard count from the step's task count and "
          "the endpoint from the node's address and --port");
  if (port.count() == 0)
    return Status::InvalidArgument(
        "--slurm needs --port BASE (the same as `shardps cluster --slurm "
        "--port`)");
  return Status::Ok();
}

// Fills shard, shards and listen from the Slurm step.
Status ApplySlurm(ServeFlags* flags) {
  auto placed = PlaceSlurmShard(ProcessEnvironment(), flags->port, kMaxShards);
  if (!placed.ok()) return placed.status().WithContext("--slurm");
  flags->shard = placed->shard;
  flags->shards = placed->shards;
  flags->listen = placed->listen;
  std::fprintf(stderr,
               "shardps serve: Slurm job %s, task %u of %u on node %s "
               "(nodes %s): listening on %s\n",
               placed->step.job_id.c_str(), placed->shard, placed->shards,
               placed->node.c_str(), placed->step.node_list.c_str(),
               placed->listen.c_str());
  if (IsLoopbackEndpoint(placed->listen) && placed->step.nodes.size() > 1)
    std::fprintf(stderr,
                 "shardps serve: warning: node %s resolves to a loopback "
                 "address, which the other %zu node(s) cannot reach; give "
                 "it its network address in /etc/hosts or DNS (Debian maps "
                 "the host name to 127.0.1.1)\n",
                 placed->node.c_str(), placed->step.nodes.size() - 1);
  return Status::Ok();
}

// --shard-from-hostname: the shard index is the trailing ordinal of this
// host's name (a StatefulSet's pod i is `<set>-<i>`), below --shards.
Status ResolveShardIndex(ServeFlags* flags) {
  if (!flags->shard_from_hostname) return Status::Ok();
  const std::string host = HostName();
  auto ordinal = HostNameOrdinal(host);
  if (!ordinal.ok())
    return ordinal.status().WithContext("--shard-from-hostname");
  if (*ordinal >= flags->shards)
    return Status::InvalidArgument(
        "--shard-from-hostname: hostname '" + host + "' gives shard " +
        std::to_string(*ordinal) + ", but --shards is " +
        std::to_string(flags->shards) +
        ": scale the StatefulSet's replicas and the shard count together");
  flags->shard = *ordinal;
  return Status::Ok();
}

int RunServe(ServeFlags flags) {
  // Block the signals we handle before any thread exists, so every thread
  // inherits the mask and sigwait below is the only place they arrive.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (flags.slurm) {
    Status placed = ApplySlurm(&flags);
    if (!placed.ok()) return ReportError("serve", placed);
  }
  if (Status s = ResolveShardIndex(&flags); !s.ok())
    return ReportError("serve", s);
  auto options = MakeServerOptions(flags);
  if (!options.ok()) return ReportError("serve", options.status());
  const std::vector<QueueOption> queues = options->queues;
  const CheckpointOptions checkpoint = options->checkpoint;
  const size_t authorized = options->authorized_keys.size();
  const ConsistencySpec consistency = options->spec.consistency;
  auto server = ShardServer::Start(std::move(options).value());
  if (!server.ok()) return ReportError("serve", server.status());

  // The first stdout line is the contract with scripts and `shardps launch`.
  std::printf("listening on %s\n", (*server)->endpoint().c_str());
  // Second line, only with --metrics-listen: where /metrics is served.
  if (!(*server)->metrics_url().empty())
    std::printf("metrics on %s\n", (*server)->metrics_url().c_str());
  std::fflush(stdout);
  ReportServing(flags, **server, queues, checkpoint, authorized, consistency);
  ReportRecovery((*server)->open_report());

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    ReloadAuthorizedKeys(flags, **server);
  }
  std::fprintf(stderr, "shardps serve: %s, shutting down\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Stop();
  std::fprintf(stderr, "shardps serve: stopped cleanly\n");
  return 0;
}

}  // namespace

void RegisterServe(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve one shard of a model until SIGINT/SIGTERM");
  cmd->add_option("--spec", flags->spec, "Model spec (TOML)")->required();
  CLI::Option* shard =
      cmd->add_option("--shard", flags->shard,
                      "This shard's index (0-based); required "
                      "unless --slurm or --shard-from-hostname");
  CLI::Option* from_host = cmd->add_flag(
      "--shard-from-hostname", flags->shard_from_hostname,
      "Take the shard index from the hostname's trailing ordinal (pod i of "
      "a Kubernetes StatefulSet is <name>-<i>) instead of --shard");
  shard->excludes(from_host);
  CLI::Option* shards =
      cmd->add_option("--shards", flags->shards,
                      "Number of shards; required unless --slurm")
          ->check(CLI::Range(1u, kMaxShards));
  CLI::Option* listen =
      cmd->add_option("--listen", flags->listen,
                      "ZeroMQ endpoint to bind; port * picks a free one")
          ->capture_default_str();
  CLI::Option* slurm = cmd->add_flag(
      "--slurm", flags->slurm,
      "Inside a Slurm step (srun --ntasks-per-node=K "
      "--distribution=cyclic): shard SLURM_PROCID of the step's task "
      "count, listening on this node's address at --port + i / H (H nodes "
      "in the step), as `shardps cluster --slurm` places it");
  slurm->excludes(from_host);
  CLI::Option* port = cmd->add_option(
      "--port", flags->port,
      "With --slurm: the port base (a node's k-th shard uses BASE + k)");
  port->needs(slurm);
  cmd->add_option("--threads", flags->threads, "Update pool threads")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  cmd->add_option("--storage", flags->storage,
                  "Directory for segments (overrides the spec's storage)");
  cmd->add_option("--segment", flags->segment,
                  "Exact segment path (overrides storage)");
  cmd->add_option("--workers", flags->workers,
                  "Number of workers for bsp/ssp clocks (overrides the "
                  "spec's consistency.workers)")
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--queue", flags->queues,
                  "Host a batch queue NAME:SLOTS:SLOT_BYTES for remote "
                  "producers (repeatable)");
  cmd->add_option("--max-clients", flags->max_clients,
                  "Connections served at once; more are refused")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000000u));
  cmd->add_option("--max-reply-bytes-per-client",
                  flags->max_reply_bytes_per_client,
                  "Reply payload held for one connection that has not read "
                  "it (e.g. 256MiB); a pull past it gets kBusy. Raised to "
                  "the largest single reply")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  cmd->add_option("--max-reply-bytes", flags->max_reply_bytes,
                  "Reply payload held for all connections together (e.g. "
                  "1GiB); a pull past it gets kBusy")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  auto* dir = cmd->add_option(
      "--checkpoint-dir", flags->checkpoint_dir,
      "Write this shard's checkpoints under DIR/shard-I-of-N/ (a durable or "
      "write-once mount); restore with `shardps restore --from DIR`");
  cmd->add_option("--checkpoint-every", flags->checkpoint_every,
                  "Time between checkpoints: 500ms, 30s, 10m, 2h")
      ->capture_default_str()
      ->needs(dir);
  cmd->add_option("--checkpoint-keep", flags->checkpoint_keep,
                  "Newest checkpoints to keep")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10000u))
      ->needs(dir);
  // Test-only fault injection: no help text, not for production.
  cmd->add_option("--fault-drop-push-replies", flags->fault_drop_push_replies)
      ->group("");
  cmd->add_option("--fault-kill-mid-update", flags->fault_kill_mid_update)
      ->group("");
  CLI::Option* secret = cmd->add_option(
      "--curve-secret-key", flags->curve_secret_key,
      "Enable CURVE: this server's secret key file (from `shardps keygen`); "
      "every connection is encrypted and authenticated");
  CLI::Option* authorized = cmd->add_option(
      "--authorized-keys", flags->authorized_keys,
      "With CURVE: file of client public keys (Z85, one per line) allowed "
      "to connect; SIGHUP re-reads it");
  secret->needs(authorized);
  authorized->needs(secret);
  cmd->add_flag("--insecure", flags->insecure,
                "Allow listening on a non-loopback address without CURVE");
  cmd->add_option("--metrics-listen", flags->metrics_listen,
                  "Serve Prometheus metrics at http://ADDR/metrics: PORT "
                  "(loopback) or HOST:PORT; 0 picks a free port. Off by "
                  "default (docs/metrics.md)");
  cmd->add_flag("--new", flags->allow_new,
                "Create this shard count's segments even though the storage "
                "holds the model at another shard count (those stay "
                "untouched; the new model starts from scratch)");
  cmd->callback(
      [flags, shard, shards, listen, slurm, port, from_host, exit_code] {
        Status given = slurm->count() > 0
                           ? CheckSlurmFlags(*shard, *shards, *listen, *port)
                           : CheckPlainFlags(*shard, *from_host, *shards);
        if (!given.ok()) {
          *exit_code = ReportError("serve", given);
          return;
        }
        *exit_code = RunServe(*flags);
      });
}

}  // namespace shardps::cli
