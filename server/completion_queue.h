// CompletionQueue: hands finished requests from pool threads to the frontend.
//
// Pool threads Push; the frontend polls fd() alongside its sockets (an
// eventfd, so no extra ZeroMQ socket per pool thread) and Drains. The eventfd
// is written only when the queue goes from empty to non-empty, so a burst of
// completions costs one wake-up.
//
// Thread-safety: Push from any thread; fd()/Drain from the frontend only.
#ifndef SHARDPS_SERVER_COMPLETION_QUEUE_H_
#define SHARDPS_SERVER_COMPLETION_QUEUE_H_

#include <vector>

#include "common/event_fd.h"
#include "common/mutex.h"

namespace shardps {

struct PendingUpdate;

class CompletionQueue {
 public:
  CompletionQueue();  // aborts only if the kernel has no eventfds left

  int fd() const { return event_.fd(); }
  void Push(PendingUpdate* done) EXCLUDES(mu_);
  // Moves every queued completion into `out` (cleared first).
  void Drain(std::vector<PendingUpdate*>* out) EXCLUDES(mu_);

 private:
  EventFd event_;
  Mutex mu_;
  std::vector<PendingUpdate*> queue_ GUARDED_BY(mu_);
};

// An eventfd used to wake a poll loop from another thread or a signal handler
// (see common/event_fd.h for the error policy).
class WakeEvent {
 public:
  WakeEvent();  // aborts only if the kernel has no eventfds left
  int fd() const { return event_.fd(); }
  void Signal();  // async-signal-safe
  void Clear();

 private:
  EventFd event_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_COMPLETION_QUEUE_H_
