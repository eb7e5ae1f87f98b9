// multihost workload: H = 3 trainer hosts with W = 2 trainers each, on the
// namespace bed (scripts/hostbed), training one model in bsp two ways:
//   classic  every trainer pushes its gradient, then pulls the whole model;
//   replica  every trainer pushes, and reads the model from its host's
//            replica (`shardps replica`), which receives it once per host;
//   streamed replica, with bsp `apply = "block"` and 4-block push messages:
//            each block is applied once its last gradient is in and streams
//            to the replicas while later blocks are still being pushed.
// The shards live on a 4th host whose link is not shaped: the trainer
// hosts' shaped links are the limit, as the physics below assumes. Per
// step: time, bytes sent by the servers' host, bytes received per trainer
// host; beside them the link bounds (B = the shaped rate, M = model bytes):
//   classic  2·W·M/B (W pushes up, then W pulls down)
//   replica  (W+1)·M/B when the copy is fetched after the pushes (bsp
//            applies a clock only once every push is in), W·M/B if the
//            download overlapped the uploads.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/host_bed.h"
#include "bench/multihost.h"
#include "bench/workloads.h"
#include "shardps/cluster.h"

namespace shardps::bench {

namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr int kHosts = 3;        // trainer hosts h1..h3
constexpr int kPerHost = 2;      // trainers per host (W)
constexpr uint32_t kShards = 2;  // on the server host h4
constexpr int kBasePort = 5555;
const char* const kServerHost = "h4";
const char* const kShardStorage = "/dev/shm/shardps";
const char* const kReplicaStorage = "/dev/shm/shardps-replica";
constexpr auto kStartTimeout = std::chrono::seconds(60);
constexpr auto kStepsTimeout = std::chrono::seconds(900);

std::string SpecText(uint64_t floats, bool per_block) {
  std::ostringstream s;
  s << "[model]\nname = \"" << kMhModel << "\"\nstorage = \"" << kShardStorage
    << "\"\nblock_floats = " << kMhBlockFloats << "\n"
    << "[optimizer]\nkind = \"sgd\"\nlr = 1.0\n"
    << "[[tensor]]\nname = \"" << kMhTensor << "\"\nshape = [" << floats
    << "]\ninit = \"zeros\"\n"
    << "[consistency]\nmode = \"bsp\"\nworkers = " << kHosts * kPerHost
    << "\nwait_timeout = 900.0\n"
    << (per_block ? "apply = \"block\"\n" : "");
  return s.str();
}

// Reads lines from `child` until one starts with `prefix`; returns it.
Result<std::string> AwaitLine(Child& child, const std::string& prefix,
                              std::chrono::seconds timeout,
                              const std::string& who) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - SteadyClock::now());
    auto line = child.ReadLine(std::max(left, std::chrono::milliseconds(1)));
    if (!line.ok())
      return line.status().WithContext(who + " (waiting for '" + prefix +
                                       "'; its stderr is above)");
    if (line->rfind(prefix, 0) == 0) return line;
  }
}

// Every process of one run; destroyed (SIGKILLed) before the bed.
struct Processes {
  std::vector<Child> servers, replicas, trainers;
};

// Starts the shards on the server host and writes the cluster file.
Result<std::string> StartServers(const BenchBed& bed, const std::string& spec,
                                 Processes* p) {
  auto addr = bed.Address(kServerHost);
  if (!addr.ok()) return addr.status();
  ClusterInfo info;
  info.model = kMhModel;
  for (uint32_t i = 0; i < kShards; ++i) {
    const std::string endpoint =
        "tcp://" + *addr + ":" +
        std::to_string(kBasePort + static_cast<int>(i));
    // Plain TCP (--insecure): CURVE would put crypto on the 2 cores the
    // whole bed shares, and this measures the links (docs/benchmarks.md).
    auto child = bed.Exec(
        kServerHost, SHARDPS_BINARY,
        {"shardps", "serve", "--spec", spec, "--shard", std::to_string(i),
         "--shards", std::to_string(kShards), "--listen", endpoint, "--storage",
         kShardStorage, "--threads", "2", "--insecure"});
    if (!child.ok()) return child.status();
    p->servers.push_back(std::move(child).value());
    auto line = AwaitLine(p->servers.back(), "listening on", kStartTimeout,
                          "shard " + std::to_string(i));
    if (!line.ok()) return line.status();
    info.shards.push_back({i, endpoint, ""});
  }
  const std::string path = bed.SharedDir() + "/cluster.toml";
  SHARDPS_RETURN_IF_ERROR(SaveCluster(info, path));
  return path;
}

Status StartReplicas(const BenchBed& bed, const std::string& cluster,
                     const std::string& spec, Processes* p) {
  for (int h = 1; h <= kHosts; ++h) {
    auto child = bed.Exec(BenchBed::Host(h), SHARDPS_BINARY,
                          {"shardps", "replica", "--cluster", cluster, "--spec",
                           spec, "--storage", kReplicaStorage});
    if (!child.ok()) return child.status();
    p->replicas.push_back(std::move(child).value());
  }
  for (int h = 1; h <= kHosts; ++h) {
    auto line =
        AwaitLine(p->replicas[static_cast<size_t>(h - 1)], "replica ready",
                  kStartTimeout, "replica on " + BenchBed::Host(h));
    if (!line.ok()) return line.status();
  }
  return Status::Ok();
}

Result<std::string> SelfPath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return Status(Code::kIoError, "readlink /proc/self/exe failed");
  return std::string(buf, static_cast<size_t>(n));
}

Status StartTrainers(const BenchBed& bed, const SuiteOptions& o,
                     const std::string& cluster, const std::string& mode,
                     Processes* p) {
  auto self = SelfPath();
  if (!self.ok()) return self.status();
  const int workers = kHosts * kPerHost;
  for (int w = 0; w < workers; ++w) {
    std::vector<std::string> argv = {"shardps-bench"};
    for (std::string& a : MultihostTrainerArgv(
             cluster, mode, o.multihost_warmup, o.multihost_steps,
             o.multihost_compute_ms, w, workers, kReplicaStorage, kShards))
      argv.push_back(std::move(a));
    auto child = bed.Exec(BenchBed::Host(1 + w / kPerHost), *self, argv);
    if (!child.ok()) return child.status();
    p->trainers.push_back(std::move(child).value());
  }
  return Status::Ok();
}

// CPU seconds (user + system) process `pid` has used, from /proc; 0 if
// it is gone.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string f;
  uint64_t utime = 0, stime = 0;
  // Fields after the name start at 3 (state); utime is 14, stime 15.
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) /
         static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Link counters of every host and CPU time, at one moment.
struct Snapshot {
  std::vector<std::pair<uint64_t, uint64_t>> links;  // [h-1]: (rx, tx)
  uint64_t cpu_busy = 0, cpu_total = 0;              // /proc/stat ticks
  double daemons_cpu_s = 0;  // servers' and replicas' CPU seconds
};

Result<Snapshot> TakeSnapshot(const BenchBed& bed, const Processes& p) {
  Snapshot s;
  for (int h = 1; h <= kHosts + 1; ++h) {
    auto c = bed.Counters(BenchBed::Host(h));
    if (!c.ok()) return c.status();
    s.links.push_back(*c);
  }
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;
  uint64_t v = 0;
  for (int i = 0; stat >> v && i < 8; ++i) {
    s.cpu_total += v;
    if (i != 3 && i != 4) s.cpu_busy += v;  // not idle, not iowait
  }
  for (const auto* group : {&p.servers, &p.replicas})
    for (const Child& c : *group) s.daemons_cpu_s += ProcessCpuSeconds(c.pid());
  return s;
}

// Lets the trainers go past their warm-up and reads what the measured
// steps cost.
Status MeasureSteps(const SuiteOptions& o, const BenchBed& bed, Processes* p,
                    MultihostRun* run) {
  for (size_t w = 0; w < p->trainers.size(); ++w) {
    auto warm = AwaitLine(p->trainers[w], "warm", kStepsTimeout,
                          "trainer " + std::to_string(w));
    if (!warm.ok()) return warm.status();
  }
  auto before = TakeSnapshot(bed, *p);
  if (!before.ok()) return before.status();
  const auto t0 = SteadyClock::now();
  for (Child& t : p->trainers) SHARDPS_RETURN_IF_ERROR(t.WriteLine("go"));
  double trainers_cpu_s = 0;
  for (size_t w = 0; w < p->trainers.size(); ++w) {
    auto done = AwaitLine(p->trainers[w], "done", kStepsTimeout,
                          "trainer " + std::to_string(w));
    if (!done.ok()) return done.status();
    double push = 0, fetch = 0, cpu = 0;
    if (std::sscanf(done->c_str(), "done push_ms %lf fetch_ms %lf cpu_s %lf",
                    &push, &fetch, &cpu) != 3)
      return Status(Code::kInternal, "trainer said: " + *done);
    trainers_cpu_s += cpu;
    run->push_ms += push / static_cast<double>(p->trainers.size());
    run->fetch_ms += fetch / static_cast<double>(p->trainers.size());
  }
  const double steps = o.multihost_steps;
  const double wall_s =
      std::chrono::duration<double>(SteadyClock::now() - t0).count();
  run->step_ms = wall_s * 1e3 / steps;
  auto after = TakeSnapshot(bed, *p);
  if (!after.ok()) return after.status();
  auto delta = [&](int h, bool tx) {
    const auto& a = after->links[static_cast<size_t>(h - 1)];
    const auto& b = before->links[static_cast<size_t>(h - 1)];
    return static_cast<double>(tx ? a.second - b.second : a.first - b.first) /
           steps;
  };
  run->server_tx = delta(kHosts + 1, true);
  run->server_rx = delta(kHosts + 1, false);
  for (int h = 1; h <= kHosts; ++h) {
    run->host_rx += delta(h, false) / kHosts;
    run->host_tx += delta(h, true) / kHosts;
  }
  run->cpu_busy = static_cast<double>(after->cpu_busy - before->cpu_busy) /
                  static_cast<double>(std::max<uint64_t>(
                      1, after->cpu_total - before->cpu_total));
  run->bed_cpu =
      (trainers_cpu_s + after->daemons_cpu_s - before->daemons_cpu_s) / wall_s;
  return Status::Ok();
}

}  // namespace

Result<MultihostRun> MeasureMultihostRun(const SuiteOptions& o, uint64_t floats,
                                         const std::string& mode) {
  auto bed = BenchBed::Up(kHosts + 1, o.multihost_rate, o.multihost_tmpfs);
  if (!bed.ok()) return bed.status();
  // Declared after the bed: its processes die before the bed goes down.
  Processes p;
  SHARDPS_RETURN_IF_ERROR((*bed)->Unshape(kServerHost));
  const std::string spec = (*bed)->SharedDir() + "/spec.toml";
  std::ofstream(spec) << SpecText(floats, mode == "streamed");
  auto cluster = StartServers(**bed, spec, &p);
  if (!cluster.ok()) return cluster.status();
  if (mode != "classic")
    SHARDPS_RETURN_IF_ERROR(StartReplicas(**bed, *cluster, spec, &p));
  SHARDPS_RETURN_IF_ERROR(StartTrainers(**bed, o, *cluster, mode, &p));
  MultihostRun run;
  run.floats = floats;
  run.mode = mode;
  SHARDPS_RETURN_IF_ERROR(MeasureSteps(o, **bed, &p, &run));
  return run;
}

}  // namespace shardps::bench
