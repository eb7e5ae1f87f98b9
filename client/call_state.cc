#include "client/call_state.h"

#include <memory>

namespace shardps::client_internal {

namespace {
// Extra time Wait allows past the request deadline for the I/O thread to
// notice it and for ZeroMQ to release borrowed frames after a reset.
constexpr std::chrono::seconds kWaitGrace{5};
}  // namespace

CallState::CallState(int parts, Clock::time_point deadline)
    : deadline_(deadline), parts_left_(parts) {}

void CallState::PartDone(const Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (parts_left_ == 0) return;  // already failed as a whole
  if (!status.ok() && status_.ok()) status_ = status;
  --parts_left_;
  if (DoneLocked()) cv_.notify_all();
}

void CallState::FrameHeld() {
  std::lock_guard<std::mutex> lock(mu_);
  ++frames_held_;
}

void CallState::FrameReleased() {
  std::lock_guard<std::mutex> lock(mu_);
  --frames_held_;
  if (DoneLocked()) cv_.notify_all();
}

Status CallState::Wait() const { return WaitUntil(deadline_ + kWaitGrace); }

Status CallState::WaitUntil(Clock::time_point until) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, until, [this] { return DoneLocked(); }))
    return Status(Code::kTimeout, "call still running");
  return status_;
}

bool CallState::Done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return DoneLocked();
}

void CallState::ReleaseFrame(void* /*data*/, void* hint) {
  std::unique_ptr<std::shared_ptr<CallState>> owner(
      static_cast<std::shared_ptr<CallState>*>(hint));
  (*owner)->FrameReleased();
}

}  // namespace shardps::client_internal
