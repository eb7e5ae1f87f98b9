// HostBed: a multi-host test bed (scripts/hostbed) for one test case.
//
// Create() runs `hostbed up`, the destructor `hostbed down`, so a test that
// fails half-way (a REQUIRE throws) leaves no namespace, link, mount or
// process behind. The bed is also given this process as its owner: if the
// test binary dies without running destructors (a crash, a ctest timeout),
// the bed's watchdog takes it down.
//
// Hosts are named "h1".."hN". Programs run on a host through `hostbed exec`,
// which execs them in the host's namespaces: a Spawned ChildProcess's pid is
// the program's own, and killing it kills the program.
//
// Thread-safety: none; use from the test thread, like ChildProcess.
#ifndef SHARDPS_TESTS_MULTIHOST_HOST_BED_H_
#define SHARDPS_TESTS_MULTIHOST_HOST_BED_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "shardps/status.h"
#include "tests/integration/process.h"

namespace shardps::testing {

struct HostBedOptions {
  std::string name = "test";   // in the state directory's name (1-32 chars)
  std::string rate;            // tc rate for each host's link, both ways; "":
                               // unshaped
  std::string tmpfs = "256m";  // each host's private /dev/shm
};

class HostBed {
 public:
  // Makes hosts h1..h<hosts>. Errors: kUnavailable when this machine cannot
  // run a bed (not root, no namespaces: hostbed exits 77), with hostbed's
  // reason; the test should then skip (SkipMessage). kIoError for any other
  // failure of `up`, with its stderr.
  static Result<std::unique_ptr<HostBed>> Create(
      int hosts, const HostBedOptions& options = {});

  // Runs `hostbed down`; a failure is reported on stderr (it cannot throw).
  ~HostBed();
  HostBed(const HostBed&) = delete;
  HostBed& operator=(const HostBed&) = delete;

  int hosts() const { return hosts_; }
  const std::string& state() const { return state_; }
  // "h<i>", 1-based.
  static std::string Host(int i) { return "h" + std::to_string(i); }
  // The host's IPv4 address, e.g. "10.150.3.2".
  const std::string& Address(const std::string& host) const;
  // A directory every host sees (on the machine's filesystem, not on any
  // host's /dev/shm): it stands for a shared mount such as NFS. Removed by
  // the destructor.
  std::string SharedDir() const { return state_ + "/shared"; }
  // `path` (absolute, as a program on `host` names it) seen from this
  // process, through the host's holder: /proc/<holder>/root<path>. Lets a
  // test read a host's /dev/shm as that host does.
  std::string HostPath(const std::string& host, const std::string& path) const;

  // Starts argv (argv[0] a path) on `host`.
  Result<std::unique_ptr<ChildProcess>> Spawn(
      const std::string& host, const std::vector<std::string>& argv) const;

  // Runs argv on `host` to completion (up to `timeout_s`) with its output.
  struct RunResult {
    ExitStatus status;
    std::string out;
    std::string err;
  };
  RunResult Run(const std::string& host, const std::vector<std::string>& argv,
                int timeout_s = 15) const;

  // The host is lost: every process on it SIGKILLed, its /dev/shm gone.
  Status KillHost(const std::string& host);

  // "rx_bytes tx_bytes" of the host's link, as the host sees it.
  Result<std::pair<uint64_t, uint64_t>> Counters(const std::string& host) const;

 private:
  HostBed(std::string state, int hosts, std::vector<std::string> addresses);

  const std::string state_;
  const int hosts_;
  const std::vector<std::string> addresses_;  // [i - 1]: h<i>'s
};

// The line a test prints (with WARN) when it cannot get a bed.
std::string SkipMessage(const Status& status);

}  // namespace shardps::testing

#endif  // SHARDPS_TESTS_MULTIHOST_HOST_BED_H_
