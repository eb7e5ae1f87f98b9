#include "tests/integration/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "common/posix_file.h"

namespace shardps::testing {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, clamped to [0, INT_MAX] for poll().
int MillisLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > 1 << 30 ? 1 << 30 : static_cast<int>(left.count());
}

// Raw syscalls: glibc 2.36 declares the pidfd wrappers without C linkage
// for C++, and older libcs lack them.
int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(
      ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

ExitStatus FromSigInfo(const siginfo_t& info) {
  ExitStatus s;
  if (info.si_code == CLD_EXITED) {
    s.exited = true;
    s.code = info.si_status;
  } else {
    s.signal = info.si_status;
  }
  return s;
}

// Runs in the forked child: only async-signal-safe calls from here to exec,
// because the test process has other threads (client I/O, Catch2) whose
// locks may be held at the moment of fork.
[[noreturn]] void ExecChild(char* const* argv, pid_t parent, int stdout_fd,
                            int stderr_fd) {
  // Own process group, so the parent can kill the child's children too.
  ::setpgid(0, 0);
  // If the test process dies (a crash, a ctest timeout), so does the child.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(126);  // parent gone before prctl
  ::dup2(stdout_fd, STDOUT_FILENO);
  ::dup2(stderr_fd, STDERR_FILENO);
  // The mask and ignored dispositions survive exec; start the program clean.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::execv(argv[0], argv);
  static const char kMsg[] = "ChildProcess: execv failed\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  ::_exit(127);
}

}  // namespace

std::string ExitStatus::ToString() const {
  return exited ? "exit " + std::to_string(code)
                : "signal " + std::to_string(signal);
}

Result<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv) {
  if (argv.empty()) return Status(Code::kInvalidArgument, "empty argv");
  // Built before fork: the child may not allocate.
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (std::string& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return ErrnoStatus(Code::kIoError, "pipe2", errno);
  const int err = ::memfd_create("child-stderr", MFD_CLOEXEC);
  // O_APPEND: the child and its children (the servers `launch` starts)
  // share this open file and its offset, and a memfd, unlike a file opened
  // by path, gets no kernel lock around that offset. Two servers logging at
  // the same moment then wrote at the same offset and one line was lost
  // (the "launch forwards SIGHUP" check saw one reload of two). With
  // O_APPEND each write goes to the end under the inode lock.
  if (err < 0 || ::fcntl(err, F_SETFL, O_APPEND) != 0) {
    const Status status = ErrnoStatus(Code::kIoError, "memfd_create", errno);
    if (err >= 0) ::close(err);
    ::close(out[0]);
    ::close(out[1]);
    return status;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const Status status = ErrnoStatus(Code::kIoError, "fork", errno);
    ::close(out[0]);
    ::close(out[1]);
    ::close(err);
    return status;
  }
  if (pid == 0) ExecChild(cargv.data(), parent, out[1], err);

  ::close(out[1]);
  // Also set the group from this side, so a kill(-pid) issued before the
  // child runs setpgid still finds the group.
  ::setpgid(pid, pid);
  const int pidfd = PidfdOpen(pid);
  if (pidfd < 0) {
    const Status status = ErrnoStatus(Code::kIoError, "pidfd_open", errno);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    ::close(out[0]);
    ::close(err);
    return status;
  }
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  return std::unique_ptr<ChildProcess>(
      new ChildProcess(pid, pidfd, out[0], err));
}

ChildProcess::ChildProcess(pid_t pid, int pidfd, int stdout_fd, int stderr_fd)
    : pid_(pid), pidfd_(pidfd), stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}

ChildProcess::~ChildProcess() {
  // Wait never reaps, so the child's pid, and with it its process group id,
  // cannot have been reused yet: killing the group hits only our child and
  // its descendants, which must not outlive the test.
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  ::close(pidfd_);
  ::close(stdout_fd_);
  ::close(stderr_fd_);
}

bool ChildProcess::FillBuffer(Clock::time_point deadline) {
  pollfd p{stdout_fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, MillisLeft(deadline));
  if (ready == 0) return false;  // timed out
  if (ready < 0) return errno == EINTR;
  char chunk[4096];
  const ssize_t n = ::read(stdout_fd_, chunk, sizeof(chunk));
  if (n > 0) {
    buffer_.append(chunk, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    eof_ = true;
  }
  return true;
}

std::optional<std::string> ChildProcess::TakeLine() {
  const size_t newline = buffer_.find('\n');
  if (newline == std::string::npos) {
    // At end of file an unterminated tail still counts as a line.
    if (!eof_ || buffer_.empty()) return std::nullopt;
    lines_.push_back(std::move(buffer_));
    buffer_.clear();
    return lines_.back();
  }
  lines_.push_back(buffer_.substr(0, newline));
  buffer_.erase(0, newline + 1);
  return lines_.back();
}

std::optional<std::string> ChildProcess::ReadLine(
    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto line = TakeLine()) return line;
    if (eof_) return std::nullopt;
    if (!FillBuffer(deadline)) return std::nullopt;
  }
}

std::optional<std::string> ChildProcess::ReadLineContaining(
    const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    auto line = ReadLine(std::max(left, std::chrono::milliseconds(0)));
    if (!line) return std::nullopt;
    if (line->find(needle) != std::string::npos) return line;
  }
}

std::string ChildProcess::ReadRemainingStdout(
    std::chrono::milliseconds timeout) {
  std::string all;
  const auto deadline = Clock::now() + timeout;
  while (auto line =
             ReadLine(std::chrono::duration_cast<std::chrono::milliseconds>(
                 deadline - Clock::now()))) {
    all += *line + "\n";
  }
  return all;
}

std::string ChildProcess::Stderr() const {
  std::string text;
  char chunk[4096];
  for (off_t offset = 0;;) {
    const ssize_t n = ::pread(stderr_fd_, chunk, sizeof(chunk), offset);
    if (n <= 0) break;
    text.append(chunk, static_cast<size_t>(n));
    offset += n;
  }
  return text;
}

bool ChildProcess::WaitForStderr(const std::string& needle,
                                 std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (Stderr().find(needle) != std::string::npos) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool ChildProcess::Signal(int sig) {
  if (status_) return false;
  return PidfdSendSignal(pidfd_, sig) == 0;
}

std::optional<ExitStatus> ChildProcess::Wait(
    std::chrono::milliseconds timeout) {
  if (status_) return status_;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    // WNOWAIT leaves the child a zombie until the destructor reaps it.
    siginfo_t info = {};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info,
                 WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid_) {
      status_ = FromSigInfo(info);
      return status_;
    }
    // The pidfd turns readable when the child exits: no polling loop.
    pollfd p{pidfd_, POLLIN, 0};
    if (::poll(&p, 1, MillisLeft(deadline)) == 0) return std::nullopt;
  }
}

bool ChildProcess::Running() {
  return !Wait(std::chrono::milliseconds(0)).has_value();
}

TempDir::TempDir() {
  for (const char* root : {"/dev/shm", "/tmp"}) {
    std::string pattern = std::string(root) + "/shardps-integ-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) {
      path_ = pattern;
      return;
    }
  }
  throw std::runtime_error("mkdtemp failed in /dev/shm and /tmp");
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::File(const std::string& name) const {
  return path_ + "/" + name;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace shardps::testing
