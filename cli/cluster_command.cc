// `shardps cluster`: write a cluster file that places a model's shards on
// several hosts at fixed ports, without starting anything. Each host then
// runs `shardps launch --this-host ADDR` on that file (docs/security.md,
// "Across hosts").
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "common/curve_keys.h"
#include "common/shard_placement.h"
#include "common/slurm_env.h"
#include "common/slurm_hostlist.h"
#include "server/bind_policy.h"
#include "shardps/cluster.h"
#include "shardps/model_spec.h"

namespace shardps::cli {

namespace {

struct ClusterFlags {
  std::string model;
  std::string spec;        // alternative to --model: also records spec_hash
  int64_t shards = 0;      // checked here, for a message naming the flag
  std::string hosts_text;  // --hosts as given; split by SplitHosts
  std::vector<std::string> hosts;
  int64_t port = 0;
  std::string server_key_file;  // the servers' .pub
  bool insecure = false;
  std::string out = "cluster.toml";  // "-": stdout
  // --slurm: the hosts are the job's nodes (SLURM_JOB_NODELIST, or
  // --nodelist), and --shards defaults to their number.
  bool slurm = false;
  std::string nodelist;
  std::string hosts_source = "--hosts";  // names the hosts' origin in errors
};

Status Bad(const std::string& what) { return Status::InvalidArgument(what); }

// A host is an address a ZeroMQ tcp:// endpoint can both bind and connect
// to: an IPv4 address, a name, or an IPv6 address in brackets; no scheme,
// port or wildcard.
Status CheckHost(const std::string& source, const std::string& host) {
  if (host.empty()) return Bad(source + ": empty host name (a stray comma?)");
  if (host.find("://") != std::string::npos)
    return Bad(source + ": '" + host +
               "': give the address only (e.g. 10.0.0.5), not an endpoint");
  const bool bracketed = host.front() == '[' && host.back() == ']';
  if (!bracketed && host.find(':') != std::string::npos)
    return Bad(source + ": '" + host +
               "': no port here (--port sets it); write an IPv6 address in "
               "brackets, e.g. [fd00::5]");
  if (host == "*" || host == "0.0.0.0" || host == "[::]")
    return Bad(source + ": '" + host +
               "' is a wildcard: clients cannot connect to it; give each "
               "host's own address");
  for (char c : host)
    if (c == '"' || c == '\\' || c == ',' ||
        static_cast<unsigned char>(c) <= ' ')
      return Bad(source + ": '" + host +
                 "' contains a character no address has");
  return Status::Ok();
}

// Splits --hosts at commas ourselves: CLI11's delimiter drops empty items,
// and "a,,b" is more likely a lost host than a typo to forgive.
std::vector<std::string> SplitHosts(const std::string& text) {
  std::vector<std::string> hosts;
  size_t start = 0;
  for (size_t comma; (comma = text.find(',', start)) != std::string::npos;
       start = comma + 1)
    hosts.push_back(text.substr(start, comma - start));
  hosts.push_back(text.substr(start));
  return hosts;
}

Status CheckHosts(const std::string& source,
                  const std::vector<std::string>& hosts) {
  if (hosts.empty()) return Bad(source + ": need at least one host");
  std::set<std::string> seen;
  for (const std::string& h : hosts) {
    SHARDPS_RETURN_IF_ERROR(CheckHost(source, h));
    if (!seen.insert(h).second)
      return Bad(source + ": '" + h +
                 "' is listed twice; list each host once (a host runs as many "
                 "shards as the placement gives it)");
  }
  return Status::Ok();
}

// Checks --shards and --port: every shard's port BASE + i / H must fit.
Status CheckShardsAndPorts(const ClusterFlags& flags) {
  if (flags.shards < 1 || flags.shards > 256)
    return Bad("--shards: must be 1..256 (got " + std::to_string(flags.shards) +
               ")");
  return CheckShardPorts(static_cast<uint32_t>(flags.shards),
                         flags.hosts.size(), flags.port, "--port");
}

// Plain connections to a non-loopback host would be refused by every
// server's bind policy, so the file must name the servers' CURVE key, or
// the user must say the network is trusted.
Status CheckSecurity(const ClusterFlags& flags) {
  if (!flags.server_key_file.empty() || flags.insecure) return Status::Ok();
  for (const std::string& h : flags.hosts)
    if (!IsLoopbackEndpoint("tcp://" + h + ":1"))
      return Bad("host '" + h +
                 "' is not loopback: its servers must run with CURVE. Pass "
                 "--server-key-file SERVER.pub (from `shardps keygen`; the "
                 "hosts' launches use SERVER.key), or --insecure on a trusted "
                 "network (see docs/security.md)");
  return Status::Ok();
}

// The servers' public key from --server-key-file. A secret key file holds
// the same 40 characters, so it is refused by name: the cluster file is
// copied to every host and client and must never carry the secret.
Result<std::string> LoadServerKey(const std::string& path) {
  const std::string secret = ".key";
  if (path.size() >= secret.size() &&
      path.compare(path.size() - secret.size(), secret.size(), secret) == 0)
    return Bad("--server-key-file: " + path +
               " looks like a secret key file; pass the public one (.pub): "
               "the cluster file is shared with every client");
  return LoadCurvePublicKey(path);
}

Result<ClusterInfo> BuildCluster(const ClusterFlags& flags) {
  SHARDPS_RETURN_IF_ERROR(CheckHosts(flags.hosts_source, flags.hosts));
  SHARDPS_RETURN_IF_ERROR(CheckShardsAndPorts(flags));
  SHARDPS_RETURN_IF_ERROR(CheckSecurity(flags));
  ClusterInfo cluster;
  if (!flags.spec.empty()) {
    auto spec = LoadModelSpec(flags.spec);
    if (!spec.ok()) return spec.status();
    cluster.model = spec->name;
    cluster.spec_hash = SpecHash(*spec);
  } else {
    if (flags.model.empty()) return Bad("--model: must not be empty");
    cluster.model = flags.model;
  }
  if (!flags.server_key_file.empty()) {
    auto key = LoadServerKey(flags.server_key_file);
    if (!key.ok()) return key.status();
    cluster.server_key = *key;
  }
  cluster.shards =
      PlaceShards(flags.hosts, static_cast<uint32_t>(flags.shards), flags.port);
  return cluster;
}

// --slurm: the hosts from --nodelist or the job's environment; --shards
// defaults to one per node.
Status TakeSlurmHosts(ClusterFlags* flags) {
  if (!flags->nodelist.empty()) {
    auto nodes = ExpandHostlist(flags->nodelist);
    if (!nodes.ok()) return nodes.status().WithContext("--nodelist");
    flags->hosts = std::move(nodes).value();
    flags->hosts_source = "--nodelist";
  } else {
    auto job = ReadSlurmJob(ProcessEnvironment());
    if (!job.ok())
      return job.status().WithContext(
          "--slurm (run it in the batch script, or pass --nodelist LIST)");
    flags->hosts = std::move(job->nodes);
    flags->hosts_source = "SLURM_JOB_NODELIST=" + job->node_list;
  }
  if (flags->shards == 0)
    flags->shards = static_cast<int64_t>(flags->hosts.size());
  return Status::Ok();
}

int RunCluster(ClusterFlags flags) {
  if (flags.slurm) {
    Status hosts = TakeSlurmHosts(&flags);
    if (!hosts.ok()) return ReportError("cluster", hosts);
  } else {
    flags.hosts = SplitHosts(flags.hosts_text);
  }
  auto cluster = BuildCluster(flags);
  if (!cluster.ok()) return ReportError("cluster", cluster.status());
  // -o -: the file on stdout, so the summary goes to stderr.
  const bool to_stdout = flags.out == "-";
  FILE* summary = to_stdout ? stderr : stdout;
  if (to_stdout) {
    const std::string text = cluster->ToToml();
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() ||
        std::fflush(stdout) != 0)
      return ReportError("cluster",
                         Status::IoError("writing to stdout failed"));
  } else {
    // Never overwrite: hosts may already be running launches that read it.
    struct stat st;
    if (::stat(flags.out.c_str(), &st) == 0 || errno != ENOENT)
      return ReportError(
          "cluster",
          Bad(flags.out + " already exists: remove it first (stop the "
                          "launches that use it) or pass another -o"));
    Status saved = SaveCluster(*cluster, flags.out);
    if (!saved.ok()) return ReportError("cluster", saved);
  }
  std::fprintf(summary, "wrote %s: %zu shard(s) of model '%s' on %zu host(s)\n",
               to_stdout ? "the cluster file to stdout" : flags.out.c_str(),
               cluster->shards.size(), cluster->model.c_str(),
               flags.hosts.size());
  for (const ShardAddress& s : cluster->shards)
    std::fprintf(summary, "  shard %u  %s\n", s.index, s.endpoint.c_str());
  return 0;
}

}  // namespace

void RegisterCluster(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ClusterFlags>();
  CLI::App* cmd = app.add_subcommand(
      "cluster",
      "Write a multi-host cluster file without starting anything: shard i "
      "on host i % H at port BASE + i / H (H hosts). Then run `shardps "
      "launch --cluster-file F --this-host ADDR` on each host, or, with "
      "--slurm, `srun ... shardps serve --slurm` over the job's nodes");
  CLI::Option* model =
      cmd->add_option("--model", flags->model, "Model name (the spec's)");
  CLI::Option* spec = cmd->add_option(
      "--spec", flags->spec,
      "Model spec (TOML): takes the model name from it and records its "
      "spec_hash, which clients check");
  model->excludes(spec);
  spec->excludes(model);
  CLI::Option* shards = cmd->add_option(
      "--shards", flags->shards,
      "Number of shards (1..256); with --slurm, one per node by default");
  CLI::Option* hosts =
      cmd->add_option("--hosts", flags->hosts_text,
                      "Comma-separated host addresses, each listed once, as "
                      "clients and servers reach them (IPv6 in brackets)");
  CLI::Option* slurm = cmd->add_flag(
      "--slurm", flags->slurm,
      "Inside a Slurm job: the hosts are the job's nodes "
      "(SLURM_JOB_NODELIST), in Slurm's order; pair with `shardps serve "
      "--slurm` in a step over all of them");
  cmd->add_option("--nodelist", flags->nodelist,
                  "With --slurm: this Slurm host list (e.g. node[1-3,7]) "
                  "instead of SLURM_JOB_NODELIST")
      ->needs(slurm);
  hosts->excludes(slurm);
  slurm->excludes(hosts);
  cmd->add_option("--port", flags->port,
                  "First port: a host's k-th shard listens on BASE + k")
      ->required();
  CLI::Option* key = cmd->add_option(
      "--server-key-file", flags->server_key_file,
      "The servers' CURVE public key (.pub), written into the file as "
      "server_key; required for non-loopback hosts unless --insecure");
  CLI::Option* insecure =
      cmd->add_flag("--insecure", flags->insecure,
                    "Allow non-loopback hosts without CURVE (trusted network)");
  key->excludes(insecure);
  insecure->excludes(key);
  cmd->add_option("-o,--out", flags->out,
                  "Where to write the cluster file (never overwritten); - "
                  "writes it to stdout (the summary then goes to stderr)")
      ->capture_default_str();
  cmd->callback([flags, model, spec, shards, hosts, slurm, exit_code] {
    if (model->count() == 0 && spec->count() == 0) {
      *exit_code = ReportError(
          "cluster", Bad("give the model: --model NAME or --spec SPEC"));
      return;
    }
    if (slurm->count() == 0 && (hosts->count() == 0 || shards->count() == 0)) {
      *exit_code = ReportError(
          "cluster", Bad("give the hosts and the shard count: --hosts A,B "
                         "--shards N, or --slurm inside a Slurm job"));
      return;
    }
    if (shards->count() > 0 && flags->shards == 0) {
      *exit_code =
          ReportError("cluster", Bad("--shards: must be 1..256 (got 0)"));
      return;
    }
    *exit_code = RunCluster(*flags);
  });
}

}  // namespace shardps::cli
