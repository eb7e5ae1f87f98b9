// Child processes of the benchmark harness: copies of shardps-bench itself
// started with a hidden role (server, raw sink, client), so every process
// runs the same build and nothing depends on paths.
//
// Thread-safety: none; the harness drives children from its main thread.
#ifndef SHARDPS_BENCH_CHILD_H_
#define SHARDPS_BENCH_CHILD_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace shardps::bench {

class Child {
 public:
  // Runs /proc/self/exe with `args` (argv[1..]); its stdout is ours to read.
  static Result<Child> Spawn(const std::vector<std::string>& args);
  // Runs the program at `path` with `argv` (argv[0] its name). Its stdin and
  // stdout are pipes to us (WriteLine, ReadLine); stderr is ours.
  static Result<Child> Exec(const std::string& path,
                            const std::vector<std::string>& argv);

  Child() = default;
  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();  // SIGKILLs and reaps a child still running

  // Next line of the child's stdout, without the newline; kTimeout or
  // kUnavailable (the child closed stdout) otherwise.
  Result<std::string> ReadLine(std::chrono::milliseconds timeout);

  // The child's pid while it runs (it is ours to reap), else -1.
  pid_t pid() const { return pid_; }

  // Writes `line` and a newline to the child's stdin. kUnavailable when the
  // child is gone.
  Status WriteLine(const std::string& line);

  // SIGTERM, then waits up to `timeout`; SIGKILL after that.
  void Stop(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int in_fd_ = -1;  // the child's stdin
  std::string buffered_;
};

// Spawns a child and waits for its "listening on <endpoint>" line.
Result<std::string> AwaitEndpoint(Child& child);

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_CHILD_H_
