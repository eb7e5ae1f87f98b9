// Checkpointer: durations, option checks, checkpoints written on demand, by
// the timer and at a clean stop, pruned to the newest K, client requests
// answered through done_fd, and failures reported rather than fatal.
#include "server/checkpointer.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/posix_file.h"
#include "common/segment.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using std::chrono::milliseconds;

// A served segment on /dev/shm and a checkpoint root in a temp dir.
class Fixture {
 public:
  Fixture() : shm_("/dev/shm"), root_("/dev/shm") {
    spec_ =
        test::MakeSpec("ckpt", shm_.path(), {{"w", {3000}, "uniform:-1,1", 4}});
    path_ = Segment::PathFor(shm_.path(), "ckpt", 0, 1);
    segment_ = test::OpenServing(spec_, 0, 1, path_);
  }

  const std::string& segment_path() const { return path_; }
  std::string root() const { return root_.File("ckpts"); }
  const ModelSpec& spec() const { return spec_; }
  Segment& segment() { return *segment_; }

  CheckpointOptions Options(milliseconds every, uint32_t keep) const {
    CheckpointOptions o;
    o.root = root();
    o.every = every;
    o.keep = keep;
    return o;
  }

 private:
  test::TempDir shm_, root_;
  ModelSpec spec_;
  std::string path_;
  std::unique_ptr<Segment> segment_;
};

// The finished checkpoints in `dir` (not partial ones), oldest first.
std::vector<std::string> Checkpoints(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.find(".partial-") == std::string::npos) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Waits (10 s at most) until `fd` is readable.
bool Readable(int fd, int timeout_ms = 10000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST_CASE("ParseDuration reads ms, s, m, h and plain seconds",
          "[checkpointer]") {
  CHECK(*ParseDuration("500ms") == milliseconds(500));
  CHECK(*ParseDuration("30s") == milliseconds(30000));
  CHECK(*ParseDuration("10m") == milliseconds(600000));
  CHECK(*ParseDuration("2h") == milliseconds(7200000));
  CHECK(*ParseDuration("1.5") == milliseconds(1500));
  CHECK(*ParseDuration("0") == milliseconds(0));
  for (const char* bad : {"", "s", "abc", "-1s", "5x", "10 m", "1e13"}) {
    INFO("'" << bad << "'");
    auto d = ParseDuration(bad);
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().code() == Code::kInvalidArgument);
    CHECK_THAT(d.status().message(), Contains("use e.g. 500ms, 30s"));
  }
}

TEST_CASE("Checkpointer refuses bad options and an unusable directory",
          "[checkpointer]") {
  Fixture f;
  {
    Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(0), 3));
    const Status s = c.Start();
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Contains("--checkpoint-every"));
  }
  {
    Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(1000), 0));
    const Status s = c.Start();
    CHECK(s.code() == Code::kInvalidArgument);
    CHECK_THAT(s.message(), Contains("--checkpoint-keep must be >= 1"));
  }
  {
    // The root is a file: no directory can be made under it.
    test::WriteBytes(f.root(), {'x'});
    Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(1000), 3));
    const Status s = c.Start();
    CHECK(s.code() == Code::kIoError);
    CHECK_THAT(s.message(), Contains(f.root() + "/shard-0-of-1"));
  }
}

TEST_CASE("Checkpointer writes a restorable checkpoint of the shard",
          "[checkpointer]") {
  Fixture f;
  Checkpointer c(f.segment_path(), 2, 5, f.Options(milliseconds(3600000), 3));
  CHECK(c.shard_dir() == f.root() + "/shard-2-of-5");
  // The segment is shard 0 of 1, so restore it under its own name.
  Checkpointer own(f.segment_path(), 0, 1, f.Options(milliseconds(3600000), 3));
  REQUIRE(own.Start().ok());
  f.segment().block_data(1)[7] = 42.5f;
  auto dir = own.WriteOne();
  INFO(dir.status().ToString());
  REQUIRE(dir.ok());
  CHECK(fs::path(*dir).parent_path() == own.shard_dir());
  CHECK(Checkpoints(own.shard_dir()).size() == 1);
  own.Stop(false);

  test::TempDir restored("/dev/shm");
  ModelSpec spec = f.spec();
  spec.storage = restored.path();
  auto summary = RestoreCheckpoint(f.root(), spec, restored.path());
  INFO(summary.status().ToString());
  REQUIRE(summary.ok());
  auto seg =
      Segment::OpenReadOnly(Segment::PathFor(restored.path(), "ckpt", 0, 1));
  REQUIRE(seg.ok());
  CHECK((*seg)->block_data(1)[7] == 42.5f);
}

TEST_CASE("Checkpointer writes back-to-back checkpoints and keeps the newest",
          "[checkpointer]") {
  Fixture f;
  Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(3600000), 2));
  REQUIRE(c.Start().ok());
  std::vector<std::string> written;
  for (int i = 0; i < 4; ++i) {
    f.segment().block_data(0)[0] = static_cast<float>(i);
    auto dir = c.WriteOne();
    INFO("checkpoint " << i << ": " << dir.status().ToString());
    REQUIRE(dir.ok());
    written.push_back(fs::path(*dir).filename().string());
  }
  // Each has its own name, later ones sort after earlier ones, and only the
  // newest two are kept.
  CHECK(std::is_sorted(written.begin(), written.end()));
  CHECK(std::adjacent_find(written.begin(), written.end()) == written.end());
  CHECK(Checkpoints(c.shard_dir()) ==
        std::vector<std::string>{written[2], written[3]});
}

TEST_CASE("Checkpointer removes what a dead writer left, not a live one's",
          "[checkpointer]") {
  Fixture f;
  Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(3600000), 3));
  REQUIRE(c.Start().ok());
  // No process has pid 2^22 + 1 (above the kernel's pid_max limit).
  const std::string dead =
      c.shard_dir() + "/20000101T000000.000Z.partial-4194305";
  const std::string live = c.shard_dir() + "/20000101T000000.000Z.partial-" +
                           std::to_string(::getpid());
  fs::create_directories(dead);
  fs::create_directories(live);
  REQUIRE(c.WriteOne().ok());
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(live));
  CHECK(Checkpoints(c.shard_dir()).size() == 1);
}

TEST_CASE("Checkpointer answers requests through done_fd",
          "[checkpointer][concurrency]") {
  Fixture f;
  Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(3600000), 5));
  REQUIRE(c.Start().ok());
  CHECK_FALSE(Readable(c.done_fd(), 0));
  CHECK(c.TakeFinished().empty());

  c.Request(7);
  REQUIRE(Readable(c.done_fd()));
  std::vector<Checkpointer::Finished> done = c.TakeFinished();
  REQUIRE(done.size() == 1);
  CHECK(done[0].token == 7);
  INFO(done[0].dir.status().ToString());
  REQUIRE(done[0].dir.ok());
  CHECK(fs::is_directory(*done[0].dir));
  // Taking them clears done_fd.
  CHECK_FALSE(Readable(c.done_fd(), 0));

  // Every request is answered, whether or not they share a checkpoint.
  c.Request(8);
  c.Request(9);
  std::vector<uint64_t> tokens;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (tokens.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    if (!Readable(c.done_fd(), 100)) continue;
    for (const auto& d : c.TakeFinished()) {
      CHECK(d.dir.ok());
      tokens.push_back(d.token);
    }
  }
  std::sort(tokens.begin(), tokens.end());
  CHECK(tokens == std::vector<uint64_t>{8, 9});
  c.Stop(false);
  CHECK(Checkpoints(c.shard_dir()).size() >= 2);
}

TEST_CASE("Checkpointer reports a failed checkpoint to its requester",
          "[checkpointer][concurrency]") {
  Fixture f;
  Checkpointer c(f.segment_path() + ".missing", 0, 1,
                 f.Options(milliseconds(3600000), 3));
  REQUIRE(c.Start().ok());
  c.Request(3);
  REQUIRE(Readable(c.done_fd()));
  std::vector<Checkpointer::Finished> done = c.TakeFinished();
  REQUIRE(done.size() == 1);
  CHECK(done[0].token == 3);
  CHECK_FALSE(done[0].dir.ok());
  CHECK_THAT(done[0].dir.status().message(), Contains(".missing"));
  // The thread goes on: the next request is answered too.
  c.Request(4);
  REQUIRE(Readable(c.done_fd()));
  done = c.TakeFinished();
  REQUIRE(done.size() == 1);
  CHECK(done[0].token == 4);
  // A failing final checkpoint is reported on stderr, not thrown or fatal.
  c.Stop(true);
  CHECK(Checkpoints(c.shard_dir()).empty());
}

TEST_CASE("Checkpointer writes one every period and prunes to keep",
          "[checkpointer][concurrency]") {
  Fixture f;
  Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(20), 2));
  // Watch the shard directory for checkpoints renamed into place.
  fs::create_directories(c.shard_dir());
  UniqueFd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  REQUIRE(watch.get() >= 0);
  REQUIRE(::inotify_add_watch(watch.get(), c.shard_dir().c_str(),
                              IN_MOVED_TO) >= 0);
  REQUIRE(c.Start().ok());
  // Three periods' checkpoints: the third must prune the first.
  size_t renamed = 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (renamed < 3 && std::chrono::steady_clock::now() < deadline) {
    if (!Readable(watch.get(), 100)) continue;
    alignas(inotify_event) char buf[4096];
    const ssize_t got = ::read(watch.get(), buf, sizeof(buf));
    for (ssize_t at = 0; at < got;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
      if (e->mask & IN_MOVED_TO) ++renamed;
      at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
  c.Stop(false);
  CHECK(renamed >= 3);
  CHECK(Checkpoints(c.shard_dir()).size() == 2);
}

TEST_CASE("Checkpointer writes a final checkpoint at a clean stop only",
          "[checkpointer]") {
  Fixture f;
  {
    Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(3600000), 3));
    REQUIRE(c.Start().ok());
    c.Stop(false);
    CHECK(Checkpoints(c.shard_dir()).empty());
  }
  {
    Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(3600000), 3));
    REQUIRE(c.Start().ok());
    c.Stop(true);
    CHECK(Checkpoints(c.shard_dir()).size() == 1);
    c.Stop(true);  // stopped already: nothing more
    CHECK(Checkpoints(c.shard_dir()).size() == 1);
  }
  {
    // Never started: destroying it neither writes nor hangs.
    Checkpointer c(f.segment_path(), 0, 1, f.Options(milliseconds(3600000), 3));
    c.Stop(true);
    CHECK(Checkpoints(c.shard_dir()).size() == 1);
  }
}

}  // namespace
}  // namespace shardps
