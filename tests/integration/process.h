// Test-only RAII helpers for multi-process tests: a child process with its
// output captured, and a temporary directory.
//
// Both clean up in their destructors, so a test that fails half-way (a
// REQUIRE throws) leaves no process running and no file behind.
//
// Thread-safety: none per object; create and use each from one thread (the
// test's). Spawn must be called from a thread that outlives the child:
// children are asked to die with their parent thread (PR_SET_PDEATHSIG).
#ifndef SHARDPS_TESTS_INTEGRATION_PROCESS_H_
#define SHARDPS_TESTS_INTEGRATION_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace shardps::testing {

// How a child ended, as waitpid reported it.
struct ExitStatus {
  bool exited = false;  // true: normal exit with `code`; false: killed
  int code = 0;         // exit code when `exited`
  int signal = 0;       // terminating signal when !exited

  bool ok() const { return exited && code == 0; }
  std::string ToString() const;  // "exit 2" or "signal 9"
};

// A forked and exec'd program. Its stdout is read line by line through a
// pipe; its stderr goes to an anonymous in-memory file (memfd), so a chatty
// child can never block on a full pipe nobody reads. The child leads its own
// process group, and the destructor SIGKILLs the whole group, which also
// takes down grandchildren (the servers `shardps launch` starts).
class ChildProcess {
 public:
  // Starts argv[0] (a path, not searched in PATH) with arguments argv[1..].
  // Errors: kIoError when a pipe, memfd or fork fails. An exec failure is
  // not an error here: the child exits 127 with the reason on its stderr.
  static Result<std::unique_ptr<ChildProcess>> Spawn(
      const std::vector<std::string>& argv);

  // SIGKILLs the child's process group and reaps the child.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Read end of the stdout pipe, for callers that poll several children at
  // once; read it only through ReadLine.
  int stdout_fd() const { return stdout_fd_; }

  // Returns the next stdout line without its '\n', or nullopt if none came
  // within `timeout` or stdout reached end of file (see eof()).
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  bool eof() const { return eof_; }

  // Reads lines until one contains `needle` and returns it; nullopt on
  // timeout or EOF. Lines before it are kept in lines_seen().
  std::optional<std::string> ReadLineContaining(
      const std::string& needle, std::chrono::milliseconds timeout);

  // Reads stdout to end of file (or until `timeout`) and returns it all.
  std::string ReadRemainingStdout(std::chrono::milliseconds timeout);

  // Every stdout line returned so far, in order.
  const std::vector<std::string>& lines_seen() const { return lines_; }

  // Everything the child wrote to stderr so far.
  std::string Stderr() const;

  // Waits up to `timeout` for stderr to contain `needle`. Stderr is a file,
  // not a stream we can wait on, so this re-reads it every few milliseconds.
  bool WaitForStderr(const std::string& needle,
                     std::chrono::milliseconds timeout) const;

  // Sends `sig` to the child only (not its group). False once it exited.
  bool Signal(int sig);

  // Waits up to `timeout` for the child to exit. Returns the exit status
  // (the same one on later calls), or nullopt on timeout. The child stays a
  // zombie until the destructor, so its pid cannot be reused meanwhile.
  std::optional<ExitStatus> Wait(std::chrono::milliseconds timeout);

  // True while the child has not exited.
  bool Running();

 private:
  ChildProcess(pid_t pid, int pidfd, int stdout_fd, int stderr_fd);
  bool FillBuffer(std::chrono::steady_clock::time_point deadline);
  std::optional<std::string> TakeLine();

  const pid_t pid_;
  const int pidfd_;      // lets Wait poll for exit without sleep loops
  const int stdout_fd_;  // read end of the child's stdout pipe
  const int stderr_fd_;  // the memfd the child's stderr writes to
  std::string buffer_;   // stdout bytes read but not yet returned as lines
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::optional<ExitStatus> status_;
};

// A fresh directory (under /dev/shm when it is writable, else /tmp), removed
// with everything in it by the destructor.
class TempDir {
 public:
  TempDir();  // throws std::runtime_error if mkdtemp fails
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(const std::string& name) const;

 private:
  std::string path_;
};

// Whole-file helpers; they throw std::runtime_error on I/O failure (a test
// bug, not a behaviour under test).
std::string ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::string& bytes);

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_INTEGRATION_PROCESS_H_
