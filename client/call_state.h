// CallState: the shared state behind a Handle.
//
// A call is done when every shard part has finished (reply, error or
// deadline) *and* ZeroMQ has released every zero-copy frame that borrowed the
// caller's buffer, so a caller may reuse its gradient buffer as soon as Wait
// returns, whatever the status. A call with a gate (SetGate) is done only
// once the gate passes too, or fails.
//
// Thread-safety: all methods are thread-safe. PartDone is called by the I/O
// thread, FrameReleased by ZeroMQ's own threads, Wait by user threads.
#ifndef SHARDPS_CLIENT_CALL_STATE_H_
#define SHARDPS_CLIENT_CALL_STATE_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "shardps/client.h"
#include "shardps/status.h"

namespace shardps::client_internal {

class CallState {
 public:
  using Clock = std::chrono::steady_clock;

  // `parts` shard replies are expected by `deadline`, which the I/O thread
  // enforces; Wait gives it a grace period on top so it never blocks forever
  // even if the I/O thread is wedged.
  CallState(int parts, Clock::time_point deadline);

  // Records one part's outcome; the first error becomes the call's status.
  void PartDone(const Status& status) EXCLUDES(mu_);
  // Push/PushPull parts: records which shard the part went to and whether
  // it was applied (see ShardOutcome). When some parts fail, the call's
  // status names the shards that applied it and those that did not.
  void PartDone(const Status& status, uint32_t shard, ShardOutcome::State state)
      EXCLUDES(mu_);

  // Makes this call report per-shard outcomes (Push/PushPull): `what` names
  // it in messages, e.g. "push of 'w'". REQUIRES: before submission.
  void ReportShards(std::string what) { what_ = std::move(what); }
  // Per-shard outcomes, sorted by shard; empty until done or when the call
  // does not report them.
  std::vector<ShardOutcome> outcomes() const EXCLUDES(mu_);
  void FrameHeld() EXCLUDES(mu_);
  void FrameReleased() EXCLUDES(mu_);

  // A condition a call must also meet, once every part succeeded, before
  // it is done (a bsp Clock: this host's replica holds the clock, see
  // ReplicaClockGate). Run without the call's lock by Wait, WaitUntil and
  // Done, possibly on several threads at once. Returns OK once met;
  // kTimeout while not met by `until` (an `until` already past checks
  // without blocking); any other error is final. A kTimeout at the call's
  // deadline is final too and becomes the call's status.
  using Gate = std::function<Status(Clock::time_point until)>;
  // REQUIRES: before submission.
  void SetGate(Gate gate) { gate_ = std::move(gate); }

  Status Wait() const EXCLUDES(mu_);
  Status WaitUntil(Clock::time_point until) const EXCLUDES(mu_);
  bool Done() const EXCLUDES(mu_);

  // The ZeroMQ free function for a borrowed frame; `hint` is a heap-allocated
  // std::shared_ptr<CallState> that this call takes ownership of.
  static void ReleaseFrame(void* data, void* hint);

  // Memory the call's frames borrow that the call itself owns (a narrowed
  // 16-bit copy of a gradient); freed with the call, after every frame.
  void KeepAlive(std::shared_ptr<const void> owned) {
    owned_ = std::move(owned);
  }

 private:
  bool DoneLocked() const REQUIRES(mu_) {
    return parts_left_ == 0 && frames_held_ == 0;
  }
  // Runs the gate until min(until, deadline_). True when its outcome is
  // final (then latched into gate_passed_/status_ and `*status` is the
  // call's status); false while it may still pass (`*status`: kTimeout).
  bool PassGate(Clock::time_point until, Status* status) const EXCLUDES(mu_);
  // The call's status from its parts' outcomes (what_ set, a part failed).
  Status SummaryLocked() const REQUIRES(mu_);
  // Adds one part's outcome to its shard's (parts of one shard merge).
  void RecordOutcomeLocked(const Status& status, uint32_t shard,
                           ShardOutcome::State state) REQUIRES(mu_);

  const Clock::time_point deadline_;
  // Not guarded: set before submission, then only read. The I/O thread
  // and ZeroMQ's threads see them through the submission (IoThread's mutex).
  std::shared_ptr<const void> owned_;
  std::string what_;
  Gate gate_;
  mutable Mutex mu_;
  mutable CondVar cv_;
  int parts_left_ GUARDED_BY(mu_);
  int frames_held_ GUARDED_BY(mu_) = 0;
  // The call's status; with a gate, set (mutable) once the gate decided.
  mutable Status status_ GUARDED_BY(mu_);
  mutable bool gate_passed_ GUARDED_BY(mu_) = false;  // gate outcome final
  std::vector<ShardOutcome> outcomes_ GUARDED_BY(mu_);
};

// The client library's one way to make a Handle of a call (Handle's
// constructor is private, so users cannot make one that no call completes).
class HandleAccess {
 public:
  static Handle Make(std::shared_ptr<CallState> state) {
    return Handle(std::move(state));
  }
};

}  // namespace shardps::client_internal

#endif  // SHARDPS_CLIENT_CALL_STATE_H_
