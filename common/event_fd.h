// EventFd: a Linux eventfd that wakes a poll loop (zmq_poll, poll) from
// another thread or from a signal handler.
//
// Error policy, the same for every user:
// * Creating one can fail (EMFILE, ENFILE, ENOMEM: the process or the system
//   is out of descriptors). That is a Status from Create(), reported by the
//   caller's own start-up (a server's Create, a client's Connect): a library
//   must not abort the process it is linked into, and a peer can never cause
//   it.
// * Signal() and Clear() cannot fail in a way a caller could act on: on a
//   valid eventfd, write returns EAGAIN only when the counter is saturated
//   (it is already signalled) and read returns EAGAIN only when nothing was
//   signalled. Both are therefore void; any other result would be a bug in
//   the owner (a closed fd) and is caught by the assert in debug builds.
//
// Thread-safety: Signal from any thread or signal handler; Clear and fd()
// from the one thread that polls. Moving is not thread-safe.
#ifndef SHARDPS_COMMON_EVENT_FD_H_
#define SHARDPS_COMMON_EVENT_FD_H_

#include "common/posix_file.h"
#include "shardps/status.h"

namespace shardps {

class EventFd {
 public:
  // A non-blocking, close-on-exec eventfd with counter 0. kIoError naming
  // the errno when the kernel gives none.
  static Result<EventFd> Create();

  // Empty: no descriptor (fd() is -1) until a Create()d one is moved in.
  // Lets an owner hold one as a plain member and create it in its own
  // factory or Start, where a failure can be returned as a Status. Signal
  // and Clear must not be called on an empty EventFd.
  EventFd() = default;
  bool valid() const { return fd_.valid(); }

  EventFd(EventFd&&) noexcept = default;
  EventFd& operator=(EventFd&&) noexcept = default;

  // The descriptor to poll for POLLIN; owned by this object.
  int fd() const { return fd_.get(); }

  // Makes fd() readable. Async-signal-safe (one write(2)).
  void Signal() noexcept;

  // Makes fd() unreadable again, consuming every Signal so far. A Signal
  // racing with Clear either is consumed by it or leaves fd() readable.
  void Clear() noexcept;

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace shardps

#endif  // SHARDPS_COMMON_EVENT_FD_H_
