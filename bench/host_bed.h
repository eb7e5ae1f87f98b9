// BenchBed: the multi-host bed (scripts/hostbed) for one benchmark run.
//
// Up() runs `hostbed up`, the destructor `hostbed down`, so a run that fails
// half-way leaves no namespace, link, mount or process behind; the bed is
// also given this process as its owner, so its watchdog takes it down if
// the harness dies without running destructors. Programs run on a host
// through `hostbed exec`, which execs them in the host's namespaces: the
// Child's pid is the program's own.
//
// Thread-safety: none; use from the harness's main thread.
#ifndef SHARDPS_BENCH_HOST_BED_H_
#define SHARDPS_BENCH_HOST_BED_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/child.h"
#include "shardps/status.h"

namespace shardps::bench {

class BenchBed {
 public:
  // Hosts h1..h<hosts>, each link shaped to `rate` both ways (tc tbf; ""
  // unshaped), each with a private /dev/shm of `tmpfs`. Errors:
  // kUnavailable when this machine cannot run a bed (hostbed exits 77: not
  // root, no namespaces), with hostbed's reason; kIoError otherwise.
  static Result<std::unique_ptr<BenchBed>> Up(int hosts,
                                              const std::string& rate,
                                              const std::string& tmpfs);
  ~BenchBed();  // hostbed down; a failure is reported on stderr
  BenchBed(const BenchBed&) = delete;
  BenchBed& operator=(const BenchBed&) = delete;

  static std::string Host(int i) { return "h" + std::to_string(i); }
  const std::string& state() const { return state_; }
  // A directory every host sees (the bed's shared/, a stand-in for NFS).
  std::string SharedDir() const { return state_ + "/shared"; }
  // The host's IPv4 address.
  Result<std::string> Address(const std::string& host) const;

  // Removes the tc shaping of `host`'s link, both ways: that host's link is
  // then only as slow as the machine.
  Status Unshape(const std::string& host) const;

  // Starts the program at `path` on `host` (argv[0] its name).
  Result<Child> Exec(const std::string& host, const std::string& path,
                     const std::vector<std::string>& argv) const;

  // Bytes (received, sent) by `host` over its link (`hostbed counters`).
  Result<std::pair<uint64_t, uint64_t>> Counters(const std::string& host) const;

 private:
  explicit BenchBed(std::string state) : state_(std::move(state)) {}
  const std::string state_;
};

// The hostbed command this build runs (the source tree's scripts/hostbed).
const char* HostBedCommand();

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_HOST_BED_H_
