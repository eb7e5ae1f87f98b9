#include "server/completion_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace shardps {

namespace {

int MakeEventFd() {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    // Without an eventfd the process cannot run at all; this is a resource
    // failure at start-up, never a reaction to a peer.
    std::perror("eventfd");
    std::abort();
  }
  return fd;
}

void WriteOne(int fd) {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated, i.e. already signalled: fine.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof(one));
}

void ReadAll(int fd) {
  uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(fd, &value, sizeof(value));
}

}  // namespace

CompletionQueue::CompletionQueue() : event_(MakeEventFd()) {}

void CompletionQueue::Push(PendingUpdate* done) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_empty = queue_.empty();
    queue_.push_back(done);
  }
  if (was_empty) WriteOne(event_.get());
}

void CompletionQueue::Drain(std::vector<PendingUpdate*>* out) {
  out->clear();
  // Read the eventfd before taking the queue: a Push racing with us either
  // lands in this swap or re-signals the (now cleared) eventfd.
  ReadAll(event_.get());
  std::lock_guard<std::mutex> lock(mu_);
  out->swap(queue_);
}

WakeEvent::WakeEvent() : event_(MakeEventFd()) {}
void WakeEvent::Signal() { WriteOne(event_.get()); }
void WakeEvent::Clear() { ReadAll(event_.get()); }

}  // namespace shardps
