#include "common/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>

namespace shardps {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(int) &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "a futex word must be a plain lock-free 32-bit int");

namespace {

// std::atomic<uint32_t> is a plain 32-bit word (asserted above), as the
// futex call needs.
int* Word(std::atomic<uint32_t>& word) { return reinterpret_cast<int*>(&word); }

}  // namespace

void FutexWait(std::atomic<uint32_t>& word, uint32_t seen,
               std::chrono::nanoseconds timeout) {
  if (timeout <= std::chrono::nanoseconds::zero()) return;
  const int64_t ns = timeout.count();
  timespec ts{static_cast<time_t>(ns / 1000000000),
              static_cast<long>(ns % 1000000000)};
  // Shared (not FUTEX_PRIVATE): waiters and wakers are other processes.
  syscall(SYS_futex, Word(word), FUTEX_WAIT, static_cast<int>(seen), &ts,
          nullptr, 0);
}

void FutexBump(std::atomic<uint32_t>& word) {
  word.fetch_add(1, std::memory_order_release);
  syscall(SYS_futex, Word(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace shardps
