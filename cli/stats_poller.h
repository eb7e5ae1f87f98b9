// StatsPoller: asks every shard of a cluster for its Stats, each on its own,
// so one shard that is down does not hide the others (Client::Stats fails
// as a whole). `shardps top` samples a cluster with it.
//
// It keeps one DEALER socket per shard for its lifetime; ZeroMQ reconnects
// a socket whose shard went away, so a shard that comes back answers the
// next Poll. No Hello is sent: the poller is not a worker and claims
// nothing on the shards (each shard counts it as one connected client).
//
// Thread-safety: one thread uses a poller (it owns ZeroMQ sockets).
#ifndef SHARDPS_CLI_STATS_POLLER_H_
#define SHARDPS_CLI_STATS_POLLER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/wire.h"
#include "shardps/cluster.h"
#include "shardps/shard_stats.h"
#include "shardps/status.h"

namespace shardps::cli {

// One shard's answer to one Poll.
struct ShardSample {
  uint32_t shard = 0;
  std::string endpoint;
  Status status;     // OK: `stats` holds the shard's counters
  ShardStats stats;  // endpoint filled in
};

// CURVE keys of the poller's connections (all empty: plain connections).
struct PollerKeys {
  std::string server_key;  // the servers' public key (Z85)
  std::string public_key;  // this client's pair (Z85)
  std::string secret_key;
};

class StatsPoller {
 public:
  // Connects (lazily, as ZeroMQ does) to every shard of `cluster`. With no
  // keys.server_key, the cluster's server_key is used. kInvalidArgument for
  // an incomplete or malformed set of CURVE keys (docs/security.md).
  static Result<std::unique_ptr<StatsPoller>> Create(const ClusterInfo& cluster,
                                                     PollerKeys keys);
  ~StatsPoller();
  StatsPoller(const StatsPoller&) = delete;
  StatsPoller& operator=(const StatsPoller&) = delete;

  // Sends Stats to every shard and waits up to `timeout` for the answers;
  // returns once every shard answered, at the timeout, or early when
  // `wake_fd` (>= 0: a file descriptor, e.g. a signal pipe) turns readable.
  // One sample per shard, in shard order. A shard that is not connected
  // gets kUnavailable, one that does not answer in time kTimeout, one that
  // answers with an error that error (ShardSample::endpoint says where);
  // the call itself does not fail.
  std::vector<ShardSample> Poll(std::chrono::milliseconds timeout,
                                int wake_fd = -1);

 private:
  struct Link {
    uint32_t shard;
    std::string endpoint;
    std::unique_ptr<zmq::socket_t> socket;
  };
  StatsPoller(const ClusterInfo& cluster, const PollerKeys& keys);
  // Reads every reply waiting on `link`; a reply to `request_id` fills
  // `sample` and returns true.
  bool Receive(Link& link, uint64_t request_id, ShardSample* sample);

  const std::string model_;
  const uint64_t client_id_;
  zmq::context_t context_;
  std::vector<Link> links_;
  uint64_t next_request_id_ = 1;
  HeaderScratch scratch_;
};

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_STATS_POLLER_H_
