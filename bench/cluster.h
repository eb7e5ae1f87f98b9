// A throw-away local cluster for one benchmark: a spec file, S shard server
// processes (copies of shardps-bench in the server role) and a cluster file,
// all under one temporary directory on /dev/shm that is removed afterwards.
#ifndef SHARDPS_BENCH_CLUSTER_H_
#define SHARDPS_BENCH_CLUSTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "bench/child.h"
#include "shardps/status.h"

namespace shardps::bench {

class BenchCluster {
 public:
  // One tensor "t" of `floats` floats, SGD, 1 MiB blocks. `transport` is
  // "tcp" or "ipc".
  // `extra_spec` is appended to the spec (e.g. a [[table]]).
  // `curve`: the servers run with CURVE (fresh keys in the cluster's
  // directory) and curve_key() names the one client key they accept.
  // `metrics_listen` (ServerOptions::metrics_listen, e.g. "0" for a free
  // loopback port): each server serves /metrics and metrics_urls() names
  // them; empty: no endpoint.
  static Result<BenchCluster> Start(uint64_t floats, uint32_t shards,
                                    const std::string& transport,
                                    uint32_t threads = 1,
                                    const std::string& extra_spec = "",
                                    bool curve = false,
                                    const std::string& metrics_listen = "");
  BenchCluster() = default;
  BenchCluster(BenchCluster&&) = default;
  BenchCluster& operator=(BenchCluster&&) = default;
  ~BenchCluster();

  const std::string& cluster_file() const { return cluster_file_; }
  const std::string& dir() const { return dir_; }
  // Prefix of the authorized client key (PREFIX.key); empty without CURVE.
  const std::string& curve_key() const { return curve_key_; }
  // http://HOST:PORT/metrics of each shard; empty without metrics_listen.
  const std::vector<std::string>& metrics_urls() const { return metrics_urls_; }

 private:
  std::string dir_;
  std::string cluster_file_;
  std::string curve_key_;
  std::vector<std::string> metrics_urls_;
  std::vector<Child> servers_;
};

// A raw ZeroMQ sink (the ceilings' server) in its own process.
struct Sink {
  Child child;
  std::string endpoint;
};
// `dir` holds the ipc socket when `transport` is "ipc".
Result<Sink> StartSink(const std::string& transport, const std::string& dir);

// A fresh directory under /dev/shm (or $TMPDIR) for segments and sockets.
Result<std::string> MakeTempDir();
void RemoveTree(const std::string& dir);

// The server role: runs a ShardServer until SIGTERM, with CURVE when
// `curve_secret_key` (a .key file) is non-empty. Prints "listening on EP",
// then "metrics on URL" when `metrics_listen` is non-empty.
int RunBenchServer(const std::string& spec_file, uint32_t shard,
                   uint32_t shards, const std::string& listen, uint32_t threads,
                   const std::string& curve_secret_key = "",
                   const std::string& authorized_keys = "",
                   const std::string& metrics_listen = "");

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_CLUSTER_H_
