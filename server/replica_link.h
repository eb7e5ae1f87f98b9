// ReplicaLink: a host replica's connection to one shard, and the copy of
// that shard it keeps (see host_replica.h).
//
// States: Hello (is the shard on this host? is it our model?), then
// Subscribe, then streaming: each Block message is written into the copy
// under its seqlock and recorded in the freshness file; each Versions
// beacon updates what the shard has and, in bsp, the clock whose model is
// complete. A shard silent for `resubscribe_after` is asked again with the
// versions held, which also recovers from a shard restart.
//
// Thread-safety: the replica thread's object; Stats() is read under the
// owner's lock.
#ifndef SHARDPS_SERVER_REPLICA_LINK_H_
#define SHARDPS_SERVER_REPLICA_LINK_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/replica_state.h"
#include "common/segment.h"
#include "common/segment_id.h"
#include "common/wire.h"
#include "server/host_replica.h"

namespace shardps {

class ReplicaLink {
 public:
  ReplicaLink(zmq::context_t& context, const HostReplicaOptions& options,
              uint32_t shard);

  zmq::socket_t& socket() { return socket_; }
  // Handles every message waiting on the socket, then gives back credit.
  void Receive();
  // Sends Hello or Subscribe when due (start, silence, a refused request).
  void Tick(std::chrono::steady_clock::time_point now);

  const ReplicaShardStats& stats() const { return stats_; }
  // Why this shard is not mirrored (a fatal mismatch), or OK.
  const Status& error() const { return error_; }
  // Marks the copy as no longer served (replica stopping).
  void Close();

 private:
  enum class Phase { kHello, kSubscribe, kStreaming, kLocal, kFailed };

  void Send(wire::Op op, const zmq::message_t* payload);
  void OnReply(const wire::Reply& reply, std::vector<zmq::message_t>& frames);
  void OnHello(const wire::Reply& reply);
  void OnSubscribed(const wire::Reply& reply);
  // Opens (or reopens) the copy and its freshness file.
  Status OpenCopy();
  void OnBlock(const wire::ReplicaUpdate& u, const zmq::message_t& payload);
  void OnVersions(const wire::ReplicaUpdate& u, const zmq::message_t& payload);
  // bsp: held_clock moves to the pending clock once no block is missing.
  void SettleClock();
  zmq::message_t HeldVersions() const;
  void Fail(Status status);

  const HostReplicaOptions& options_;
  const uint32_t shard_;
  zmq::socket_t socket_;
  Phase phase_ = Phase::kHello;
  std::chrono::steady_clock::time_point last_heard_{};
  std::chrono::steady_clock::time_point last_sent_{};
  uint64_t next_request_ = 1;
  uint64_t awaiting_ = 0;  // request id of the Hello/Subscribe in flight
  std::unique_ptr<Segment> copy_;
  std::unique_ptr<ReplicaState> fresh_;
  // bsp: the newest announced clock not yet held, and its versions.
  int64_t pending_clock_ = -1;
  std::vector<uint64_t> pending_versions_;
  uint32_t missing_ = 0;  // blocks below pending_versions_
  uint32_t credit_owed_ = 0;
  HeaderScratch scratch_;
  ReplicaShardStats stats_;
  Status error_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_REPLICA_LINK_H_
