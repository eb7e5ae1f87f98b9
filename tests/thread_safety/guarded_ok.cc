// Must compile under clang -Wthread-safety -Werror: every guarded access
// holds its lock (tests/thread_safety/CMakeLists.txt).
#include "common/mutex.h"

namespace {
class Counter {
 public:
  void Add(int n) {
    shardps::MutexLock lock(mu_);
    AddLocked(n);
    ready_ = true;
    cv_.NotifyAll();
  }
  int WaitForValue() {
    shardps::MutexLock lock(mu_);
    while (!ready_) cv_.Wait(mu_);
    return value_;
  }

 private:
  void AddLocked(int n) REQUIRES(mu_) { value_ += n; }
  shardps::Mutex mu_;
  shardps::CondVar cv_;
  int value_ GUARDED_BY(mu_) = 0;
  bool ready_ GUARDED_BY(mu_) = false;
};
}  // namespace

int main() {
  Counter c;
  c.Add(1);
  return c.WaitForValue() == 1 ? 0 : 1;
}
