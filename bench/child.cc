#include "bench/child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include "common/posix_file.h"

namespace shardps::bench {

Result<Child> Child::Spawn(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"shardps-bench"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Exec("/proc/self/exe", argv);
}

Result<Child> Child::Exec(const std::string& path,
                          const std::vector<std::string>& args) {
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  if (::pipe2(in, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(out[0]);
    ::close(out[1]);
    return ErrnoStatus("pipe", err);
  }
  std::vector<std::string> owned = args;
  std::vector<char*> argv;
  for (auto& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus("fork", errno);
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(in[0], STDIN_FILENO);
    ::execv(path.c_str(), argv.data());
    std::perror("shardps-bench: exec");
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(in[0]);
  Child c;
  c.pid_ = pid;
  c.out_fd_ = out[0];
  c.in_fd_ = in[1];
  return c;
}

Status Child::WriteLine(const std::string& line) {
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(in_fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status(Code::kUnavailable, "child closed its input");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      out_fd_(std::exchange(other.out_fd_, -1)),
      in_fd_(std::exchange(other.in_fd_, -1)),
      buffered_(std::move(other.buffered_)) {}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    Stop(std::chrono::milliseconds(0));
    pid_ = std::exchange(other.pid_, -1);
    out_fd_ = std::exchange(other.out_fd_, -1);
    in_fd_ = std::exchange(other.in_fd_, -1);
    buffered_ = std::move(other.buffered_);
  }
  return *this;
}

Child::~Child() { Stop(std::chrono::milliseconds(0)); }

Result<std::string> Child::ReadLine(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status(Code::kTimeout, "child is silent");
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n <= 0) return Status(Code::kUnavailable, "child closed its output");
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

void Child::Stop(std::chrono::milliseconds timeout) {
  if (pid_ > 0) {
    ::kill(pid_, timeout.count() > 0 ? SIGTERM : SIGKILL);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      ::usleep(10000);  // bounded teardown wait, outside any measurement
    }
    pid_ = -1;
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  out_fd_ = -1;
  if (in_fd_ >= 0) ::close(in_fd_);
  in_fd_ = -1;
}

Result<std::string> AwaitEndpoint(Child& child) {
  auto line = child.ReadLine(std::chrono::seconds(60));
  if (!line.ok()) return line.status().WithContext("waiting for a child");
  const std::string prefix = "listening on ";
  if (line->compare(0, prefix.size(), prefix) != 0)
    return Status(Code::kInternal, "child said: " + *line);
  return line->substr(prefix.size());
}

}  // namespace shardps::bench
