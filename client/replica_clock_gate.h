// ReplicaClockGate: in bsp, holds a worker's Clock() handle until this
// host's replica copies of the shards that are not on this host hold that
// clock's model, so a ModelView read after Clock().Wait() sees exactly it.
//
// Made by Connect when the cluster runs bsp, ClientOptions::replica_storage
// is set and some shard is not local; the Client keeps it for its lifetime
// and every Clock() call's gate holds a reference.
//
// Thread-safety: all methods are thread-safe; the gates it makes may run on
// several threads at once.
#ifndef SHARDPS_CLIENT_REPLICA_CLOCK_GATE_H_
#define SHARDPS_CLIENT_REPLICA_CLOCK_GATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "client/call_state.h"
#include "common/mutex.h"
#include "common/replica_state.h"
#include "shardps/status.h"

namespace shardps::client_internal {

class ReplicaClockGate : public std::enable_shared_from_this<ReplicaClockGate> {
 public:
  // The gate for the shards whose `local_segments` entry is empty (by
  // shard index), their copies under `storage`; nullptr when every shard is
  // local (nothing to wait for).
  static std::shared_ptr<ReplicaClockGate> ForRemoteShards(
      std::string storage, std::string model, uint64_t spec_hash,
      const std::vector<std::string>& local_segments);

  // The condition of the Clock() call that sent clock `clock`: every copy's
  // held_clock >= clock + 1 (held_clock counts like the shards'
  // applied_clock: clock c applied makes it c + 1). See CallState::Gate for
  // what it returns; kNotFound (final) when a copy's state file does not
  // exist, i.e. no replica ever ran here.
  CallState::Gate ForClock(int64_t clock);

 private:
  using States = std::vector<std::unique_ptr<ReplicaState>>;

  ReplicaClockGate(std::string storage, std::string model, uint64_t spec_hash,
                   uint32_t shards, std::vector<uint32_t> remote);
  // The state files of the remote shards, opened on first use and then
  // kept (a restarted replica rewrites the same file in place).
  Result<std::shared_ptr<const States>> Open() EXCLUDES(mu_);
  Status WaitAll(int64_t held_clock, CallState::Clock::time_point until);

  const std::string storage_;
  const std::string model_;
  const uint64_t spec_hash_;
  const uint32_t shards_;
  const std::vector<uint32_t> remote_;  // shard indices, ascending
  Mutex mu_;
  std::shared_ptr<const States> states_ GUARDED_BY(mu_);
};

}  // namespace shardps::client_internal

#endif  // SHARDPS_CLIENT_REPLICA_CLOCK_GATE_H_
