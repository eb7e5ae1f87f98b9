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
#include <vector>

#include "cli/commands.h"
#include "common/curve_keys.h"
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
  std::string out = "cluster.toml";
};

Status Bad(const std::string& what) { return Status::InvalidArgument(what); }

// A host is an address a ZeroMQ tcp:// endpoint can both bind and connect
// to: an IPv4 address, a name, or an IPv6 address in brackets; no scheme,
// port or wildcard.
Status CheckHost(const std::string& host) {
  if (host.empty()) return Bad("--hosts: empty host name (a stray comma?)");
  if (host.find("://") != std::string::npos)
    return Bad("--hosts: '" + host +
               "': give the address only (e.g. 10.0.0.5), not an endpoint");
  const bool bracketed = host.front() == '[' && host.back() == ']';
  if (!bracketed && host.find(':') != std::string::npos)
    return Bad("--hosts: '" + host +
               "': no port here (--port sets it); write an IPv6 address in "
               "brackets, e.g. [fd00::5]");
  if (host == "*" || host == "0.0.0.0" || host == "[::]")
    return Bad("--hosts: '" + host +
               "' is a wildcard: clients cannot connect to it; give each "
               "host's own address");
  for (char c : host)
    if (c == '"' || c == '\\' || c == ',' ||
        static_cast<unsigned char>(c) <= ' ')
      return Bad("--hosts: '" + host + "' contains a character no address has");
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

Status CheckHosts(const std::vector<std::string>& hosts) {
  if (hosts.empty()) return Bad("--hosts: need at least one host");
  std::set<std::string> seen;
  for (const std::string& h : hosts) {
    SHARDPS_RETURN_IF_ERROR(CheckHost(h));
    if (!seen.insert(h).second)
      return Bad("--hosts: '" + h +
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
  const int64_t per_host =
      (flags.shards + static_cast<int64_t>(flags.hosts.size()) - 1) /
      static_cast<int64_t>(flags.hosts.size());
  const int64_t last = flags.port + per_host - 1;
  if (flags.port < 1 || last > 65535)
    return Bad("--port: shards use ports " + std::to_string(flags.port) + ".." +
               std::to_string(last) +
               " on each host; they must lie in 1..65535");
  return Status::Ok();
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

// Shard i on host i % H at port BASE + i / H: consecutive shards on
// different hosts, so every host holds an equal share of the model's
// blocks (dense blocks go round-robin over shards), and each host uses the
// same small port range BASE..BASE + ceil(N/H) - 1.
std::vector<ShardAddress> PlaceShards(const ClusterFlags& flags) {
  std::vector<ShardAddress> shards;
  const size_t hosts = flags.hosts.size();
  for (uint32_t i = 0; i < static_cast<uint32_t>(flags.shards); ++i) {
    const int64_t port = flags.port + static_cast<int64_t>(i / hosts);
    // No segment: each shard's segment exists on its own host only, and a
    // client learns it (and checks its identity) from the shard's Hello.
    shards.push_back(
        {i, "tcp://" + flags.hosts[i % hosts] + ":" + std::to_string(port),
         ""});
  }
  return shards;
}

Result<ClusterInfo> BuildCluster(const ClusterFlags& flags) {
  SHARDPS_RETURN_IF_ERROR(CheckHosts(flags.hosts));
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
  cluster.shards = PlaceShards(flags);
  return cluster;
}

int RunCluster(ClusterFlags flags) {
  flags.hosts = SplitHosts(flags.hosts_text);
  auto cluster = BuildCluster(flags);
  if (!cluster.ok()) return ReportError("cluster", cluster.status());
  // Never overwrite: hosts may already be running launches that read it.
  struct stat st;
  if (::stat(flags.out.c_str(), &st) == 0 || errno != ENOENT)
    return ReportError(
        "cluster", Bad(flags.out + " already exists: remove it first (stop the "
                                   "launches that use it) or pass another -o"));
  Status saved = SaveCluster(*cluster, flags.out);
  if (!saved.ok()) return ReportError("cluster", saved);
  std::printf("wrote %s: %zu shard(s) of model '%s' on %zu host(s)\n",
              flags.out.c_str(), cluster->shards.size(), cluster->model.c_str(),
              flags.hosts.size());
  for (const ShardAddress& s : cluster->shards)
    std::printf("  shard %u  %s\n", s.index, s.endpoint.c_str());
  return 0;
}

}  // namespace

void RegisterCluster(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<ClusterFlags>();
  CLI::App* cmd = app.add_subcommand(
      "cluster",
      "Write a multi-host cluster file without starting anything: shard i "
      "on host i % H at port BASE + i / H (H hosts). Then run `shardps "
      "launch --cluster-file F --this-host ADDR` on each host");
  CLI::Option* model =
      cmd->add_option("--model", flags->model, "Model name (the spec's)");
  CLI::Option* spec = cmd->add_option(
      "--spec", flags->spec,
      "Model spec (TOML): takes the model name from it and records its "
      "spec_hash, which clients check");
  model->excludes(spec);
  spec->excludes(model);
  cmd->add_option("--shards", flags->shards, "Number of shards (1..256)")
      ->required();
  cmd->add_option("--hosts", flags->hosts_text,
                  "Comma-separated host addresses, each listed once, as "
                  "clients and servers reach them (IPv6 in brackets)")
      ->required();
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
                  "Where to write the cluster file (never overwritten)")
      ->capture_default_str();
  cmd->callback([flags, model, spec, exit_code] {
    if (model->count() == 0 && spec->count() == 0) {
      *exit_code = ReportError(
          "cluster", Bad("give the model: --model NAME or --spec SPEC"));
      return;
    }
    *exit_code = RunCluster(*flags);
  });
}

}  // namespace shardps::cli
