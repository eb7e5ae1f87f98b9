#include "client/call_state.h"

#include <algorithm>
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
  MutexLock lock(mu_);
  if (parts_left_ == 0) return;  // already failed as a whole
  if (!status.ok() && status_.ok()) status_ = status;
  --parts_left_;
  if (DoneLocked()) cv_.NotifyAll();
}

void CallState::PartDone(const Status& status, uint32_t shard,
                         ShardOutcome::State state) {
  MutexLock lock(mu_);
  if (parts_left_ == 0) return;
  if (!status.ok() && status_.ok()) status_ = status;
  if (!what_.empty()) RecordOutcomeLocked(status, shard, state);
  if (--parts_left_ == 0 && !what_.empty() && !status_.ok() &&
      outcomes_.size() > 1)
    status_ = SummaryLocked();
  if (DoneLocked()) cv_.NotifyAll();
}

void CallState::RecordOutcomeLocked(const Status& status, uint32_t shard,
                                    ShardOutcome::State state) {
  // A shard's share may travel as several messages (blocks_per_message):
  // one outcome per shard, kUnknown when its messages ended differently
  // (some applied, some not), with the first error among them.
  for (ShardOutcome& o : outcomes_) {
    if (o.shard != shard) continue;
    if (o.state != state) o.state = ShardOutcome::State::kUnknown;
    if (o.status.ok() && !status.ok()) o.status = status;
    return;
  }
  outcomes_.push_back({shard, state, status});
}

Status CallState::SummaryLocked() const {
  std::vector<ShardOutcome> sorted = outcomes_;
  std::sort(sorted.begin(), sorted.end(),
            [](const ShardOutcome& a, const ShardOutcome& b) {
              return a.shard < b.shard;
            });
  // "shard 1" or "shards 0, 2", and the first status among them.
  auto list = [&sorted](ShardOutcome::State state, Status* first) {
    std::string names;
    size_t n = 0;
    for (const ShardOutcome& o : sorted) {
      if (o.state != state) continue;
      if (n++ == 0 && first != nullptr) *first = o.status;
      names += (names.empty() ? "" : ", ") + std::to_string(o.shard);
    }
    return n == 0 ? std::string() : (n == 1 ? "shard " : "shards ") + names;
  };
  Status not_applied_status, unknown_status;
  const std::string not_applied =
      list(ShardOutcome::State::kNotApplied, &not_applied_status);
  const std::string unknown =
      list(ShardOutcome::State::kUnknown, &unknown_status);
  const std::string applied = list(ShardOutcome::State::kApplied, nullptr);
  std::string message = what_;
  if (!not_applied.empty())
    message += " not applied on " + not_applied + " (" +
               not_applied_status.ToString() + ");";
  if (!unknown.empty())
    message += " maybe applied on " + unknown + " (" +
               unknown_status.ToString() + ");";
  if (applied.empty()) {
    message += " applied on no shard";
  } else {
    message += " applied on " + applied +
               "; retrying the whole push may apply it twice there";
  }
  return Status(status_.code(), message);
}

std::vector<ShardOutcome> CallState::outcomes() const {
  MutexLock lock(mu_);
  if (!DoneLocked()) return {};
  std::vector<ShardOutcome> sorted = outcomes_;
  std::sort(sorted.begin(), sorted.end(),
            [](const ShardOutcome& a, const ShardOutcome& b) {
              return a.shard < b.shard;
            });
  return sorted;
}

void CallState::FrameHeld() {
  MutexLock lock(mu_);
  ++frames_held_;
}

void CallState::FrameReleased() {
  MutexLock lock(mu_);
  --frames_held_;
  if (DoneLocked()) cv_.NotifyAll();
}

Status CallState::Wait() const { return WaitUntil(deadline_ + kWaitGrace); }

Status CallState::WaitUntil(Clock::time_point until) const {
  {
    MutexLock lock(mu_);
    while (!DoneLocked()) {
      if (!cv_.WaitUntil(mu_, until) && !DoneLocked())
        return Status(Code::kTimeout, "call still running");
    }
    if (!gate_ || gate_passed_ || !status_.ok()) return status_;
  }
  Status status;
  PassGate(until, &status);
  return status;
}

bool CallState::Done() const {
  {
    MutexLock lock(mu_);
    if (!DoneLocked()) return false;
    if (!gate_ || gate_passed_ || !status_.ok()) return true;
  }
  Status ignored;
  return PassGate(Clock::time_point::min(), &ignored);
}

bool CallState::PassGate(Clock::time_point until, Status* status) const {
  // The gate gets no more than the call's own deadline: a replica that
  // never catches up fails the call then, with the gate's reason.
  const Clock::time_point limit = std::min(until, deadline_);
  Status gate = gate_(limit);
  if (gate.code() == Code::kTimeout && limit < deadline_ &&
      Clock::now() < deadline_) {
    *status =
        Status(Code::kTimeout, "call still running (" + gate.message() + ")");
    return false;
  }
  MutexLock lock(mu_);
  if (!gate_passed_) {  // the first thread to decide decides for all
    gate_passed_ = true;
    status_ = std::move(gate);
  }
  *status = status_;
  return true;
}

void CallState::ReleaseFrame(void* /*data*/, void* hint) {
  std::unique_ptr<std::shared_ptr<CallState>> owner(
      static_cast<std::shared_ptr<CallState>*>(hint));
  (*owner)->FrameReleased();
}

}  // namespace shardps::client_internal
