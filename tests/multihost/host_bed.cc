#include "tests/multihost/host_bed.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <sstream>

namespace shardps::testing {

namespace {

// The bed's command; a compile definition, so tests run the tree's own.
const char* const kHostBed = SHARDPS_HOSTBED;
constexpr int kSkipCode = 77;  // hostbed: this machine cannot run a bed

// Runs `hostbed args...` in this process's namespaces.
HostBed::RunResult RunHostBed(const std::vector<std::string>& args,
                              int timeout_s) {
  std::vector<std::string> argv = {kHostBed};
  argv.insert(argv.end(), args.begin(), args.end());
  HostBed::RunResult r;
  auto child = ChildProcess::Spawn(argv);
  if (!child.ok()) {
    r.status.code = 127;
    r.status.exited = true;
    r.err = child.status().ToString();
    return r;
  }
  const auto timeout = std::chrono::seconds(timeout_s);
  r.out = (*child)->ReadRemainingStdout(timeout);
  auto exit = (*child)->Wait(timeout);
  r.err = (*child)->Stderr();
  if (exit) {
    r.status = *exit;
  } else {
    r.status.signal = 9;  // the destructor kills it
    r.err += "\n(timed out after " + std::to_string(timeout_s) + " s)";
  }
  return r;
}

std::string LastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace

Result<std::unique_ptr<HostBed>> HostBed::Create(
    int hosts, const HostBedOptions& options) {
  std::vector<std::string> args = {
      "up",          "--hosts",    std::to_string(hosts),
      "--name",      options.name, "--tmpfs",
      options.tmpfs, "--owner",    std::to_string(::getpid())};
  if (!options.rate.empty()) {
    args.push_back("--rate");
    args.push_back(options.rate);
  }
  const RunResult up = RunHostBed(args, 60);
  if (up.status.exited && up.status.code == kSkipCode)
    return Status(Code::kUnavailable, LastLine(up.err));
  if (!up.status.ok())
    return Status(Code::kIoError, "hostbed up failed (" + up.status.ToString() +
                                      "): " + up.err);
  const std::string state = LastLine(up.out);
  std::vector<std::string> addresses;
  for (int i = 1; i <= hosts; ++i) {
    const RunResult addr = RunHostBed({"addr", state, Host(i)}, 15);
    if (!addr.status.ok()) {
      RunHostBed({"down", state}, 60);
      return Status(Code::kIoError, "hostbed addr failed: " + addr.err);
    }
    addresses.push_back(LastLine(addr.out));
  }
  return std::unique_ptr<HostBed>(
      new HostBed(state, hosts, std::move(addresses)));
}

HostBed::HostBed(std::string state, int hosts,
                 std::vector<std::string> addresses)
    : state_(std::move(state)),
      hosts_(hosts),
      addresses_(std::move(addresses)) {}

HostBed::~HostBed() {
  const RunResult down = RunHostBed({"down", state_}, 60);
  if (!down.status.ok())
    std::fprintf(stderr, "HostBed: hostbed down %s failed (%s): %s\n",
                 state_.c_str(), down.status.ToString().c_str(),
                 down.err.c_str());
}

const std::string& HostBed::Address(const std::string& host) const {
  static const std::string kNone;
  for (int i = 1; i <= hosts_; ++i)
    if (Host(i) == host) return addresses_[static_cast<size_t>(i - 1)];
  return kNone;
}

std::string HostBed::HostPath(const std::string& host,
                              const std::string& path) const {
  std::string pid;
  try {
    pid = ReadFileBytes(state_ + "/" + host + "/holder.pid");
  } catch (const std::exception&) {
    return "/nonexistent-host-" + host + path;
  }
  while (!pid.empty() && (pid.back() == '\n')) pid.pop_back();
  return "/proc/" + pid + "/root" + path;
}

Result<std::unique_ptr<ChildProcess>> HostBed::Spawn(
    const std::string& host, const std::vector<std::string>& argv) const {
  std::vector<std::string> full = {kHostBed, "exec", state_, host, "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return ChildProcess::Spawn(full);
}

HostBed::RunResult HostBed::Run(const std::string& host,
                                const std::vector<std::string>& argv,
                                int timeout_s) const {
  std::vector<std::string> args = {"exec", state_, host, "--"};
  args.insert(args.end(), argv.begin(), argv.end());
  return RunHostBed(args, timeout_s);
}

Status HostBed::KillHost(const std::string& host) {
  const RunResult r = RunHostBed({"kill-host", state_, host}, 30);
  if (!r.status.ok())
    return Status(Code::kIoError, "hostbed kill-host " + host + " failed (" +
                                      r.status.ToString() + "): " + r.err);
  return Status::Ok();
}

Result<std::pair<uint64_t, uint64_t>> HostBed::Counters(
    const std::string& host) const {
  const RunResult r = RunHostBed({"counters", state_, host}, 15);
  std::istringstream in(r.out);
  uint64_t rx = 0, tx = 0;
  if (!r.status.ok() || !(in >> rx >> tx))
    return Status(Code::kIoError, "hostbed counters " + host + ": " + r.err);
  return std::make_pair(rx, tx);
}

std::string SkipMessage(const Status& status) {
  return "SKIPPED: no multi-host bed on this machine (" + status.message() +
         "); CI runs these tests as root";
}

}  // namespace shardps::testing
