// Must NOT compile under clang -Wthread-safety -Werror: it reads a guarded
// field without its lock and calls a REQUIRES function unlocked. If it
// compiles, the analysis is not running and its "no findings" means nothing.
#include "common/mutex.h"

namespace {
class Counter {
 public:
  int Peek() const { return value_; }  // no lock: an error
  void Bump() { AddLocked(1); }        // caller lacks mu_: an error

 private:
  void AddLocked(int n) REQUIRES(mu_) { value_ += n; }
  mutable shardps::Mutex mu_;
  int value_ GUARDED_BY(mu_) = 0;
};
}  // namespace

int main() {
  Counter c;
  c.Bump();
  return c.Peek();
}
