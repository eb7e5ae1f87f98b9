// Host replicas across hosts, on the multi-host bed (scripts/hostbed): the
// shards live on some hosts, `shardps replica` on every host keeps copies of
// the shards that are not on it, on that host's private /dev/shm, and a
// trainer there reads the model through them. Each test makes its own bed.
// Without root they print "SKIPPED: ..." and pass; CI runs them as root.
//
// The test process reads a host's copies as that host does, through the
// host's holder (HostBed::HostPath: /proc/<holder>/root/dev/shm/...): the
// very files the replica there writes.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/replica_state.h"
#include "common/segment.h"
#include "common/seqlock.h"
#include "shardps/client.h"
#include "shardps/model_view.h"
#include "tests/integration/worker_fixture.h"
#include "tests/multihost/bed_cluster.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

// Every host's replica storage (on the host's own tmpfs).
constexpr const char* kReplicaStorage = "/dev/shm/shardps-replica";

HostBedOptions Named(const std::string& name) {
  HostBedOptions o;
  o.name = name;
  return o;
}

std::string ShardSegment(const std::string& model, uint32_t shard,
                         uint32_t shards,
                         const std::string& storage = kHostStorage) {
  return Segment::PathFor(storage, model, shard, shards);
}
std::string CopySegment(const std::string& model, uint32_t shard,
                        uint32_t shards) {
  return Segment::PathFor(kReplicaStorage, model, shard, shards);
}
std::string CopyFreshness(const std::string& model, uint32_t shard,
                          uint32_t shards) {
  return ReplicaState::PathFor(kReplicaStorage, model, shard, shards);
}

// Starts `shardps replica` on `host` and waits for its "ready" line, which
// must name exactly `mirrored` and `local` (e.g. "1", "0,1", "").
std::unique_ptr<ChildProcess> StartReplicaOn(const HostBed& bed,
                                             const BedCluster& cluster,
                                             const std::string& host,
                                             const std::string& cluster_file,
                                             const std::string& mirrored,
                                             const std::string& local) {
  auto replica =
      bed.Spawn(host, {kShardpsBinary, "replica", "--cluster", cluster_file,
                       "--spec", cluster.spec(), "--storage", kReplicaStorage,
                       "--curve-key", cluster.client_key()});
  INFO(replica.status().ToString());
  REQUIRE(replica.ok());
  const auto ready =
      (*replica)->ReadLineContaining("replica ready", kStartTimeout);
  INFO(host << " replica: " << (*replica)->Stderr());
  REQUIRE(ready.has_value());
  CHECK(*ready == "replica ready: mirroring shard(s) [" + mirrored +
                      "], on this host [" + local + "]");
  return std::move(replica).value();
}

// The segments a trainer on `host` maps, seen from the test process: the
// shard's own where it is on the host (`local`), the replica's copy for the
// rest.
std::vector<std::string> HostView(const HostBed& bed, const std::string& host,
                                  const std::string& model, uint32_t shards,
                                  const std::set<uint32_t>& local,
                                  const std::string& storage = kHostStorage) {
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < shards; ++i)
    paths.push_back(bed.HostPath(
        host, local.count(i) ? ShardSegment(model, i, shards, storage)
                             : CopySegment(model, i, shards)));
  return paths;
}

// Waits (up to 30 s) until the tensor read through `paths` equals `want`.
bool Converges(const std::vector<std::string>& paths, const std::string& tensor,
               const std::vector<float>& want) {
  const auto deadline = SteadyClock::now() + seconds(30);
  std::vector<float> got(want.size());
  while (SteadyClock::now() < deadline) {
    auto view = ModelView::Open(paths);
    if (view.ok() &&
        (*view)->Copy(tensor, got.data(), got.size(), milliseconds(200)).ok() &&
        got == want)
      return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

// Every block of `host`'s copy of `shard` holds the shard's latest version.
void CheckFresh(const HostBed& bed, const std::string& host,
                const std::string& model, uint32_t shard, uint32_t shards) {
  auto fresh = ReplicaState::OpenReadOnly(
      bed.HostPath(host, CopyFreshness(model, shard, shards)));
  INFO(host << " shard " << shard << ": " << fresh.status().ToString());
  REQUIRE(fresh.ok());
  CHECK((*fresh)->WriterAlive());
  REQUIRE((*fresh)->num_blocks() > 0);
  long stale = 0;
  for (uint32_t b = 0; b < (*fresh)->num_blocks(); ++b) {
    const BlockFreshness& f = (*fresh)->block(b);
    if (f.held.load() != f.latest.load() || f.held.load() == 0 ||
        f.behind_since_ns.load() != 0 || f.received_ns.load() == 0)
      ++stale;
  }
  CHECK(stale == 0);
}

std::vector<float> PullAll(Client& client, const std::string& tensor,
                           size_t n) {
  std::vector<float> w(n);
  const Status s = client.Pull(tensor, w.data(), w.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return w;
}

uint64_t RxBytes(const HostBed& bed, const std::string& host) {
  auto c = bed.Counters(host);
  INFO(c.status().ToString());
  REQUIRE(c.ok());
  return c->first;
}

TEST_CASE(
    "replicas on every host mirror the shards not on it and converge: "
    "each change crosses to a host once",
    "[multihost][replica]") {
  SHARDPS_REQUIRE_BED(bed, 3, Named("repl"));
  // 32 blocks of 64 KiB (2 MiB): large enough that the stream dominates a
  // host's received bytes.
  constexpr uint64_t kBlock = 16384, kFloats = 32 * kBlock;
  constexpr double kModelBytes = kFloats * sizeof(float);
  BedCluster cluster(*bed,
                     SpecText("rb", kBlock, 1.0, {{"w", {kFloats}, "zeros"}}));
  cluster.Serve(0, 2, "h1");
  cluster.Serve(1, 2, "h2");
  const std::string cluster_file = cluster.WriteClusterFile();

  // Each replica mirrors exactly the shards whose segment is not on its host.
  auto r1 = StartReplicaOn(*bed, cluster, "h1", cluster_file, "1", "0");
  auto r2 = StartReplicaOn(*bed, cluster, "h2", cluster_file, "0", "1");
  auto r3 = StartReplicaOn(*bed, cluster, "h3", cluster_file, "0,1", "");
  // No copy of a host's own shard.
  CHECK_FALSE(
      ReplicaState::OpenReadOnly(bed->HostPath("h1", CopyFreshness("rb", 0, 2)))
          .ok());
  CHECK_FALSE(
      ReplicaState::OpenReadOnly(bed->HostPath("h2", CopyFreshness("rb", 1, 2)))
          .ok());

  const std::vector<std::vector<std::string>> views = {
      HostView(*bed, "h1", "rb", 2, {0}), HostView(*bed, "h2", "rb", 2, {1}),
      HostView(*bed, "h3", "rb", 2, {})};

  WorkerArgs args;
  args.cluster = cluster_file;
  args.tensors = {"w"};
  args.pushes = 1;
  args.ramp = true;  // element j gets 1 + j % 8: a misplaced block shows
  args.curve_key = cluster.client_key();
  constexpr int kRounds = 3;
  for (int round = 1; round <= kRounds; ++round) {
    // One push from a trainer on h3 changes every block once; h3's replica
    // must receive each block once (about one model), however many
    // trainers on h3 read the copy: they map it, and reading costs no
    // bytes. Twice the model would mean a block crossed twice (per
    // trainer, or per shard). The bound allows TCP/CURVE framing, version
    // beacons and re-subscribes.
    const uint64_t rx0 = RxBytes(*bed, "h3");
    const auto pushed = bed->Run("h3", WorkerArgv(args), 60);
    INFO(pushed.err);
    REQUIRE(pushed.status.ok());
    std::vector<float> want(kFloats);
    for (size_t j = 0; j < kFloats; ++j) want[j] = -float(round * (1 + j % 8));
    for (size_t h = 0; h < views.size(); ++h) {
      INFO("round " << round << ", h" << h + 1 << "'s view");
      REQUIRE(Converges(views[h], "w", want));
    }
    const double rx = double(RxBytes(*bed, "h3") - rx0);
    INFO("round " << round << ": h3 received " << rx << " bytes, model "
                  << kModelBytes);
    std::printf("replica bed: round %d: h3 received %.0f bytes = %.3f models\n",
                round, rx, rx / kModelBytes);
    CHECK(rx >= kModelBytes);
    CHECK(rx <= 1.25 * kModelBytes + 128 * 1024);
  }
  CheckFresh(*bed, "h1", "rb", 1, 2);
  CheckFresh(*bed, "h2", "rb", 0, 2);
  CheckFresh(*bed, "h3", "rb", 0, 2);
  CheckFresh(*bed, "h3", "rb", 1, 2);
  for (ChildProcess* r : {r1.get(), r2.get(), r3.get()}) {
    INFO(r->Stderr());
    CHECK(r->Running());
  }
}

// Reads a clock worker's stdout to its "done" line; returns every line.
std::vector<std::string> ReadToDone(ChildProcess& worker) {
  std::vector<std::string> lines;
  for (;;) {
    auto line = worker.ReadLine(seconds(60));
    INFO("stderr: " << worker.Stderr());
    REQUIRE(line.has_value());
    if (*line == "done") return lines;
    INFO(*line);
    REQUIRE(line->rfind("error", 0) != 0);
    lines.push_back(*line);
  }
}

TEST_CASE(
    "bsp across hosts: after Clock().Wait() a trainer's host replica "
    "holds that clock and its view is exactly that clock's model",
    "[multihost][replica]") {
  SHARDPS_REQUIRE_BED(bed, 2, Named("repbsp"));
  constexpr uint64_t kBlock = 1024, kFloats = 5000;  // 5 blocks, both shards
  BedCluster cluster(*bed,
                     SpecText("rs", kBlock, 1.0, {{"w", {kFloats}, "zeros"}}) +
                         "\n[consistency]\nmode = \"bsp\"\n"
                         "workers = 2\n");
  cluster.Serve(0, 2, "h1");
  cluster.Serve(1, 2, "h2");
  const std::string cluster_file = cluster.WriteClusterFile();
  auto r1 = StartReplicaOn(*bed, cluster, "h1", cluster_file, "1", "0");
  auto r2 = StartReplicaOn(*bed, cluster, "h2", cluster_file, "0", "1");

  constexpr int kClocks = 6;
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (uint32_t w = 0; w < 2; ++w) {
    // Worker w on h<w+1>, which holds shard w and a copy of the other.
    const uint32_t other = 1 - w;
    std::vector<std::string> views(2);
    views[w] = ShardSegment("rs", w, 2);
    views[other] = CopySegment("rs", other, 2);
    auto child = bed->Spawn(
        HostBed::Host(int(w) + 1),
        {SHARDPS_CLOCK_WORKER, "--cluster", cluster_file, "--tensor", "w",
         "--worker", std::to_string(w), "--clocks", std::to_string(kClocks),
         "--timeout-ms", "20000", "--curve-key", cluster.client_key(), "--view",
         views[0], "--view", views[1], "--fresh", CopyFreshness("rs", other, 2),
         "--pull",
         // The slower worker makes the other wait at each clock.
         "--sleep-ms", w == 1 ? "30" : "0"});
    INFO(child.status().ToString());
    REQUIRE(child.ok());
    workers.push_back(std::move(child).value());
  }
  // sgd lr 1: worker w pushes (w+1)(c+1) at clock c, so after clock n every
  // weight is -3 * n(n+1)/2: all of clock n's gradients, none of n+1's.
  for (uint32_t w = 0; w < 2; ++w) {
    const std::vector<std::string> lines = ReadToDone(*workers[w]);
    int seen = 0, pulled = 0;
    for (const std::string& line : lines) {
      int n = 0;
      double lo = 0, hi = 0;
      const bool view =
          std::sscanf(line.c_str(), "view %d %lf %lf", &n, &lo, &hi) == 3;
      const bool pull =
          std::sscanf(line.c_str(), "pulled %d %lf %lf", &n, &lo, &hi) == 3;
      if (!view && !pull) continue;
      (view ? seen : pulled)++;
      const double want = -3.0 * n * (n + 1) / 2;
      INFO("worker " << w << ": " << line << ", want " << want);
      CHECK(lo == want);
      CHECK(hi == want);
    }
    CHECK(seen == kClocks);
    CHECK(pulled == kClocks);
    const auto exit = workers[w]->Wait(kExitTimeout);
    REQUIRE(exit.has_value());
    CHECK(exit->ok());
  }
}

// Reads host h3's copies in a loop, as a trainer there would, and counts
// what it saw. A block is consistent when all its floats are equal (the
// test's gradients keep them so).
class CopyReader {
 public:
  CopyReader(std::vector<std::string> paths, uint64_t block, uint64_t floats)
      : paths_(std::move(paths)), block_(block), floats_(floats) {
    thread_ = std::thread([this] { Run(); });
  }
  ~CopyReader() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::atomic<long> ok{0}, timeouts{0}, corrupt{0}, other{0}, mixed{0};

 private:
  void Run() {
    std::vector<float> w(floats_);
    while (!stop_) {
      auto view = ModelView::Open(paths_);
      if (!view.ok()) {
        ++other;
        continue;
      }
      for (int k = 0; k < 20 && !stop_; ++k) {
        const Status s =
            (*view)->Copy("w", w.data(), w.size(), milliseconds(50));
        if (s.code() == Code::kTimeout) {
          ++timeouts;
        } else if (s.code() == Code::kCorrupt) {
          ++corrupt;
        } else if (!s.ok()) {
          ++other;
        } else {
          ++ok;
          for (uint64_t b = 0; b < floats_; b += block_)
            for (uint64_t j = b + 1; j < b + block_ && j < floats_; ++j)
              if (w[j] != w[b]) {
                if (mixed++ == 0)
                  std::fprintf(
                      stderr,
                      "mixed block at float %llu: [%llu]=%g [%llu]=%g\n",
                      (unsigned long long)b, (unsigned long long)b, w[b],
                      (unsigned long long)j, w[j]);
                break;
              }
        }
      }
    }
  }

  const std::vector<std::string> paths_;
  const uint64_t block_, floats_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Leaves block `b` of a dead replica's copy as a SIGKILL inside the
// replica's write leaves it (server/replica_link.cc OnBlock): received_ns
// cleared, the seqlock odd, half the floats new. Holds the copy's flock
// meanwhile, as the replica did.
void TearLikeACrash(const std::string& copy_path, const std::string& fresh_path,
                    uint32_t b) {
  auto copy = Segment::OpenExclusive(copy_path);
  INFO(copy.status().ToString());
  REQUIRE(copy.ok());
  auto read = ReplicaState::OpenReadOnly(fresh_path);
  REQUIRE(read.ok());
  const ReplicaStateHeader& h = (*read)->header();
  auto fresh = ReplicaState::OpenForWriting(
      fresh_path, h.spec_hash, h.shard_index, h.shard_count, h.num_blocks);
  INFO(fresh.status().ToString());
  REQUIRE(fresh.ok());
  REQUIRE(b < (*copy)->num_blocks());
  (*fresh)->block(b).received_ns.store(0);
  BeginWrite((*copy)->version(b));
  float* data = (*copy)->block_data(b);
  const uint64_t n = (*copy)->block(b).num_floats;
  for (uint64_t j = 0; j < n / 2; ++j) data[j] += 12345.0f;
}

TEST_CASE(
    "a replica killed with -9 under load: readers on its host see it "
    "down and never a torn block and after a restart it catches up",
    "[multihost][replica]") {
  SHARDPS_REQUIRE_BED(bed, 3, Named("repkill"));
  constexpr uint64_t kBlock = 1024, kFloats = 16 * kBlock;
  BedCluster cluster(*bed,
                     SpecText("rk", kBlock, 1.0, {{"w", {kFloats}, "zeros"}}));
  cluster.Serve(0, 2, "h1");
  cluster.Serve(1, 2, "h2");
  const std::string cluster_file = cluster.WriteClusterFile();
  auto replica = StartReplicaOn(*bed, cluster, "h3", cluster_file, "0,1", "");

  std::vector<WorkerProcess> workers;
  for (int h : {1, 2}) {
    WorkerArgs args;
    args.cluster = cluster_file;
    args.tensors = {"w"};
    args.until_signal = true;  // 1.0 everywhere: every block stays uniform
    args.timeout_ms = 15000;
    args.curve_key = cluster.client_key();
    auto w = StartWorkerOn(*bed, HostBed::Host(h), args);
    INFO(w.status().ToString());
    REQUIRE(w.ok());
    workers.push_back(std::move(w).value());
  }
  const std::vector<std::string> view = HostView(*bed, "h3", "rk", 2, {});
  REQUIRE(PumpUntilEachAcked(workers, 20, seconds(30)));
  CopyReader reader(view, kBlock, kFloats);
  std::vector<std::unique_ptr<ReplicaState>> fresh;
  for (uint32_t s = 0; s < 2; ++s) {
    auto f = ReplicaState::OpenReadOnly(
        bed->HostPath("h3", CopyFreshness("rk", s, 2)));
    REQUIRE(f.ok());
    CHECK((*f)->WriterAlive());
    fresh.push_back(std::move(f).value());
  }

  for (int round = 0; round < 2; ++round) {
    REQUIRE(PumpUntilEachAcked(workers, 20, seconds(30)));
    REQUIRE(replica->Signal(SIGKILL));
    const auto killed = replica->Wait(kExitTimeout);
    REQUIRE(killed.has_value());
    CHECK(killed->signal == SIGKILL);
    // While it is down: a reader on h3 can tell, and the workers go on.
    for (const auto& f : fresh) CHECK_FALSE(f->WriterAlive());
    const long ok_before = reader.ok.load();
    REQUIRE(PumpUntilEachAcked(workers, 20, seconds(30)));
    for (const auto& f : fresh) CHECK_FALSE(f->WriterAlive());
    // The reader went on reading the (stale) copies while it was down.
    const auto deadline = SteadyClock::now() + seconds(10);
    while (reader.ok.load() + reader.timeouts.load() + reader.corrupt.load() <=
               ok_before + 5 &&
           SteadyClock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(10));
    replica = StartReplicaOn(*bed, cluster, "h3", cluster_file, "0,1", "");
    for (const auto& f : fresh) CHECK(f->WriterAlive());
  }
  REQUIRE(PumpUntilEachAcked(workers, 20, seconds(30)));
  StopWorkers(workers);
  const long acked = AckedFirstTime(workers);
  const std::vector<float> final_w(kFloats, -float(acked));
  REQUIRE(Converges(view, "w", final_w));

  // A kill that "hits" block 0 of shard 0 inside its write, once nothing
  // changes any more: the shard has no reason to send that block again
  // unless the restarted replica asks for it (it holds no known version).
  REQUIRE(replica->Signal(SIGKILL));
  REQUIRE(replica->Wait(kExitTimeout).has_value());
  const long unreadable_before = reader.timeouts.load() + reader.corrupt.load();
  TearLikeACrash(bed->HostPath("h3", CopySegment("rk", 0, 2)),
                 bed->HostPath("h3", CopyFreshness("rk", 0, 2)), 0);
  // The torn block is never returned: the reader's copies time out (or say
  // kCorrupt) until the replica has the block again.
  const auto torn_deadline = SteadyClock::now() + seconds(10);
  while (reader.timeouts.load() + reader.corrupt.load() == unreadable_before &&
         SteadyClock::now() < torn_deadline)
    std::this_thread::sleep_for(milliseconds(10));
  CHECK(reader.timeouts.load() + reader.corrupt.load() > unreadable_before);
  replica = StartReplicaOn(*bed, cluster, "h3", cluster_file, "0,1", "");
  reader.Stop();
  INFO("reads: ok " << reader.ok << ", timeouts " << reader.timeouts
                    << ", corrupt " << reader.corrupt << ", other "
                    << reader.other);
  std::printf("replica bed: h3 reader: %ld ok, %ld timeouts, %ld corrupt\n",
              reader.ok.load(), reader.timeouts.load(), reader.corrupt.load());
  CHECK(reader.mixed == 0);
  CHECK(reader.other == 0);
  CHECK(reader.ok > 0);

  INFO(acked << " pushes acknowledged");
  REQUIRE(Converges(view, "w", final_w));
  {
    auto client = cluster.Connect(cluster_file);
    CHECK(PullAll(*client, "w", kFloats) == final_w);
  }
  CheckFresh(*bed, "h3", "rk", 0, 2);
  CheckFresh(*bed, "h3", "rk", 1, 2);
}

// Shards 0 on h1, 1 on h2 with checkpoints in the shared directory; 5 ramp
// pushes, a checkpoint, then 2 more, so that every copy holds versions
// newer than the checkpoint's. Returns the weights at the checkpoint.
std::vector<float> TrainPastCheckpoint(
    HostBed& bed, BedCluster& cluster, const std::string& cluster_file,
    uint64_t floats, const std::vector<std::vector<std::string>>& views) {
  WorkerArgs args;
  args.cluster = cluster_file;
  args.tensors = {"w"};
  args.pushes = 5;
  args.ramp = true;
  args.curve_key = cluster.client_key();
  const auto trained = bed.Run("h3", WorkerArgv(args), 60);
  INFO(trained.err);
  REQUIRE(trained.status.ok());
  const auto cp =
      bed.Run("h3", {kShardpsBinary, "checkpoint", "--cluster", cluster_file,
                     "--remote", "--curve-key", cluster.client_key()});
  INFO(cp.out << cp.err);
  REQUIRE(cp.status.ok());
  std::vector<float> at_checkpoint;
  {
    auto client = cluster.Connect(cluster_file);
    at_checkpoint = PullAll(*client, "w", floats);
  }
  args.pushes = 2;
  const auto more = bed.Run("h3", WorkerArgv(args), 60);
  INFO(more.err);
  REQUIRE(more.status.ok());
  std::vector<float> want(floats);
  for (size_t j = 0; j < floats; ++j) want[j] = -float(7 * (1 + j % 8));
  for (const auto& v : views) REQUIRE(Converges(v, "w", want));
  return at_checkpoint;
}

// `shardps restore` of the checkpoints on `host` into `storage`.
void RestoreOn(HostBed& bed, const BedCluster& cluster,
               const std::string& ckpt_dir, const std::string& host,
               const std::string& storage) {
  const auto restored =
      bed.Run(host, {kShardpsBinary, "restore", "--from", ckpt_dir, "--spec",
                     cluster.spec(), "--storage", storage});
  INFO(restored.out << restored.err);
  REQUIRE(restored.status.ok());
}

// The model once shard 1 alone is restored from the checkpoint: its blocks
// (the odd ones: blocks go round-robin over the 2 shards) as at the
// checkpoint, shard 0's as after all 7 pushes.
std::vector<float> AfterRestore(const std::vector<float>& at_checkpoint,
                                uint64_t block) {
  std::vector<float> want = at_checkpoint;
  for (size_t j = 0; j < want.size(); ++j)
    if ((j / block) % 2 == 0) want[j] = -float(7 * (1 + j % 8));
  return want;
}

// After the restore: the cluster and the copies hold the restored weights,
// and the copies go on following the restored shard (3 * ramp per push now,
// so a block left from before the restore cannot pass for a new one).
void FollowRestored(HostBed& bed, const BedCluster& cluster,
                    const std::string& cluster_file, uint64_t floats,
                    const std::vector<float>& restored,
                    const std::vector<std::vector<std::string>>& views) {
  {
    auto client = cluster.Connect(cluster_file);
    REQUIRE(PullAll(*client, "w", floats) == restored);
  }
  for (size_t v = 0; v < views.size(); ++v) {
    INFO("view " << v << " after the restore");
    REQUIRE(Converges(views[v], "w", restored));
  }
  WorkerArgs args;
  args.cluster = cluster_file;
  args.tensors = {"w"};
  args.pushes = 2;
  args.ramp = true;
  args.value = 3;
  args.curve_key = cluster.client_key();
  const auto more = bed.Run("h3", WorkerArgv(args), 60);
  INFO(more.err);
  REQUIRE(more.status.ok());
  std::vector<float> want = restored;
  for (size_t j = 0; j < floats; ++j) want[j] -= float(6 * (1 + j % 8));
  {
    auto client = cluster.Connect(cluster_file);
    REQUIRE(PullAll(*client, "w", floats) == want);
  }
  for (size_t v = 0; v < views.size(); ++v) {
    INFO("view " << v << " after training on");
    REQUIRE(Converges(views[v], "w", want));
  }
}

TEST_CASE(
    "a shard restored in place (new segment identity): a running "
    "replica re-subscribes and converges from a reset copy",
    "[multihost][replica]") {
  SHARDPS_REQUIRE_BED(bed, 3, Named("repinpl"));
  constexpr uint64_t kBlock = 1024, kFloats = 8 * kBlock;
  BedCluster cluster(*bed,
                     SpecText("ri", kBlock, 1.0, {{"w", {kFloats}, "zeros"}}));
  const std::string ckpt_dir = bed->SharedDir() + "/ckpt";
  cluster.Serve(0, 2, "h1", kBasePort, {"--checkpoint-dir", ckpt_dir});
  cluster.Serve(1, 2, "h2", kBasePort, {"--checkpoint-dir", ckpt_dir});
  const std::string cluster_file = cluster.WriteClusterFile();
  auto r1 = StartReplicaOn(*bed, cluster, "h1", cluster_file, "1", "0");
  auto r3 = StartReplicaOn(*bed, cluster, "h3", cluster_file, "0,1", "");
  const std::vector<std::vector<std::string>> views = {
      HostView(*bed, "h1", "ri", 2, {0}), HostView(*bed, "h3", "ri", 2, {})};
  const std::vector<float> at_checkpoint =
      TrainPastCheckpoint(*bed, cluster, cluster_file, kFloats, views);

  // Shard 1 dies and comes back at the same address from its checkpoint, in
  // a new segment (another storage on h2: another identity, versions
  // counted afresh). The replicas keep running with the same cluster file.
  REQUIRE(cluster.server(1).Signal(SIGKILL));
  REQUIRE(cluster.server(1).Wait(kExitTimeout).has_value());
  constexpr const char* kRestored = "/dev/shm/restored";
  RestoreOn(*bed, cluster, ckpt_dir, "h2", kRestored);
  cluster.Serve(1, 2, "h2", kBasePort, {}, kRestored);
  FollowRestored(*bed, cluster, cluster_file, kFloats,
                 AfterRestore(at_checkpoint, kBlock), views);
  CheckFresh(*bed, "h1", "ri", 1, 2);
  CheckFresh(*bed, "h3", "ri", 1, 2);
  // The copies now follow the restored segment.
  for (const char* host : {"h1", "h3"}) {
    auto fresh = ReplicaState::OpenReadOnly(
        bed->HostPath(host, CopyFreshness("ri", 1, 2)));
    REQUIRE(fresh.ok());
    auto id = ReadSegmentIdentity(
        bed->HostPath("h2", ShardSegment("ri", 1, 2, kRestored)));
    REQUIRE(id.ok());
    CHECK((*fresh)->source() == *id);
  }
  for (ChildProcess* r : {r1.get(), r3.get()}) {
    INFO(r->Stderr());
    CHECK(r->Running());
  }
}

TEST_CASE(
    "a shard restored on another host: replicas started with the new "
    "cluster file reset their copy or find the shard local now",
    "[multihost][replica]") {
  SHARDPS_REQUIRE_BED(bed, 3, Named("repmove"));
  constexpr uint64_t kBlock = 1024, kFloats = 8 * kBlock;
  BedCluster cluster(*bed,
                     SpecText("rm", kBlock, 1.0, {{"w", {kFloats}, "zeros"}}));
  const std::string ckpt_dir = bed->SharedDir() + "/ckpt";
  cluster.Serve(0, 2, "h1", kBasePort, {"--checkpoint-dir", ckpt_dir});
  cluster.Serve(1, 2, "h2", kBasePort, {"--checkpoint-dir", ckpt_dir});
  const std::string cluster_file = cluster.WriteClusterFile();
  auto r1 = StartReplicaOn(*bed, cluster, "h1", cluster_file, "1", "0");
  auto r3 = StartReplicaOn(*bed, cluster, "h3", cluster_file, "0,1", "");
  const std::vector<float> at_checkpoint = TrainPastCheckpoint(
      *bed, cluster, cluster_file, kFloats,
      {HostView(*bed, "h1", "rm", 2, {0}), HostView(*bed, "h3", "rm", 2, {})});

  // h2 is lost; shard 1 comes back on h1 from its checkpoint. The cluster
  // file changes (the shard's address did), so the engine restarts the
  // replicas with it: a replica reads the cluster file once.
  const Status killed = bed->KillHost("h2");
  INFO(killed.ToString());
  REQUIRE(killed.ok());
  CHECK(cluster.server(1).Wait(kExitTimeout).has_value());
  constexpr const char* kRestored = "/dev/shm/restored";
  RestoreOn(*bed, cluster, ckpt_dir, "h1", kRestored);
  cluster.Serve(1, 2, "h1", kBasePort + 1, {}, kRestored);
  const std::string moved = cluster.WriteClusterFile("cluster-moved.toml");
  for (ChildProcess* r : {r1.get(), r3.get()}) {
    REQUIRE(r->Signal(SIGTERM));
    const auto exit = r->Wait(kExitTimeout);
    REQUIRE(exit.has_value());
    INFO(r->Stderr());
    CHECK(exit->ok());
  }
  // h1 now holds both shards: nothing to mirror. h3 keeps its copies, but
  // shard 1's came from a segment that is gone: it must start again.
  r1 = StartReplicaOn(*bed, cluster, "h1", moved, "", "0,1");
  r3 = StartReplicaOn(*bed, cluster, "h3", moved, "0,1", "");
  std::vector<std::string> h1_view = {
      bed->HostPath("h1", ShardSegment("rm", 0, 2)),
      bed->HostPath("h1", ShardSegment("rm", 1, 2, kRestored))};
  FollowRestored(*bed, cluster, moved, kFloats,
                 AfterRestore(at_checkpoint, kBlock),
                 {h1_view, HostView(*bed, "h3", "rm", 2, {})});
  CheckFresh(*bed, "h3", "rm", 0, 2);
  CheckFresh(*bed, "h3", "rm", 1, 2);
}

}  // namespace
}  // namespace shardps::testing
