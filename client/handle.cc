// Handle: the caller's side of a call's CallState.
#include "client/call_state.h"
#include "shardps/client.h"

namespace shardps {

using client_internal::CallState;

Status Handle::Wait() const {
  if (!state_) return Status(Code::kInvalidArgument, "empty handle");
  return state_->Wait();
}

Status Handle::WaitFor(std::chrono::milliseconds timeout) const {
  if (!state_) return Status(Code::kInvalidArgument, "empty handle");
  return state_->WaitUntil(CallState::Clock::now() + timeout);
}

bool Handle::Done() const { return !state_ || state_->Done(); }

std::vector<ShardOutcome> Handle::shard_outcomes() const {
  if (!state_) return {};
  return state_->outcomes();
}
}  // namespace shardps
