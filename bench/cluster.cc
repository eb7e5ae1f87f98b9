#include "bench/cluster.h"

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/curve_keys.h"
#include "server/shard_server.h"
#include "shardps/cluster.h"
#include "shardps/model_spec.h"

namespace shardps::bench {

Result<std::string> MakeTempDir() {
  const char* base = std::getenv("SHARDPS_BENCH_DIR");
  std::string tmpl =
      std::string(base ? base : "/dev/shm") + "/shardps-bench.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Status(Code::kIoError, "mkdtemp " + tmpl + " failed");
  return tmpl;
}

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

Result<BenchCluster> BenchCluster::Start(uint64_t floats, uint32_t shards,
                                         const std::string& transport,
                                         uint32_t threads,
                                         const std::string& extra_spec,
                                         bool curve,
                                         const std::string& metrics_listen) {
  BenchCluster c;
  auto dir = MakeTempDir();
  if (!dir.ok()) return dir.status();
  c.dir_ = *dir;
  const std::string spec_file = c.dir_ + "/bench.toml";
  // Round the tensor up to whole pages of floats; the figure uses the bytes
  // the driver sends, which match the tensor exactly.
  std::ofstream(spec_file) << "[model]\nname = \"bench\"\nstorage = \""
                           << c.dir_ << "\"\nblock_floats = 262144\n"
                           << "[optimizer]\nkind = \"sgd\"\nlr = 0.001\n"
                           << "[[tensor]]\nname = \"t\"\nshape = [" << floats
                           << "]\ninit = \"zeros\"\n"
                           << extra_spec;
  ClusterInfo info;
  info.model = "bench";
  std::vector<std::string> curve_args;
  if (curve) {
    auto server = GenerateCurveKeyPair();
    auto client = GenerateCurveKeyPair();
    if (!server.ok()) return server.status();
    if (!client.ok()) return client.status();
    SHARDPS_RETURN_IF_ERROR(WriteCurveKeyFiles(*server, c.dir_ + "/server"));
    SHARDPS_RETURN_IF_ERROR(WriteCurveKeyFiles(*client, c.dir_ + "/client"));
    std::ofstream(c.dir_ + "/authorized") << client->public_key << "\n";
    info.server_key = server->public_key;
    c.curve_key_ = c.dir_ + "/client";
    curve_args = {c.dir_ + "/server.key", c.dir_ + "/authorized"};
  }
  for (uint32_t i = 0; i < shards; ++i) {
    const std::string listen =
        transport == "ipc" ? "ipc://" + c.dir_ + "/shard-" + std::to_string(i)
                           : "tcp://127.0.0.1:*";
    std::vector<std::string> args = {"__server",
                                     spec_file,
                                     std::to_string(i),
                                     std::to_string(shards),
                                     listen,
                                     std::to_string(threads)};
    args.insert(args.end(), curve_args.begin(), curve_args.end());
    if (!metrics_listen.empty())
      args.push_back("--metrics-listen=" + metrics_listen);
    auto child = Child::Spawn(args);
    if (!child.ok()) return child.status();
    c.servers_.push_back(std::move(child).value());
    auto ep = AwaitEndpoint(c.servers_.back());
    if (!ep.ok()) return ep.status();
    if (!metrics_listen.empty()) {
      auto line = c.servers_.back().ReadLine(std::chrono::seconds(60));
      if (!line.ok()) return line.status().WithContext("metrics line");
      const std::string prefix = "metrics on ";
      if (line->compare(0, prefix.size(), prefix) != 0)
        return Status(Code::kInternal, "server said: " + *line);
      c.metrics_urls_.push_back(line->substr(prefix.size()));
    }
    info.shards.push_back({i, *ep,
                           c.dir_ + "/bench/shard-" + std::to_string(i) +
                               "-of-" + std::to_string(shards) + ".seg"});
  }
  c.cluster_file_ = c.dir_ + "/cluster.toml";
  SHARDPS_RETURN_IF_ERROR(SaveCluster(info, c.cluster_file_));
  return c;
}

Result<Sink> StartSink(const std::string& transport, const std::string& dir) {
  const std::string listen =
      transport == "ipc" ? "ipc://" + dir + "/raw-sink" : "tcp://127.0.0.1:*";
  auto child = Child::Spawn({"__raw-sink", listen});
  if (!child.ok()) return child.status();
  Sink s{std::move(child).value(), ""};
  auto ep = AwaitEndpoint(s.child);
  if (!ep.ok()) return ep.status();
  s.endpoint = *ep;
  return s;
}

BenchCluster::~BenchCluster() {
  for (Child& s : servers_) s.Stop();
  servers_.clear();
  if (!dir_.empty()) RemoveTree(dir_);
}

int RunBenchServer(const std::string& spec_file, uint32_t shard,
                   uint32_t shards, const std::string& listen, uint32_t threads,
                   const std::string& curve_secret_key,
                   const std::string& authorized_keys,
                   const std::string& metrics_listen) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto spec = LoadModelSpec(spec_file);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
    return 2;
  }
  ServerOptions options;
  options.spec = *spec;
  options.shard = shard;
  options.shards = shards;
  options.listen = listen;
  options.threads = threads;
  // The transport workload keeps up to 8 pulls of 64 MiB in flight from one
  // client: 512 MiB of replies that the default per-client budget (256 MiB,
  // a bound on what a slow reader can pin) would refuse with kBusy.
  options.max_reply_bytes_per_client = uint64_t{1} << 30;
  options.metrics_listen = metrics_listen;
  if (!curve_secret_key.empty()) {
    auto pair = LoadCurveSecretKey(curve_secret_key);
    auto keys = LoadAuthorizedKeys(authorized_keys);
    if (!pair.ok() || !keys.ok()) {
      std::fprintf(
          stderr, "%s\n",
          (!pair.ok() ? pair.status() : keys.status()).ToString().c_str());
      return 2;
    }
    options.curve_secret_key = pair->secret_key;
    options.authorized_keys = *keys;
  }
  auto server = ShardServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s\n", (*server)->endpoint().c_str());
  if (!metrics_listen.empty())
    std::printf("metrics on %s\n", (*server)->metrics_url().c_str());
  std::fflush(stdout);
  int sig;
  sigwait(&stop, &sig);
  (*server)->Stop();
  return 0;
}

}  // namespace shardps::bench
