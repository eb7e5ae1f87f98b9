#include "common/event_fd.h"

#include <poll.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <thread>

namespace shardps {
namespace {

// Whether fd is readable, waiting at most `timeout_ms`.
bool Readable(int fd, int timeout_ms) {
  pollfd p = {fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

// Lowers the soft open-file limit for the scope of a test, restoring it even
// when the test fails.
class FdLimit {
 public:
  explicit FdLimit(rlim_t soft) {
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  }
  ~FdLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  FdLimit(const FdLimit&) = delete;
  FdLimit& operator=(const FdLimit&) = delete;

 private:
  rlimit saved_{};
};

TEST_CASE("event fd is readable after Signal until Clear", "[event_fd]") {
  Result<EventFd> event = EventFd::Create();
  REQUIRE(event.ok());
  CHECK_FALSE(Readable(event->fd(), 0));
  event->Signal();
  event->Signal();  // coalesces with the first
  CHECK(Readable(event->fd(), 0));
  event->Clear();
  CHECK_FALSE(Readable(event->fd(), 0));
  event->Clear();  // nothing pending: returns at once (non-blocking)
  CHECK_FALSE(Readable(event->fd(), 0));
}

TEST_CASE("event fd wakes a poll in another thread", "[event_fd]") {
  Result<EventFd> event = EventFd::Create();
  REQUIRE(event.ok());
  bool woke = false;
  std::thread poller([&] { woke = Readable(event->fd(), 10000); });
  event->Signal();
  poller.join();
  CHECK(woke);
}

TEST_CASE("event fd Signal leaves errno as it was", "[event_fd]") {
  // A signal handler calls Signal; the code it interrupted may be about to
  // read errno.
  Result<EventFd> event = EventFd::Create();
  REQUIRE(event.ok());
  errno = EDOM;
  event->Signal();
  CHECK(errno == EDOM);
}

TEST_CASE("event fd creation reports running out of descriptors",
          "[event_fd]") {
  Result<EventFd> event = [] {
    FdLimit limit(0);  // every new descriptor fails with EMFILE
    return EventFd::Create();
  }();
  REQUIRE_FALSE(event.ok());
  CHECK(event.status().code() == Code::kIoError);
  CHECK(event.status().message() == "eventfd: Too many open files");
}

}  // namespace
}  // namespace shardps
