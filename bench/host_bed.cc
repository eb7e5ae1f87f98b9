#include "bench/host_bed.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/posix_file.h"

namespace shardps::bench {

namespace {

constexpr int kSkipCode = 77;  // hostbed: this machine cannot run a bed

struct ToolResult {
  int code = -1;  // exit code; -1 when it did not exit normally
  std::string out, err;
};

// Drains both pipes until the tool closes them.
void Drain(int out_fd, int err_fd, ToolResult* r) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        fds[i].fd = -1;
        --open;
        continue;
      }
      (i == 0 ? r->out : r->err).append(buf, static_cast<size_t>(n));
    }
  }
}

// Runs argv (argv[0] a path) to completion with its output.
ToolResult RunTool(const std::vector<std::string>& args) {
  ToolResult r;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    r.err = "pipe failed";
    return r;
  }
  std::vector<std::string> owned = args;
  std::vector<char*> argv;
  for (auto& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execv(argv[0], argv.data());
    std::perror("exec");
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  if (pid > 0) Drain(out[0], err[0], &r);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status))
    r.code = WEXITSTATUS(status);
  return r;
}

ToolResult HostBed(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {HostBedCommand()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunTool(argv);
}

std::string LastLine(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

Result<std::string> ReadWord(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word)) return Status(Code::kIoError, "cannot read " + path);
  return word;
}

}  // namespace

const char* HostBedCommand() { return SHARDPS_HOSTBED; }

Result<std::unique_ptr<BenchBed>> BenchBed::Up(int hosts,
                                               const std::string& rate,
                                               const std::string& tmpfs) {
  std::vector<std::string> args = {
      "up",  "--hosts", std::to_string(hosts),     "--name", "bench", "--tmpfs",
      tmpfs, "--owner", std::to_string(::getpid())};
  if (!rate.empty()) {
    args.push_back("--rate");
    args.push_back(rate);
  }
  const ToolResult up = HostBed(args);
  if (up.code == kSkipCode) return Status(Code::kUnavailable, LastLine(up.err));
  if (up.code != 0)
    return Status(Code::kIoError, "hostbed up failed (exit " +
                                      std::to_string(up.code) + "): " + up.err);
  return std::unique_ptr<BenchBed>(new BenchBed(LastLine(up.out)));
}

BenchBed::~BenchBed() {
  const ToolResult down = HostBed({"down", state_});
  if (down.code != 0)
    std::fprintf(stderr, "shardps-bench: hostbed down %s failed: %s\n",
                 state_.c_str(), down.err.c_str());
}

Result<std::string> BenchBed::Address(const std::string& host) const {
  const ToolResult r = HostBed({"addr", state_, host});
  if (r.code != 0) return Status(Code::kIoError, "hostbed addr: " + r.err);
  return LastLine(r.out);
}

Status BenchBed::Unshape(const std::string& host) const {
  // The ids `hostbed up` recorded for the host: its netns and its veth.
  auto ns = ReadWord(state_ + "/" + host + "/netns");
  if (!ns.ok()) return ns.status();
  auto veth = ReadWord(state_ + "/" + host + "/veth");
  if (!veth.ok()) return veth.status();
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"/usr/sbin/tc", "-n", *ns, "qdisc", "del", "dev", "eth0", "root"},
           {"/usr/sbin/tc", "qdisc", "del", "dev", *veth, "root"}}) {
    const ToolResult r = RunTool(argv);
    if (r.code != 0)
      return Status(Code::kIoError, "tc qdisc del on " + host + ": " + r.err);
  }
  return Status::Ok();
}

Result<Child> BenchBed::Exec(const std::string& host, const std::string& path,
                             const std::vector<std::string>& argv) const {
  // nsenter execs the program (no fork): the child's pid is the program's.
  std::vector<std::string> full = {"hostbed", "exec", state_, host, "--", path};
  full.insert(full.end(), argv.begin() + (argv.empty() ? 0 : 1), argv.end());
  return Child::Exec(HostBedCommand(), full);
}

Result<std::pair<uint64_t, uint64_t>> BenchBed::Counters(
    const std::string& host) const {
  const ToolResult r = HostBed({"counters", state_, host});
  std::istringstream in(r.out);
  uint64_t rx = 0, tx = 0;
  if (r.code != 0 || !(in >> rx >> tx))
    return Status(Code::kIoError, "hostbed counters " + host + ": " + r.err);
  return std::make_pair(rx, tx);
}

}  // namespace shardps::bench
