// Checkpoint and restore through the CLI against real servers: the restored
// model equals the checkpointed one (weights, Adam state, table rows,
// clocks), and damaged or mismatching checkpoints are refused untouched.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/segment.h"
#include "shardps/client.h"
#include "tests/integration/client_fixture.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Finished checkpoints (not *.partial-*) under a shard's checkpoint dir,
// oldest first.
std::vector<std::string> Checkpoints(const std::string& shard_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(shard_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.find(".partial-") == std::string::npos)
      out.push_back(shard_dir + "/" + name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void FlipByte(const std::string& path, long offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(offset);
  char c = 0;
  f.read(&c, 1);
  f.seekp(offset);
  c = static_cast<char>(c ^ 0x40);
  f.write(&c, 1);
}

constexpr const char* kSpec = R"([model]
name = "ckpt"
block_floats = 1024

[optimizer]
kind = "adam"
lr = 0.01

[[tensor]]
name = "w"
shape = [3000]
init = "uniform:-1,1"

[[table]]
name = "emb"
dim = 4
capacity = 100
init = "constant:0.5"
)";

struct Model {
  std::vector<float> w, rows;
};

Model Read(Client& c) {
  Model m{std::vector<float>(3000), std::vector<float>(3 * 4)};
  const uint64_t ids[] = {1, 2, 99};
  REQUIRE(c.Pull("w", m.w.data(), m.w.size()).Wait().ok());
  REQUIRE(c.PullRows("emb", ids, 3, m.rows.data()).Wait().ok());
  return m;
}

void Train(Client& c, int steps) {
  std::vector<float> g(3000);
  const uint64_t ids[] = {1, 2, 99};
  std::vector<float> rows(12, 0.25f);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < g.size(); ++i) g[i] = float((i + s) % 7) - 3.0f;
    REQUIRE(c.Push("w", g.data(), g.size()).Wait().ok());
    REQUIRE(c.PushRows("emb", ids, 3, rows.data()).Wait().ok());
  }
}

// Two shards of `spec` on `storage`, with `serve_flags`.
std::unique_ptr<LocalCluster> Start(
    const std::string& spec, const std::string& storage,
    const std::string& cluster_file,
    const std::vector<std::string>& serve_flags = {}) {
  auto cluster =
      LocalCluster::Start(spec, storage, 2, cluster_file, serve_flags);
  INFO(cluster.status().ToString());
  REQUIRE(cluster.ok());
  return std::move(cluster).value();
}

// `shardps checkpoint` of the cluster in `cluster_file` to `to`.
RunResult Checkpoint(const std::string& cluster_file, const std::string& to) {
  return Run(
      {kShardpsBinary, "checkpoint", "--cluster", cluster_file, "--to", to});
}

// `shardps restore` of the checkpoint(s) at `from` to `storage`.
RunResult Restore(const std::string& from, const std::string& spec,
                  const std::string& storage) {
  return Run({kShardpsBinary, "restore", "--from", from, "--spec", spec,
              "--storage", storage});
}

// Restores `from` to dir/b, failing the test with restore's stderr when it
// fails, and starts two shards on it (cluster file dir/b.toml).
std::unique_ptr<LocalCluster> RestoreAndStart(const TempDir& dir,
                                              const std::string& from,
                                              const std::string& spec) {
  const RunResult restore = Restore(from, spec, dir.File("b"));
  INFO(restore.err);
  REQUIRE(restore.status.ok());
  return Start(spec, dir.File("b"), dir.File("b.toml"));
}

TEST_CASE("a restored checkpoint continues exactly where it was taken",
          "[integration][checkpoint]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), kSpec);
  const std::string ckpt = dir.File("ckpt-1");
  Model at_checkpoint, continued;
  {
    auto cluster = Start(spec, dir.File("a"), dir.File("a.toml"));
    auto client = Connect(cluster->info());
    Train(*client, 5);
    at_checkpoint = Read(*client);
    const RunResult cp = Checkpoint(dir.File("a.toml"), ckpt);
    INFO(cp.err);
    REQUIRE(cp.status.ok());
    // Each shard's source segment is recorded by its identity.
    const std::string manifest = ReadFileBytes(ckpt + "/MANIFEST");
    for (uint32_t i = 0; i < 2; ++i) {
      auto id = ReadSegmentIdentity(cluster->info().shards[i].segment);
      REQUIRE(id.ok());
      CHECK_THAT(manifest, Catch::Matchers::Contains(
                               "shard." + std::to_string(i) +
                               ".segment_identity = " + id->ToString()));
    }
    // A second checkpoint to the same place is refused: write once.
    CHECK(Checkpoint(dir.File("a.toml"), ckpt).status.code == 1);
    Train(*client, 3);  // the reference: three more steps, uninterrupted
    continued = Read(*client);
  }
  auto cluster = RestoreAndStart(dir, ckpt, spec);
  auto client = Connect(cluster->info());
  const Model restored = Read(*client);
  CHECK(restored.w == at_checkpoint.w);
  CHECK(restored.rows == at_checkpoint.rows);
  // Adam's moments and step counts came back too: the same three steps give
  // the same weights, bit for bit.
  Train(*client, 3);
  const Model after = Read(*client);
  CHECK(after.w == continued.w);
  CHECK(after.rows == continued.rows);
}

TEST_CASE("restore onto a live model says a server is using the segment",
          "[integration][checkpoint]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), kSpec);
  const std::string ckpt = dir.File("ckpt");
  auto cluster = Start(spec, dir.File("a"), dir.File("a.toml"));
  REQUIRE(Checkpoint(dir.File("a.toml"), ckpt).status.ok());
  // The servers still run on storage a: its segments are locked.
  RunResult r = Restore(ckpt, spec, dir.File("a"));
  INFO(r.err);
  CHECK(r.status.code == 1);
  CHECK_THAT(r.err, Catch::Matchers::Contains("in use by a running server"));
  CHECK_THAT(r.err, Catch::Matchers::Contains("stop it first"));
  CHECK_THAT(r.err, Catch::Matchers::Contains("pid "));
  CHECK_THAT(r.err, !Catch::Matchers::Contains("remove it first"));
  // Stopped, the segments are only files: remove them first, as before.
  cluster.reset();
  r = Restore(ckpt, spec, dir.File("a"));
  INFO(r.err);
  CHECK(r.status.code == 1);
  CHECK_THAT(r.err, Catch::Matchers::Contains("remove it first"));
}

TEST_CASE("damaged or foreign checkpoints are refused and nothing is made",
          "[integration][checkpoint]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), kSpec);
  const std::string ckpt = dir.File("ckpt");
  {
    auto cluster = Start(spec, dir.File("a"), dir.File("a.toml"));
    REQUIRE(Checkpoint(dir.File("a.toml"), ckpt).status.ok());
  }
  // Another spec: refused with the reason.
  std::string other = kSpec;
  other.replace(other.find("3000"), 4, "3001");
  const std::string other_spec = WriteSpec(dir.File("other.toml"), other);
  RunResult r = Restore(ckpt, other_spec, dir.File("b"));
  CHECK(r.status.code == 2);
  CHECK_THAT(r.err, Catch::Matchers::Contains("spec mismatch"));
  // One flipped byte in a shard file: refused by its checksum.
  FlipByte(ckpt + "/shard-1-of-2.ckpt", 100);
  r = Restore(ckpt, spec, dir.File("b"));
  CHECK(r.status.code == 2);
  CHECK_THAT(r.err, Catch::Matchers::Contains("CRC-32C"));
  // Nothing was created for either refusal.
  std::ifstream seg(dir.File("b") + "/ckpt/shard-0-of-2.seg");
  CHECK_FALSE(seg.good());
  // A missing checkpoint is a clear error too.
  r = Restore(dir.File("nope"), spec, dir.File("b"));
  CHECK(r.status.code == 2);
}

TEST_CASE(
    "servers checkpoint themselves periodically, keep the newest, and "
    "restore takes each shard's newest good one",
    "[integration][checkpoint]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), kSpec);
  const std::string root = dir.File("durable");
  Model final_model;
  {
    auto cluster = Start(spec, dir.File("a"), dir.File("a.toml"),
                         {"--checkpoint-dir", root, "--checkpoint-every",
                          "150ms", "--checkpoint-keep", "2"});
    auto client = Connect(cluster->info());
    Train(*client, 4);
    // Several periods pass; only the newest 2 of each shard stay.
    CHECK(cluster->server(0).process->WaitForStderr("checkpoint ", seconds(5)));
    std::this_thread::sleep_for(milliseconds(700));
    for (const char* shard : {"/shard-0-of-2", "/shard-1-of-2"}) {
      INFO(shard);
      CHECK(Checkpoints(root + shard).size() == 2);
    }
    Train(*client, 2);
    final_model = Read(*client);
    // A clean stop writes one last, exact checkpoint.
    for (uint32_t i = 0; i < 2; ++i) {
      REQUIRE(cluster->server(i).process->Signal(SIGTERM));
      const auto exit = cluster->server(i).process->Wait(kExitTimeout);
      REQUIRE(exit.has_value());
      CHECK(exit->ok());
    }
  }
  {
    auto cluster = RestoreAndStart(dir, root, spec);
    auto client = Connect(cluster->info());
    const Model restored = Read(*client);
    CHECK(restored.w == final_model.w);
    CHECK(restored.rows == final_model.rows);
  }

  // The newest of shard 0 damaged: restore says so and takes the one before.
  const std::vector<std::string> shard0 = Checkpoints(root + "/shard-0-of-2");
  REQUIRE(shard0.size() == 2);
  FlipByte(shard0.back() + "/shard-0-of-2.ckpt", 5000);
  RunResult r = Restore(root, spec, dir.File("c"));
  INFO(r.err);
  REQUIRE(r.status.ok());
  CHECK_THAT(r.err, Catch::Matchers::Contains("skipping " + shard0.back()));
  // Both shards' checkpoints damaged beyond use: refused, nothing made.
  FlipByte(shard0.front() + "/shard-0-of-2.ckpt", 5000);
  r = Restore(root, spec, dir.File("d"));
  CHECK(r.status.code == 2);
  CHECK_THAT(r.err,
             Catch::Matchers::Contains("no usable checkpoint of shard 0"));
  CHECK_FALSE(
      std::filesystem::exists(dir.File("d") + "/ckpt/shard-1-of-2.seg"));
}

TEST_CASE("checkpoint --remote makes every shard checkpoint itself",
          "[integration][checkpoint]") {
  TempDir dir;
  const std::string spec = WriteSpec(dir.File("spec.toml"), kSpec);
  const std::string root = dir.File("durable");
  Model at_checkpoint;
  {
    // No timer to speak of: only the client's request makes a checkpoint.
    auto cluster =
        Start(spec, dir.File("a"), dir.File("a.toml"),
              {"--checkpoint-dir", root, "--checkpoint-every", "10h"});
    auto client = Connect(cluster->info());
    Train(*client, 3);
    at_checkpoint = Read(*client);
    // The cluster file lists endpoints only: this works from any host.
    ClusterInfo remote = cluster->info();
    for (ShardAddress& s : remote.shards) s.segment.clear();
    REQUIRE(SaveCluster(remote, dir.File("remote.toml")).ok());
    const RunResult r = Run({kShardpsBinary, "checkpoint", "--cluster",
                             dir.File("remote.toml"), "--remote"});
    INFO(r.err);
    REQUIRE(r.status.ok());
    CHECK_THAT(r.out, Catch::Matchers::Contains("shard 0: " + root +
                                                "/shard-0-of-2/"));
    CHECK(Checkpoints(root + "/shard-0-of-2").size() == 1);
    CHECK(Checkpoints(root + "/shard-1-of-2").size() == 1);
    Train(*client, 2);  // after the checkpoint: not in it
    // Killed, not stopped: no final checkpoint; the remote one is newest.
    for (uint32_t i = 0; i < 2; ++i)
      REQUIRE(cluster->server(i).process->Signal(SIGKILL));
  }
  auto cluster = RestoreAndStart(dir, root, spec);
  auto client = Connect(cluster->info());
  const Model restored = Read(*client);
  CHECK(restored.w == at_checkpoint.w);
  CHECK(restored.rows == at_checkpoint.rows);

  // A shard without --checkpoint-dir says so.
  const RunResult refused = Run({kShardpsBinary, "checkpoint", "--cluster",
                                 dir.File("b.toml"), "--remote"});
  CHECK(refused.status.code != 0);
  CHECK_THAT(refused.err, Catch::Matchers::Contains("--checkpoint-dir"));
}

}  // namespace
}  // namespace shardps::testing
