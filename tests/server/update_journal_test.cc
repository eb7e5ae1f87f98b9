// UpdateJournal: a block a crash left half-updated is put back whole, with
// its version, bsp clock and exactly-once window; a closed entry, or a
// journal from another segment, changes nothing.
#include "server/update_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/dedupe_window.h"
#include "common/segment.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

// Adam: weights plus two state slots per block, all saved by the journal.
ModelSpec JournalSpec(const std::string& storage) {
  ModelSpec spec =
      test::MakeSpec("journal", storage, {{"w", {3000}, "uniform:-1,1", 0}});
  spec.optimizer.kind = "adam";
  REQUIRE(ValidateModelSpec(spec).ok());
  return spec;
}

// The only shard of `spec`, its segment at `path`.
std::unique_ptr<Segment> OpenShard(const ModelSpec& spec,
                                   const std::string& path) {
  return test::OpenServing(spec, 0, 1, path);
}

std::unique_ptr<UpdateJournal> OpenJournal(Segment& seg, uint32_t writers,
                                           JournalReport* report) {
  return test::ValueOrThrow(UpdateJournal::Open(seg, writers, report));
}

// Weights and both Adam state slots of block `b`.
std::vector<float> Footprint(const Segment& seg, uint32_t b) {
  const uint64_t n = seg.block(b).num_floats;
  std::vector<float> out;
  out.insert(out.end(), seg.block_data(b), seg.block_data(b) + n);
  for (uint32_t k = 0; k < 2; ++k)
    out.insert(out.end(), seg.state_data(b, k), seg.state_data(b, k) + n);
  return out;
}

// What a crashed writer leaves: every float changed, version odd, window
// already showing the push.
void Scribble(Segment& seg, uint32_t b, uint32_t slot) {
  const uint64_t n = seg.block(b).num_floats;
  std::memset(seg.block_data(b), 0x7f, n * sizeof(float));
  std::memset(seg.state_data(b, 1), 0x11, n * sizeof(float));
  seg.version(b).seq.fetch_add(1);
  DedupeRecord(seg.dedupe_window(b, slot), 42, 7);
}

// Gives the (closed) segment at `path` the creation time `ms`, as if it had
// been created in that millisecond: rewrites the field and the header CRC.
void SetCreatedMs(const std::string& path, uint64_t ms) {
  std::vector<char> head(offsetof(SegmentHeader, header_crc));
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  bool ok = ::pread(fd, head.data(), head.size(), 0) ==
            static_cast<ssize_t>(head.size());
  std::memcpy(head.data() + offsetof(SegmentHeader, created_unix_ms), &ms,
              sizeof(ms));
  const uint32_t crc = Crc32c(head.data(), head.size());
  ok = ok &&
       ::pwrite(fd, head.data(), head.size(), 0) ==
           static_cast<ssize_t>(head.size()) &&
       ::pwrite(fd, &crc, sizeof(crc), offsetof(SegmentHeader, header_crc)) ==
           static_cast<ssize_t>(sizeof(crc));
  ::close(fd);
  REQUIRE(ok);
}

TEST_CASE("journal puts back a block a crash left mid-update", "[journal]") {
  test::TempDir dir;
  const ModelSpec spec = JournalSpec(dir.path());
  const std::string path = dir.File("shard.seg");
  std::vector<float> before;
  uint64_t seq_before = 0;
  {
    auto seg = OpenShard(spec, path);
    JournalReport report;
    auto journal = OpenJournal(*seg, 2, &report);
    CHECK(report.restored_blocks == 0);
    CHECK(report.discarded.empty());
    DedupeRecord(seg->dedupe_window(1, 3), 42, 6);
    before = Footprint(*seg, 1);
    seq_before = seg->version(1).seq.load();
    // Writer 1 updates block 1 and "dies" before Close.
    journal->Begin(1, 1, 3);
    Scribble(*seg, 1, 3);
    REQUIRE(Footprint(*seg, 1) != before);
  }
  auto seg = OpenShard(spec, path);
  JournalReport report;
  auto journal = OpenJournal(*seg, 1, &report);  // fewer writers this time
  CHECK(report.restored_blocks == 1);
  CHECK(report.discarded.empty());
  CHECK(Footprint(*seg, 1) == before);
  CHECK(seg->version(1).seq.load() == seq_before);
  const DedupeWindow& w = seg->dedupe_window(1, 3);
  CHECK(DedupeSeen(w, 42, 6));
  CHECK_FALSE(DedupeSeen(w, 42, 7));  // the torn push can be retried
}

TEST_CASE("journal leaves a completed update alone", "[journal]") {
  test::TempDir dir;
  const ModelSpec spec = JournalSpec(dir.path());
  const std::string path = dir.File("shard.seg");
  std::vector<float> after;
  {
    auto seg = OpenShard(spec, path);
    JournalReport report;
    auto journal = OpenJournal(*seg, 1, &report);
    journal->Begin(0, 0, 0);
    Scribble(*seg, 0, 0);
    seg->version(0).seq.fetch_add(1);  // EndWrite
    journal->Close(0);
    after = Footprint(*seg, 0);
  }
  auto seg = OpenShard(spec, path);
  JournalReport report;
  auto journal = OpenJournal(*seg, 1, &report);
  CHECK(report.restored_blocks == 0);
  CHECK(Footprint(*seg, 0) == after);
  CHECK(DedupeSeen(seg->dedupe_window(0, 0), 42, 7));
}

TEST_CASE("journal of another segment is discarded with the reason",
          "[journal]") {
  test::TempDir dir;
  const ModelSpec spec = JournalSpec(dir.path());
  const std::string path = dir.File("shard.seg");
  {
    auto seg = OpenShard(spec, path);
    JournalReport report;
    auto journal = OpenJournal(*seg, 1, &report);
    journal->Begin(0, 0, UpdateJournal::kNoSlot);
    Scribble(*seg, 0, 0);
  }
  // The segment is made anew (deleted and recreated); the old journal's
  // open entry must not be applied to it.
  REQUIRE(std::remove(path.c_str()) == 0);
  auto seg = OpenShard(spec, path);
  const std::vector<float> fresh = Footprint(*seg, 0);
  JournalReport report;
  auto journal = OpenJournal(*seg, 1, &report);
  CHECK(report.restored_blocks == 0);
  CHECK(report.discarded.find("another segment") != std::string::npos);
  CHECK(Footprint(*seg, 0) == fresh);

  // Garbage where the journal should be.
  journal.reset();
  test::WriteBytes(UpdateJournal::PathFor(path), std::vector<char>(5000, 'x'));
  auto again = OpenJournal(*seg, 1, &report);
  CHECK(report.discarded.find("not a shardps journal") != std::string::npos);
}

// Regression: the journal named its segment by created_unix_ms, so a
// segment deleted and recreated within one millisecond took over the old
// journal's open entry and had a block "restored" from another segment.
TEST_CASE("journal of a segment recreated in the same millisecond is discarded",
          "[journal]") {
  test::TempDir dir;
  const ModelSpec spec = JournalSpec(dir.path());
  const std::string path = dir.File("shard.seg");
  uint64_t created_ms = 0;
  {
    auto seg = OpenShard(spec, path);
    created_ms = seg->header().created_unix_ms;
    JournalReport report;
    auto journal = OpenJournal(*seg, 1, &report);
    journal->Begin(0, 0, UpdateJournal::kNoSlot);
    Scribble(*seg, 0, 0);
  }
  REQUIRE(std::remove(path.c_str()) == 0);
  OpenShard(spec, path).reset();  // the new segment, closed again
  SetCreatedMs(path, created_ms);
  auto seg = OpenShard(spec, path);
  REQUIRE(seg->header().created_unix_ms == created_ms);
  const std::vector<float> fresh = Footprint(*seg, 0);
  JournalReport report;
  auto journal = OpenJournal(*seg, 1, &report);
  CHECK(report.restored_blocks == 0);
  CHECK(report.discarded.find("another segment") != std::string::npos);
  CHECK(Footprint(*seg, 0) == fresh);
}

}  // namespace
}  // namespace shardps
