// ReplicaState: how fresh a host replica's copy of one shard is, in a small
// shared file beside the replica's segment.
//
// A host replica (`shardps replica`, server/host_replica.h) keeps, per
// shard not on its host, a segment of the same layout as the shard's
// (Segment::OpenForServing with the same spec) and writes the blocks the
// shard streams to it under the segment's own seqlock versions. This file
// says, per block, which of the shard's versions that copy is, the newest
// version the shard has announced, and since when the copy is behind:
//
//   <storage>/<model>/shard-<i>-of-<n>.seg     the copy (ModelView maps it)
//   <storage>/<model>/shard-<i>-of-<n>.fresh   this file
//
// A shard's "version" of a block is its count of updates applied (the
// block's seqlock sequence / 2): it only grows while the shard's segment
// lives; a shard restored into a new segment (another identity) starts
// again, so every version is relative to `source_id`.
//
// One writer (the replica process, which also holds the segment's flock);
// any number of readers in other processes (ModelView, the client's bsp
// Clock). Every field is a lock-free atomic; readers must tolerate a field
// that changes between two loads (each field is meaningful on its own).
//
// Thread-safety: the accessors are safe from any thread and process.
#ifndef SHARDPS_COMMON_REPLICA_STATE_H_
#define SHARDPS_COMMON_REPLICA_STATE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/mapping.h"
#include "common/posix_file.h"
#include "common/segment_id.h"
#include "shardps/status.h"

namespace shardps {

inline constexpr char kReplicaStateMagic[8] = {'S', 'P', 'S', 'F',
                                               'R', 'E', 'S', 'H'};
inline constexpr uint32_t kReplicaStateFormatVersion = 1;

struct ReplicaStateHeader {
  // Fixed at creation.
  char magic[8];
  uint32_t format_version;
  uint32_t num_blocks;  // blocks of the shard (its segment's num_blocks)
  uint64_t spec_hash;
  uint32_t shard_index;
  uint32_t shard_count;

  // The identity of the shard segment the copy mirrors (both 0: none yet).
  // Versions below are that segment's.
  alignas(64) std::atomic<uint64_t> source_id_hi;
  std::atomic<uint64_t> source_id_lo;
  std::atomic<int32_t> replica_pid;  // the writer; 0 once it stopped
  std::atomic<uint32_t> reserved;
  // MonotonicNs() of the last message from the shard (0: never).
  std::atomic<int64_t> heard_ns;
  // bsp: the newest clock the shard announced as applied on all its blocks,
  // and the newest clock whose model every block of the copy holds (at
  // least that clock's version of each block); -1: none.
  std::atomic<int64_t> shard_applied_clock;
  std::atomic<int64_t> held_clock;
  // Bumped (common/futex.h) whenever held_clock or a block's held version
  // changes, so a waiter sleeps instead of polling.
  std::atomic<uint32_t> events;
};

struct BlockFreshness {
  std::atomic<uint64_t> held;    // the shard's version the copy holds; 0 none
  std::atomic<uint64_t> latest;  // newest version the shard announced
  // MonotonicNs() when the copy fell behind `latest` (0: not behind).
  std::atomic<int64_t> behind_since_ns;
  // MonotonicNs() when the held version arrived (0: never).
  std::atomic<int64_t> received_ns;
};

static_assert(std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<int64_t>::is_always_lock_free,
              "shared counters must be lock-free");

class ReplicaState {
 public:
  // "<storage>/<model>/shard-<shard>-of-<shards>.fresh"
  static std::string PathFor(const std::string& storage,
                             const std::string& model, uint32_t shard,
                             uint32_t shards);

  // The writer's open: creates the file (mode 0600) or reopens it when it
  // was made for the same spec hash, shard and block count (a restarted
  // replica keeps what it held). A file made for anything else is
  // recreated empty: the copy it described is gone with its segment.
  // REQUIRES: the caller holds the replica segment's flock (one writer).
  static Result<std::unique_ptr<ReplicaState>> OpenForWriting(
      const std::string& path, uint64_t spec_hash, uint32_t shard,
      uint32_t shards, uint32_t num_blocks);

  // A reader's open: read-only mapping after checking magic, format and
  // size. Errors: kNotFound (no replica ran here), kCorrupt.
  static Result<std::unique_ptr<ReplicaState>> OpenReadOnly(
      const std::string& path);

  ReplicaState(const ReplicaState&) = delete;
  ReplicaState& operator=(const ReplicaState&) = delete;

  const std::string& path() const { return path_; }
  ReplicaStateHeader& header() const { return *header_; }
  uint32_t num_blocks() const { return header_->num_blocks; }
  // REQUIRES: i < num_blocks().
  BlockFreshness& block(uint32_t i) const { return blocks_[i]; }

  SegmentId source() const;

  // Waits until held_clock >= `clock` or `deadline`: OK, or kTimeout whose
  // message says how far the copy got and whether the replica is running.
  Status WaitHeldClock(int64_t clock,
                       std::chrono::steady_clock::time_point deadline) const;

  // Whether the replica that writes this file is running: it holds the
  // exclusive flock of the copy beside it (<...>.seg). A reader's hint, for
  // messages and failover.
  bool WriterAlive() const;

 private:
  ReplicaState(std::string path, Mapping map);

  const std::string path_;
  Mapping map_;
  ReplicaStateHeader* header_;
  BlockFreshness* blocks_;
};

}  // namespace shardps

#endif  // SHARDPS_COMMON_REPLICA_STATE_H_
