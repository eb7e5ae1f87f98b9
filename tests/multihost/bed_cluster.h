// Shards of one model spread over the hosts of a HostBed, CURVE on, each
// bound to its host's address (the bind policy refuses plain non-loopback
// binds), with segments on its host's private /dev/shm.
//
// Keys, spec, authorized keys and cluster files live in the bed's shared
// directory, which every host sees (a shared mount on real machines).
//
// Thread-safety: none; use from the test thread.
#ifndef SHARDPS_TESTS_MULTIHOST_BED_CLUSTER_H_
#define SHARDPS_TESTS_MULTIHOST_BED_CLUSTER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shardps/client.h"
#include "shardps/cluster.h"
#include "tests/integration/harness.h"
#include "tests/multihost/host_bed.h"

namespace shardps::testing {

// Each host's storage, on its own tmpfs.
inline constexpr const char* kHostStorage = "/dev/shm/shardps";
// Every host has its own ports: one fixed port per shard process on a host.
inline constexpr int kBasePort = 5555;

class BedCluster {
 public:
  // Writes keys (shardps keygen), the authorized keys and `spec_text` to the
  // bed's shared directory. Fails the test (REQUIRE) on error.
  BedCluster(HostBed& bed, const std::string& spec_text);

  // Starts `shardps serve` for shard `shard` of `shards` on `host`, bound to
  // tcp://<host address>:<port>, with `extra` flags, and waits for it to
  // listen, with segments under `storage` (on the host). Records it in info()
  // (replacing the shard's earlier entry). Fails the test with the server's
  // stderr when it does not start.
  void Serve(uint32_t shard, uint32_t shards, const std::string& host,
             int port = kBasePort, const std::vector<std::string>& extra = {},
             const std::string& storage = kHostStorage);

  // Writes info() as a cluster file in the shared directory; returns its
  // path.
  std::string WriteClusterFile(const std::string& name = "cluster.toml");

  // A client in the test process, reaching the hosts through the bed's
  // bridge, with the "client" key pair.
  std::unique_ptr<Client> Connect(const std::string& cluster_file,
                                  int timeout_ms = 15000) const;
  ClientOptions KeyedOptions(int timeout_ms) const;

  ChildProcess& server(uint32_t shard) { return *servers_.at(shard); }
  const std::string& host_of(uint32_t shard) const { return hosts_.at(shard); }
  const ClusterInfo& info() const { return info_; }
  const std::string& spec() const { return spec_; }
  // The client key pair's prefix (for --curve-key) and the servers' public
  // key file (for --server-key).
  std::string client_key() const { return bed_.SharedDir() + "/client"; }
  std::string server_pub() const { return bed_.SharedDir() + "/server.pub"; }
  // The `serve` flags that turn CURVE on.
  std::vector<std::string> CurveServeFlags() const;

 private:
  HostBed& bed_;
  std::string spec_;
  ClusterInfo info_;
  std::map<uint32_t, std::unique_ptr<ChildProcess>> servers_;
  std::map<uint32_t, std::string> hosts_;
  std::vector<std::unique_ptr<ChildProcess>> retired_;  // killed, kept reaped
};

// The worker of WorkerArgv(args), started on `host`.
Result<WorkerProcess> StartWorkerOn(const HostBed& bed, const std::string& host,
                                    const WorkerArgs& args);

}  // namespace shardps::testing

// Declares `std::unique_ptr<HostBed> bed` with `hosts` hosts, or prints
// "SKIPPED: ..." (Catch2 v2 has no SKIP) and returns from the test case when
// the machine cannot run a bed. Any other failure fails the test.
#define SHARDPS_REQUIRE_BED(bed, hosts, options)                         \
  auto bed##_made = ::shardps::testing::HostBed::Create(hosts, options); \
  if (!bed##_made.ok() &&                                                \
      bed##_made.status().code() == ::shardps::Code::kUnavailable) {     \
    WARN(::shardps::testing::SkipMessage(bed##_made.status()));          \
    return;                                                              \
  }                                                                      \
  INFO(bed##_made.status().ToString());                                  \
  REQUIRE(bed##_made.ok());                                              \
  std::unique_ptr<::shardps::testing::HostBed> bed =                     \
      std::move(bed##_made).value()

#endif  // SHARDPS_TESTS_MULTIHOST_BED_CLUSTER_H_
