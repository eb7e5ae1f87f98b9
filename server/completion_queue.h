// CompletionQueue: hands finished requests from pool threads to the frontend.
//
// Pool threads Push; the frontend polls fd() alongside its sockets (an
// eventfd, so no extra ZeroMQ socket per pool thread) and Drains. The eventfd
// is written only when the queue goes from empty to non-empty, so a burst of
// completions costs one wake-up.
//
// Thread-safety: Open before any other call; then Push from any thread and
// fd()/Drain from the frontend only.
#ifndef SHARDPS_SERVER_COMPLETION_QUEUE_H_
#define SHARDPS_SERVER_COMPLETION_QUEUE_H_

#include <vector>

#include "common/event_fd.h"
#include "common/mutex.h"

namespace shardps {

struct PendingUpdate;

class CompletionQueue {
 public:
  // Creates the eventfd; until then fd() is -1 and Push must not be called.
  // kIoError when the process has no descriptors left.
  Status Open();

  int fd() const { return event_.fd(); }
  void Push(PendingUpdate* done) EXCLUDES(mu_);
  // Moves every queued completion into `out` (cleared first).
  void Drain(std::vector<PendingUpdate*>* out) EXCLUDES(mu_);

 private:
  EventFd event_;
  Mutex mu_;
  std::vector<PendingUpdate*> queue_ GUARDED_BY(mu_);
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_COMPLETION_QUEUE_H_
