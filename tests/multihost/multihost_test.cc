// A cluster across hosts, on the multi-host bed (scripts/hostbed): every
// host has its own address, hostname and private /dev/shm; shards bind to
// their host's address with CURVE on; workers and producers run on other
// hosts. Each test makes its own bed, so ctest may run them in parallel.
// Without root they print "SKIPPED: ..." and pass; CI runs them as root.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "shardps/batch_queue.h"
#include "shardps/client.h"
#include "tests/integration/worker_fixture.h"
#include "tests/multihost/bed_cluster.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kBlock = 1024;
constexpr uint64_t kFloats = 6 * kBlock;  // two blocks per shard of three

std::string Spec(const std::string& model, uint64_t floats = kFloats) {
  return SpecText(model, kBlock, 1.0, {{"w", {floats}, "zeros"}});
}

std::vector<float> PullW(Client& client, uint64_t floats = kFloats) {
  std::vector<float> w(floats);
  const Status s = client.Pull("w", w.data(), w.size()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return w;
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

HostBedOptions Named(const std::string& name) {
  HostBedOptions o;
  o.name = name;
  return o;
}

// Three shards, shard i on host h<i+1>, and their cluster file.
std::string ServeOnEveryHost(BedCluster& cluster,
                             const std::vector<std::string>& extra = {}) {
  for (uint32_t i = 0; i < 3; ++i)
    cluster.Serve(i, 3, HostBed::Host(int(i) + 1), kBasePort, extra);
  return cluster.WriteClusterFile();
}

TEST_CASE("workers on every host push to shards on every host: exact sums",
          "[multihost]") {
  SHARDPS_REQUIRE_BED(bed, 3, Named("sums"));
  BedCluster cluster(*bed, Spec("mh"));
  const std::string cluster_file = ServeOnEveryHost(cluster);

  // Each shard's segment is on its own host's tmpfs only.
  for (int h = 1; h <= 3; ++h)
    for (int s = 0; s < 3; ++s) {
      const std::string seg = std::string(kHostStorage) + "/mh/shard-" +
                              std::to_string(s) + "-of-3.seg";
      INFO("h" << h << " " << seg);
      CHECK(FileExists(bed->HostPath(HostBed::Host(h), seg)) == (s == h - 1));
    }

  constexpr int kPushes = 20;
  std::vector<WorkerProcess> workers;
  for (int h = 1; h <= 3; ++h) {
    WorkerArgs args;
    args.cluster = cluster_file;
    args.tensors = {"w"};
    args.pushes = kPushes;
    args.value = h;  // host h pushes h * (1 + j % 8)
    args.ramp = true;
    args.curve_key = cluster.client_key();
    auto w = StartWorkerOn(*bed, HostBed::Host(h), args);
    INFO(w.status().ToString());
    REQUIRE(w.ok());
    workers.push_back(std::move(w).value());
  }
  PumpWorkers(
      workers, [&] { return AllDone(workers); }, seconds(60));
  RequireAllExitedCleanly(workers);
  for (const WorkerProcess& w : workers) CHECK(w.done_acked == kPushes);

  auto client = cluster.Connect(cluster_file);
  const std::vector<float> w = PullW(*client);
  long wrong = 0;
  for (size_t j = 0; j < w.size(); ++j)
    // sgd, lr 1: w = -sum of the gradients = -(1 + 2 + 3) * 20 * (1 + j % 8)
    if (w[j] != -float(6 * kPushes * int(1 + j % 8))) ++wrong;
  CHECK(wrong == 0);
}

TEST_CASE(
    "kill -9 of one host's shard under load from the others: nothing "
    "acknowledged is lost or applied twice",
    "[multihost]") {
  SHARDPS_REQUIRE_BED(bed, 3, Named("kill9"));
  BedCluster cluster(*bed, Spec("mk"));
  const std::string cluster_file = ServeOnEveryHost(cluster);

  std::vector<WorkerProcess> workers;
  for (int h : {1, 3}) {
    WorkerArgs args;
    args.cluster = cluster_file;
    args.tensors = {"w"};
    args.until_signal = true;
    // No retries in the worker: the client's exactly-once retries must
    // carry every push over the outage within 30 s.
    args.timeout_ms = 30000;
    args.curve_key = cluster.client_key();
    auto w = StartWorkerOn(*bed, HostBed::Host(h), args);
    REQUIRE(w.ok());
    workers.push_back(std::move(w).value());
  }
  REQUIRE(PumpUntilEachAcked(workers, 10, seconds(30)));
  for (int round = 0; round < 2; ++round) {
    // Shard 1 lives on h2; its segment stays on h2's tmpfs.
    ChildProcess& victim = cluster.server(1);
    REQUIRE(victim.Signal(SIGKILL));
    const auto killed = victim.Wait(kExitTimeout);
    REQUIRE(killed.has_value());
    CHECK(killed->signal == SIGKILL);
    cluster.Serve(1, 3, "h2");
    INFO("restarted: " << cluster.server(1).Stderr());
    REQUIRE(PumpUntilEachAcked(workers, 10, seconds(30)));
  }
  StopWorkers(workers);
  const long acked = AckedFirstTime(workers);
  auto client = cluster.Connect(cluster_file);
  const std::vector<float> w = PullW(*client);
  long wrong = 0;
  for (float x : w)
    if (x != -float(acked)) ++wrong;
  INFO(acked << " pushes acknowledged");
  CHECK(wrong == 0);
}

TEST_CASE(
    "a lost host: clear errors within the timeout, then restore from a "
    "checkpoint on another host",
    "[multihost]") {
  SHARDPS_REQUIRE_BED(bed, 3, Named("lost"));
  BedCluster cluster(*bed, Spec("ml"));
  // The checkpoint directory is in the bed's shared directory, on the
  // machine's own filesystem: every host sees it, as every machine of a
  // cluster sees a shared mount (NFS, a parallel file system). It is not on
  // any host's /dev/shm, so it survives the host.
  const std::string ckpt_dir = bed->SharedDir() + "/ckpt";
  const std::string cluster_file =
      ServeOnEveryHost(cluster, {"--checkpoint-dir", ckpt_dir});

  WorkerArgs args;
  args.cluster = cluster_file;
  args.tensors = {"w"};
  args.pushes = 5;
  args.ramp = true;
  args.curve_key = cluster.client_key();
  const auto trained = bed->Run("h1", WorkerArgv(args), 60);
  INFO(trained.err);
  REQUIRE(trained.status.ok());
  const auto cp =
      bed->Run("h1", {kShardpsBinary, "checkpoint", "--cluster", cluster_file,
                      "--remote", "--curve-key", cluster.client_key()});
  INFO(cp.out << cp.err);
  REQUIRE(cp.status.ok());
  std::vector<float> at_checkpoint;
  {
    auto client = cluster.Connect(cluster_file);
    at_checkpoint = PullW(*client);
  }
  CHECK(at_checkpoint[1] == -10.0f);  // 5 pushes of 1 * (1 + 1)

  // Host h3 (shard 2) is lost.
  const Status killed = bed->KillHost("h3");
  INFO(killed.ToString());
  REQUIRE(killed.ok());
  CHECK(cluster.server(2).Wait(kExitTimeout).has_value());

  // Clients on the other hosts fail clearly within their timeout.
  constexpr int kTimeoutMs = 2000;
  args.pushes = 1;
  args.timeout_ms = kTimeoutMs;
  args.at_least_once = true;
  const auto t0 = Clock::now();
  const auto push = bed->Run("h2", WorkerArgv(args), 30);
  const auto pull = bed->Run(
      "h1",
      {kShardpsBinary, "pull", "--cluster", cluster_file, "--tensor", "w",
       "--out", "/dev/shm/w.npy", "--timeout-ms", std::to_string(kTimeoutMs),
       "--connect-timeout-ms", std::to_string(kTimeoutMs), "--curve-key",
       cluster.client_key()},
      30);
  const double took_s =
      std::chrono::duration<double>(Clock::now() - t0).count();
  INFO("push: " << push.status.ToString() << " " << push.err);
  INFO("pull: " << pull.status.ToString() << " " << pull.err);
  CHECK(push.status.exited);
  CHECK(push.status.code == 1);
  CHECK(pull.status.exited);
  CHECK(pull.status.code != 0);
  for (const std::string& err : {push.err, pull.err})
    CHECK((Contains(err, "timeout") || Contains(err, "timed out") ||
           Contains(err, "unavailable")));
  // Both ran one after the other, each bounded by its own deadlines
  // (connect, then request): far less than the 30 s it took to hang.
  CHECK(took_s < 4.0 * kTimeoutMs / 1000 + 4);

  // Shard 2 comes back on h1 from its checkpoint. `restore --from` the
  // run's directory rebuilds every shard's newest checkpoint; h1's own
  // shard 0 is live in h1's storage, so the restore goes to a storage of
  // its own and only shard 2 is served from it.
  constexpr const char* kRestored = "/dev/shm/restored";
  const auto restored =
      bed->Run("h1", {kShardpsBinary, "restore", "--from", ckpt_dir, "--spec",
                      cluster.spec(), "--storage", kRestored});
  INFO(restored.out << restored.err);
  REQUIRE(restored.status.ok());
  cluster.Serve(2, 3, "h1", kBasePort + 1, {}, kRestored);
  const std::string moved = cluster.WriteClusterFile("cluster-moved.toml");
  {
    auto client = cluster.Connect(moved);
    CHECK(PullW(*client) == at_checkpoint);
  }
  // A client on another host, with the updated cluster file, trains on.
  args.cluster = moved;
  args.at_least_once = false;
  args.timeout_ms = 15000;
  const auto more = bed->Run("h2", WorkerArgv(args), 60);
  INFO(more.err);
  REQUIRE(more.status.ok());
  auto client = cluster.Connect(moved);
  const std::vector<float> w = PullW(*client);
  long wrong = 0;
  for (size_t j = 0; j < w.size(); ++j)
    if (w[j] != at_checkpoint[j] - float(1 + j % 8)) ++wrong;
  CHECK(wrong == 0);
}

// The "produced" counter of `shardps queue inspect --json` on `host`, or -1.
long Produced(const HostBed& bed, const std::string& host,
              const std::string& queue) {
  const auto r =
      bed.Run(host, {kShardpsBinary, "queue", "inspect", "--json", queue});
  const size_t at = r.out.find("\"produced\": ");
  if (!r.status.ok() || at == std::string::npos) return -1;
  return std::stol(r.out.substr(at + 12));
}

// Waits up to 30 s for the queue's produced count to reach `count`.
bool WaitProduced(const HostBed& bed, const std::string& host,
                  const std::string& queue, long count) {
  const auto deadline = Clock::now() + seconds(30);
  while (Clock::now() < deadline) {
    if (Produced(bed, host, queue) >= count) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

TEST_CASE(
    "feed on one host streams into a queue served on another, with "
    "backpressure, until the trainer closes it",
    "[multihost]") {
  SHARDPS_REQUIRE_BED(bed, 2, Named("feed"));
  BedCluster cluster(*bed, Spec("mq", kBlock));
  constexpr int kSlots = 4;
  cluster.Serve(0, 1, "h2", kBasePort,
                {"--queue", "q:" + std::to_string(kSlots) + ":65536"});
  const std::string queue = std::string(kHostStorage) + "/mq/q.queue";

  // 400 rows: 397 windows of 3, 99 batches of 4, far more than 4 slots.
  const std::string csv = bed->SharedDir() + "/series.csv";
  {
    std::ofstream out(csv);
    out << "value\n";
    for (int i = 0; i < 400; ++i) out << i << "\n";
  }
  auto feed = bed->Spawn(
      "h1",
      {kShardpsBinary, "feed", "--queue",
       "tcp://" + bed->Address("h2") + ":" + std::to_string(kBasePort) + "/q",
       "--window", "3", "--horizon", "1", "--batch", "4", "--curve-key",
       cluster.client_key(), "--server-key", cluster.server_pub(), csv});
  REQUIRE(feed.ok());

  // The queue fills, and the producer is held: nothing more goes in while
  // no slot frees.
  REQUIRE(WaitProduced(*bed, "h2", queue, kSlots));
  CHECK((*feed)->Running());
  CHECK(Produced(*bed, "h2", queue) == kSlots);

  // The trainer on h2 takes 5 batches (the test opens h2's queue file
  // through h2's holder, the very file the server maps): 5 more go in.
  auto q = BatchQueue::Open(bed->HostPath("h2", queue));
  INFO(q.status().ToString());
  REQUIRE(q.ok());
  for (int k = 0; k < 5; ++k) {
    auto b = (*q)->Next(seconds(30));
    INFO(b.status().ToString());
    REQUIRE(b.ok());
    (*q)->Release(*b);
  }
  REQUIRE(WaitProduced(*bed, "h2", queue, kSlots + 5));
  CHECK((*feed)->Running());
  CHECK(Produced(*bed, "h2", queue) == kSlots + 5);

  // The trainer closes the queue: the producer stops, long before its 99
  // batches.
  const auto closed = bed->Run("h2", {kShardpsBinary, "queue", "close", queue});
  INFO(closed.err);
  REQUIRE(closed.status.ok());
  const auto exit = (*feed)->Wait(seconds(30));
  INFO((*feed)->Stderr());
  REQUIRE(exit.has_value());
  const std::string out = (*feed)->ReadRemainingStdout(seconds(5));
  INFO(out);
  CHECK(exit->exited);
  CHECK(Produced(*bed, "h2", queue) <= kSlots + 5 + 1);
  CHECK(Contains(out + (*feed)->Stderr(), "closed"));
}

}  // namespace
}  // namespace shardps::testing
