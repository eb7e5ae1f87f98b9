#include "common/event_fd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstdint>

namespace shardps {

Result<EventFd> EventFd::Create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return ErrnoStatus(Code::kIoError, "eventfd", errno);
  return EventFd(std::move(fd));
}

void EventFd::Signal() noexcept {
  // A signal handler must leave errno as the interrupted code had it.
  const int saved_errno = errno;
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = ::write(fd_.get(), &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  // EAGAIN: the counter is saturated, i.e. already signalled.
  assert(n == sizeof(one) || errno == EAGAIN);
  errno = saved_errno;
}

void EventFd::Clear() noexcept {
  uint64_t value;
  ssize_t n;
  do {
    n = ::read(fd_.get(), &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  // EAGAIN: nothing was signalled since the last Clear.
  assert(n == sizeof(value) || errno == EAGAIN);
  (void)n;
}

}  // namespace shardps
