// HostReplica: the co-processor on a host without the shards. One process
// per host (`shardps replica`) keeps a copy of every dense block of every
// shard that is not on this host, streamed by the shards as their blocks
// change (server/replica_feed.h), so trainers here map the live model
// (ModelView::Open(client)) instead of pulling it.
//
// Per mirrored shard i it owns, under `storage`:
//   <storage>/<model>/shard-i-of-n.seg    a segment of the shard's layout
//                                         (same spec, same block order),
//                                         written under its seqlocks
//   <storage>/<model>/shard-i-of-n.fresh  per block: the shard version held,
//                                         the newest announced, since when
//                                         behind (common/replica_state.h)
// and holds the segment's flock, so a second replica for the same storage
// refuses to start and readers can tell a live replica from a dead one.
//
// A replica that restarts reopens its copies and subscribes with the
// versions it holds: only what changed since travels. A block its crash
// left mid-write stays odd (torn to a seqlock reader) until the shard sends
// it again. Sparse tables are not mirrored: rows are read with PullRows.
//
// Thread-safety: Start and Stop from one thread; the stream runs on the
// replica's own thread.
#ifndef SHARDPS_SERVER_HOST_REPLICA_H_
#define SHARDPS_SERVER_HOST_REPLICA_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shardps/cluster.h"
#include "shardps/model_spec.h"
#include "shardps/status.h"

namespace shardps {

struct HostReplicaOptions {
  ClusterInfo cluster;
  ModelSpec spec;  // the servers' spec (validated): fixes the copies' layout
  std::string storage = "/dev/shm/shardps-replica";
  // Mirror shards whose segment is on this host too (normally they are
  // mapped directly): for single-host tests and benchmarks.
  bool all_shards = false;
  // Stream messages in flight per shard (ReplicaFeed caps it at 16).
  uint32_t credits = 8;
  // CURVE, as a client (ClientOptions' fields): the server key defaults to
  // the cluster file's.
  std::string curve_server_key;
  std::string curve_public_key;
  std::string curve_secret_key;
  // A shard silent this long is asked again (Subscribe with the versions
  // held): it may have restarted and forgotten the subscription.
  std::chrono::milliseconds resubscribe_after{1000};
};

// Counters of one mirrored shard, for `shardps replica` logs and tests.
struct ReplicaShardStats {
  uint32_t shard = 0;
  bool local = false;       // the shard's segment is on this host: not copied
  bool mirrored = false;    // its copy is open here
  bool subscribed = false;  // the shard answered the last Subscribe
  uint64_t blocks_received = 0;
  uint64_t bytes_received = 0;
  uint64_t subscribes = 0;  // Subscribe requests sent (1 + re-subscribes)
  int64_t held_clock = -1;
};

class HostReplica {
 public:
  // Checks the options and starts the stream thread. The copies are opened
  // as each shard first answers (its Hello says whether it is local).
  // Errors: kInvalidArgument for bad options or CURVE keys.
  static Result<std::unique_ptr<HostReplica>> Start(HostReplicaOptions options);
  ~HostReplica();
  HostReplica(const HostReplica&) = delete;
  HostReplica& operator=(const HostReplica&) = delete;

  // Stops the thread and marks the copies as not served (pid 0). Idempotent.
  void Stop();

  // Per shard, by index. Thread-safe (a snapshot).
  std::vector<ReplicaShardStats> Stats() const;
  // The first error that stopped a shard's mirror (kSpecMismatch, kBusy on
  // a copy another replica holds, kIoError), or OK.
  Status error() const;

  class Impl;

 private:
  explicit HostReplica(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_HOST_REPLICA_H_
