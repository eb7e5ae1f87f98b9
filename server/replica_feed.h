// ReplicaFeed: the shard's side of its stream to host replicas.
//
// A host replica subscribes with the versions it holds; from then on the
// shard owes it every block whose version differs, and sends each as soon
// as the replica has credit for it (docs/multihost.md):
//
//   * Coalescing, not queueing: what a subscriber is owed is a dirty bit
//     per block, never a list of versions, so a block updated ten times
//     while the replica is busy travels once, at its newest version.
//     Memory per subscriber is one byte and one version per block,
//     whatever the push rate; the feed keeps at most 16 block copies,
//     shared by every subscriber.
//   * Credit: at most `credits` stream messages are in flight to one
//     replica (it returns them with Credit as it consumes them), so a slow
//     or stuck replica fills no socket queue and slows no trainer; it only
//     falls behind, which its freshness file shows.
//   * Versions beacons (every block's version, the bsp applied clock) go
//     out on subscribe, after every bsp apply and, while blocks change, at
//     most every kBeaconInterval; they tell a replica what it lacks and
//     when a clock's model is complete.
//
// Thread-safety: the frontend thread's object, like the socket it sends on.
#ifndef SHARDPS_SERVER_REPLICA_FEED_H_
#define SHARDPS_SERVER_REPLICA_FEED_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/segment.h"
#include "common/wire.h"
#include "shardps/status.h"

namespace shardps {

class ReplicaFeed {
 public:
  // Most replicas one shard streams to (one per host), and most messages
  // in flight to one. Both bound the shard's memory: ZeroMQ holds at most
  // kMaxSubscribers * kMaxCredits references to block copies.
  static constexpr uint32_t kMaxSubscribers = 64;
  static constexpr uint32_t kMaxCredits = 16;

  // Sends one stream message: [identity, header, payload]. Returns false
  // when the peer is gone; the feed then drops the subscriber.
  using Send = std::function<bool(const std::string& identity,
                                  flatbuffers::FlatBufferBuilder& header,
                                  zmq::message_t& payload)>;

  // `segment` outlives the feed; its blocks are read under their seqlocks.
  ReplicaFeed(const Segment& segment, Send send);

  // A Subscribe (or a re-subscribe by the same peer, which replaces its
  // state): `held` is the request's payload frame, or null. Blocks whose
  // held version differs from the shard's become owed; a replica holding
  // another segment's versions (`held_id` != the served identity) is owed
  // everything. kInvalidArgument for a payload of the wrong size or zero
  // credits; kResourceExhausted past kMaxSubscribers. The caller replies
  // before calling Pump, so the reply precedes the stream.
  Status Subscribe(const std::string& identity, const wire::Request& req,
                   const zmq::message_t* held);
  // Credit from a subscriber (unknown peers are ignored: a replica whose
  // subscription was dropped re-subscribes on its own).
  void Credit(const std::string& identity, uint32_t credits);

  // The block (local index) has a new version: owed to every subscriber.
  void Changed(uint32_t local_block);
  // bsp: clock `applied_clock` is applied on every block (all changed).
  void ClockApplied(int64_t applied_clock);

  // Sends what credit allows to every subscriber.
  void Pump();

  size_t subscribers() const { return subs_.size(); }
  // Block messages sent, summed over subscribers (for Stats and benches).
  uint64_t blocks_sent() const { return blocks_sent_; }
  uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  struct Subscriber {
    uint32_t credits = 0;
    uint32_t window = 0;
    std::vector<uint8_t> owed;  // per local block: 1 = send its newest
    // Per local block: the version it holds (sent, or held at subscribe);
    // an owed block still at that version is skipped, not sent again.
    std::vector<uint64_t> sent;
    uint32_t owed_count = 0;
    uint32_t cursor = 0;  // next block to look at, round robin
    bool beacon_due = true;
    int64_t heard_ns = 0;  // MonotonicNs() of its last Subscribe or Credit
  };
  enum class Sent { kSent, kNotNow, kGone };

  uint64_t VersionOf(uint32_t local_block) const;
  // Sends subscriber `s` its next message, if it is owed one.
  Sent SendNext(const std::string& identity, Subscriber& s);
  Sent SendBeacon(const std::string& identity, Subscriber& s);
  Sent SendBlock(const std::string& identity, Subscriber& s, uint32_t local);
  // Forgets subscribers silent for longer than kSilentNs: a live replica
  // speaks at least every second (credit, or a re-subscribe when idle), so
  // these are replicas that died or reconnected under another identity.
  void ForgetSilent();
  // A consistent copy of a block, into a new message.
  Status CopyOf(uint32_t local_block, zmq::message_t* out, uint64_t* version);
  // The cached copy of a block at its current version, made if needed.
  // Replicas mostly walk the blocks in the same order, so the few latest
  // copies serve every subscriber: one memcpy per block version, not one
  // per replica (ZeroMQ reference-counts the shared buffer). Null when the
  // block stayed mid-update (a bug; the caller retries later).
  const std::pair<zmq::message_t, uint64_t>* CachedCopy(uint32_t local_block);

  const Segment& segment_;
  const Send send_;
  std::map<std::string, Subscriber> subs_;
  flatbuffers::FlatBufferBuilder builder_{256};
  int64_t applied_clock_ = -1;
  int64_t last_beacon_ns_ = 0;
  // Recent block copies (local block -> message, version), at most
  // kCachedCopies blocks; `order_` lists them, least recently copied first.
  static constexpr size_t kCachedCopies = 16;
  std::map<uint32_t, std::pair<zmq::message_t, uint64_t>> copies_;
  std::deque<uint32_t> order_;
  uint64_t blocks_sent_ = 0, bytes_sent_ = 0;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_REPLICA_FEED_H_
