#include "server/completion_queue.h"

#include <utility>

namespace shardps {

Status CompletionQueue::Open() {
  auto event = EventFd::Create();
  if (!event.ok()) return event.status();
  event_ = std::move(event).value();
  return Status::Ok();
}

void CompletionQueue::Push(PendingUpdate* done) {
  bool was_empty;
  {
    MutexLock lock(mu_);
    was_empty = queue_.empty();
    queue_.push_back(done);
  }
  if (was_empty) event_.Signal();
}

void CompletionQueue::Drain(std::vector<PendingUpdate*>* out) {
  out->clear();
  // Read the eventfd before taking the queue: a Push racing with us either
  // lands in this swap or re-signals the (now cleared) eventfd.
  event_.Clear();
  MutexLock lock(mu_);
  out->swap(queue_);
}

}  // namespace shardps
