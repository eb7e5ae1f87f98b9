#include "client/replica_clock_gate.h"

#include <utility>

#include "common/hex.h"

namespace shardps::client_internal {

std::shared_ptr<ReplicaClockGate> ReplicaClockGate::ForRemoteShards(
    std::string storage, std::string model, uint64_t spec_hash,
    const std::vector<std::string>& local_segments) {
  std::vector<uint32_t> remote;
  for (uint32_t i = 0; i < local_segments.size(); ++i)
    if (local_segments[i].empty()) remote.push_back(i);
  if (remote.empty()) return nullptr;
  return std::shared_ptr<ReplicaClockGate>(new ReplicaClockGate(
      std::move(storage), std::move(model), spec_hash,
      static_cast<uint32_t>(local_segments.size()), std::move(remote)));
}

ReplicaClockGate::ReplicaClockGate(std::string storage, std::string model,
                                   uint64_t spec_hash, uint32_t shards,
                                   std::vector<uint32_t> remote)
    : storage_(std::move(storage)),
      model_(std::move(model)),
      spec_hash_(spec_hash),
      shards_(shards),
      remote_(std::move(remote)) {}

CallState::Gate ReplicaClockGate::ForClock(int64_t clock) {
  return [self = shared_from_this(),
          held = clock + 1](CallState::Clock::time_point until) {
    return self->WaitAll(held, until);
  };
}

Result<std::shared_ptr<const ReplicaClockGate::States>>
ReplicaClockGate::Open() {
  MutexLock lock(mu_);
  if (states_) return states_;
  auto states = std::make_shared<States>();
  for (uint32_t shard : remote_) {
    const std::string path =
        ReplicaState::PathFor(storage_, model_, shard, shards_);
    auto state = ReplicaState::OpenReadOnly(path);
    if (!state.ok() && state.status().code() == Code::kNotFound)
      return Status::NotFound(
          "shard " + std::to_string(shard) + " is not on this host and " +
          path +
          " does not exist: no host replica ever ran here for "
          "ClientOptions::replica_storage " +
          storage_ + "; run `shardps replica --cluster C --spec S --storage " +
          storage_ + "` on this host (the clock was sent to the shards)");
    if (!state.ok()) return state.status();
    const ReplicaStateHeader& h = (*state)->header();
    if (h.spec_hash != spec_hash_ || h.shard_index != shard ||
        h.shard_count != shards_)
      return Status::SpecMismatch(
          path + " describes shard " + std::to_string(h.shard_index) + " of " +
          std::to_string(h.shard_count) + " spec " + Hex(h.spec_hash) +
          ", the cluster serves shard " + std::to_string(shard) + " of " +
          std::to_string(shards_) + " spec " + Hex(spec_hash_));
    states->push_back(std::move(state).value());
  }
  states_ = std::move(states);
  return states_;
}

Status ReplicaClockGate::WaitAll(int64_t held_clock,
                                 CallState::Clock::time_point until) {
  auto states = Open();
  if (!states.ok()) return states.status();
  // One deadline for all: waiting for one copy lets the others catch up.
  for (const auto& state : **states)
    SHARDPS_RETURN_IF_ERROR(state->WaitHeldClock(held_clock, until));
  return Status::Ok();
}

}  // namespace shardps::client_internal
