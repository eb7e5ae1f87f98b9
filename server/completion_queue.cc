#include "server/completion_queue.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace shardps {

namespace {

// EventFd::Create() reports a failure as a Status (common/event_fd.h). These
// default constructors cannot return one, so a failure aborts here, as it
// always did: it is a resource failure at start-up, never a reaction to a
// peer. Their owners (ShardServer, ZapHandler, Checkpointer) can move to the
// Status when they create the EventFds in their own factory functions.
EventFd MakeEventFdOrDie() {
  Result<EventFd> event = EventFd::Create();
  if (!event.ok()) {
    std::fprintf(stderr, "shardps: %s\n", event.status().ToString().c_str());
    std::abort();
  }
  return std::move(event).value();
}

}  // namespace

CompletionQueue::CompletionQueue() : event_(MakeEventFdOrDie()) {}

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

WakeEvent::WakeEvent() : event_(MakeEventFdOrDie()) {}
void WakeEvent::Signal() { event_.Signal(); }
void WakeEvent::Clear() { event_.Clear(); }

}  // namespace shardps
