#include "tests/multihost/bed_cluster.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>

#include "common/curve_keys.h"

namespace shardps::testing {

namespace {

CurveKeyPair KeyGen(const std::string& prefix) {
  const RunResult r = Run({kShardpsBinary, "keygen", "--out", prefix});
  INFO(r.err);
  REQUIRE(r.status.ok());
  auto pair = LoadCurveKeyPair(prefix);
  INFO(pair.status().ToString());
  REQUIRE(pair.ok());
  return *pair;
}

}  // namespace

BedCluster::BedCluster(HostBed& bed, const std::string& spec_text) : bed_(bed) {
  const std::string shared = bed.SharedDir();
  const CurveKeyPair server = KeyGen(shared + "/server");
  const CurveKeyPair client = KeyGen(shared + "/client");
  WriteFileBytes(shared + "/authorized", client.public_key + "\n");
  spec_ = WriteSpec(shared + "/spec.toml", spec_text);
  info_.server_key = server.public_key;
}

std::vector<std::string> BedCluster::CurveServeFlags() const {
  return {"--curve-secret-key", bed_.SharedDir() + "/server.key",
          "--authorized-keys", bed_.SharedDir() + "/authorized"};
}

void BedCluster::Serve(uint32_t shard, uint32_t shards, const std::string& host,
                       int port, const std::vector<std::string>& extra,
                       const std::string& storage) {
  const std::string endpoint =
      "tcp://" + bed_.Address(host) + ":" + std::to_string(port);
  std::vector<std::string> argv = {kShardpsBinary, "serve",
                                   "--spec",       spec_,
                                   "--shard",      std::to_string(shard),
                                   "--shards",     std::to_string(shards),
                                   "--listen",     endpoint,
                                   "--storage",    storage};
  for (const std::string& f : CurveServeFlags()) argv.push_back(f);
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto child = bed_.Spawn(host, argv);
  INFO(child.status().ToString());
  REQUIRE(child.ok());
  auto line = (*child)->ReadLineContaining("listening on", kStartTimeout);
  INFO("shard " << shard << " on " << host << ": " << (*child)->Stderr());
  REQUIRE(line.has_value());
  if (servers_.count(shard)) retired_.push_back(std::move(servers_[shard]));
  servers_[shard] = std::move(child).value();
  hosts_[shard] = host;
  bool found = false;
  for (ShardAddress& a : info_.shards)
    if (a.index == shard) {
      a.endpoint = endpoint;
      found = true;
    }
  if (!found) info_.shards.push_back({shard, endpoint, ""});
}

std::string BedCluster::WriteClusterFile(const std::string& name) {
  const std::string path = bed_.SharedDir() + "/" + name;
  // The model's name, from the spec the servers run.
  if (info_.model.empty()) {
    const std::string text = ReadFileBytes(spec_);
    const size_t at = text.find("name = \"");
    REQUIRE(at != std::string::npos);
    const size_t from = at + 8;
    info_.model = text.substr(from, text.find('"', from) - from);
  }
  ClusterInfo sorted = info_;
  std::sort(sorted.shards.begin(), sorted.shards.end(),
            [](const ShardAddress& a, const ShardAddress& b) {
              return a.index < b.index;
            });
  const Status saved = SaveCluster(sorted, path);
  INFO(saved.ToString());
  REQUIRE(saved.ok());
  return path;
}

ClientOptions BedCluster::KeyedOptions(int timeout_ms) const {
  auto pair = LoadCurveKeyPair(client_key());
  REQUIRE(pair.ok());
  ClientOptions options;
  options.curve_public_key = pair->public_key;
  options.curve_secret_key = pair->secret_key;
  options.connect_timeout = std::chrono::milliseconds(timeout_ms);
  options.request_timeout = std::chrono::milliseconds(timeout_ms);
  return options;
}

std::unique_ptr<Client> BedCluster::Connect(const std::string& cluster_file,
                                            int timeout_ms) const {
  auto client = Client::Connect(cluster_file, KeyedOptions(timeout_ms));
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

Result<WorkerProcess> StartWorkerOn(const HostBed& bed, const std::string& host,
                                    const WorkerArgs& args) {
  std::vector<std::string> argv = WorkerArgv(args);
  auto child = bed.Spawn(host, argv);
  if (!child.ok()) return child.status();
  WorkerProcess worker;
  worker.process = std::move(child).value();
  return worker;
}

}  // namespace shardps::testing
