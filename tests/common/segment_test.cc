#include "common/segment.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/segment_format.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

// Three tensors, six blocks of 1024 floats: "w" has a short last block,
// "b" is smaller than a block, "z" is an exact multiple. With two shards the
// global blocks 0..5 alternate, so each shard holds parts of several tensors.
ModelSpec SegSpec(const std::string& storage, uint64_t w_cols = 1000) {
  return test::MakeSpec("segtest", storage,
                        {{"w", {3, w_cols}, "uniform:-1,1", 3},
                         {"b", {10}, "constant:0.5"},
                         {"z", {2048}, "zeros"}});
}

Result<std::unique_ptr<Segment>> Open(const ModelSpec& spec, uint32_t shard,
                                      uint32_t shards, const std::string& path,
                                      SegmentOpenReport* report) {
  return Segment::OpenForServing(spec, shard, shards, path, report);
}

std::unique_ptr<Segment> MustOpen(const ModelSpec& spec, uint32_t shard,
                                  uint32_t shards, const std::string& path,
                                  SegmentOpenReport* report) {
  auto seg = Open(spec, shard, shards, path, report);
  INFO(seg.status().ToString());
  REQUIRE(seg.ok());
  return std::move(seg).value();
}

std::unique_ptr<Segment> MustOpen(const ModelSpec& spec, uint32_t shard,
                                  uint32_t shards, const std::string& path) {
  SegmentOpenReport report;
  return MustOpen(spec, shard, shards, path, &report);
}

// Offset of the first differing byte, or -1 when the files are identical.
// (Comparing the vectors directly would make Catch print 30 KiB on failure.)
int64_t FirstDifference(const std::vector<char>& a,
                        const std::vector<char>& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

void PatchFile(const std::string& path, uint64_t offset, const void* bytes,
               size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  const ssize_t written = ::pwrite(fd, bytes, n, static_cast<off_t>(offset));
  ::close(fd);
  REQUIRE(written == static_cast<ssize_t>(n));
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::vector<char> bytes = test::ReadBytes(path);
  REQUIRE(offset < bytes.size());
  const char flipped = static_cast<char>(bytes[offset] ^ 0x5a);
  PatchFile(path, offset, &flipped, 1);
}

// Leaves the file as a server that was killed would: its pid still recorded
// and no clean shutdown. A refusal must not touch even these fields.
void SimulateCrashedOwner(const std::string& path) {
  const int32_t pid = 424242;
  PatchFile(path, offsetof(SegmentHeader, owner_pid), &pid, sizeof(pid));
}

// Creates shard `shard` of `shards` at `path`, writes a recognisable value
// into every block so a later overwrite would show, and "crashes".
void CreateUsedSegment(const ModelSpec& spec, uint32_t shard, uint32_t shards,
                       const std::string& path) {
  {
    auto seg = MustOpen(spec, shard, shards, path);
    for (uint32_t i = 0; i < seg->num_blocks(); ++i)
      seg->block_data(i)[0] = 1000.0f + static_cast<float>(i);
  }
  SimulateCrashedOwner(path);
}

// Expects OpenForServing to refuse `path` with `code` and a message that
// contains `fragment`, leaving every byte of the file as it was.
void ExpectRefused(const ModelSpec& spec, uint32_t shard, uint32_t shards,
                   const std::string& path, Code code,
                   const std::string& fragment) {
  const std::vector<char> before = test::ReadBytes(path);
  SegmentOpenReport report;
  auto seg = Open(spec, shard, shards, path, &report);
  REQUIRE_FALSE(seg.ok());
  CHECK(seg.status().code() == code);
  CHECK_THAT(seg.status().message(), Contains(fragment));
  CHECK(FirstDifference(before, test::ReadBytes(path)) == -1);
}

TEST_CASE("segment path names the model and shard", "[segment]") {
  CHECK(Segment::PathFor("/dev/shm/x", "demo", 1, 3) ==
        "/dev/shm/x/demo/shard-1-of-3.seg");
}

TEST_CASE("segment create then reopen keeps weights", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = Segment::PathFor(dir.path(), spec.name, 0, 2);
  {
    SegmentOpenReport report;
    auto seg = MustOpen(spec, 0, 2, path, &report);
    CHECK(report.created);
    for (uint32_t i = 0; i < seg->num_blocks(); ++i) {
      float* data = seg->block_data(i);
      for (uint64_t j = 0; j < seg->block(i).num_floats; ++j)
        data[j] = static_cast<float>(i * 10000 + j) * 0.25f;
    }
    seg->MarkCleanShutdown();
  }
  SegmentOpenReport report;
  auto seg = MustOpen(spec, 0, 2, path, &report);
  CHECK_FALSE(report.created);
  CHECK_FALSE(report.unclean);
  REQUIRE(seg->num_blocks() == 3);
  for (uint32_t i = 0; i < seg->num_blocks(); ++i) {
    const float* data = seg->block_data(i);
    for (uint64_t j = 0; j < seg->block(i).num_floats; ++j) {
      INFO("block " << i << " float " << j);
      REQUIRE(data[j] == static_cast<float>(i * 10000 + j) * 0.25f);
    }
  }
}

TEST_CASE("segment reopen after a crash keeps weights too", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  CreateUsedSegment(spec, 1, 2, path);  // never marked clean
  SegmentOpenReport report;
  auto seg = MustOpen(spec, 1, 2, path, &report);
  CHECK(report.unclean);
  for (uint32_t i = 0; i < seg->num_blocks(); ++i)
    CHECK(seg->block_data(i)[0] == 1000.0f + static_cast<float>(i));
  CHECK(seg->header().owner_pid.load() == ::getpid());
}

TEST_CASE("segment file is created mode 0600 in a private directory",
          "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = Segment::PathFor(dir.path(), spec.name, 0, 1);
  auto seg = MustOpen(spec, 0, 1, path);
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat((dir.path() + "/" + spec.name).c_str(), &st) == 0);
  CHECK((st.st_mode & 0077) == 0);  // the model directory it made
  // The private ".creating.<pid>" name it was built under is gone.
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(dir.path() + "/" + spec.name)) {
    CHECK(entry.path().filename() == "shard-0-of-1.seg");
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("segment writable by group or others is refused for serving",
          "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = Segment::PathFor(dir.path(), spec.name, 0, 1);
  MustOpen(spec, 0, 1, path).reset();
  const std::vector<char> before = test::ReadBytes(path);
  for (mode_t mode : {0620, 0602, 0666}) {
    INFO("mode " << std::oct << mode);
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    SegmentOpenReport report;
    auto seg = Open(spec, 0, 1, path, &report);
    CHECK(seg.status().code() == Code::kPermissionDenied);
    CHECK_THAT(seg.status().message(), Contains("chmod 600"));
  }
  CHECK(test::ReadBytes(path) == before);     // refused before touching it
  REQUIRE(::chmod(path.c_str(), 0644) == 0);  // others may read: fine
  MustOpen(spec, 0, 1, path);
}

TEST_CASE("segment owned by another user is refused for serving", "[segment]") {
  if (::geteuid() != 0) {
    WARN("needs root to give a file to another user; skipped");
    return;
  }
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = Segment::PathFor(dir.path(), spec.name, 0, 1);
  MustOpen(spec, 0, 1, path).reset();
  REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);  // nobody
  SegmentOpenReport report;
  auto seg = Open(spec, 0, 1, path, &report);
  CHECK(seg.status().code() == Code::kPermissionDenied);
  CHECK_THAT(seg.status().message(), Contains("owned by uid 65534"));
}

TEST_CASE("segment header describes the spec and shard", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  auto seg = MustOpen(spec, 1, 2, dir.File("s.seg"));
  const SegmentHeader& h = seg->header();
  CHECK(std::memcmp(h.magic, kSegmentMagic, sizeof(h.magic)) == 0);
  CHECK(std::string(h.model) == "segtest");
  CHECK(std::string(h.optimizer) == "sgd");
  CHECK(h.spec_hash == SpecHash(spec));
  CHECK(h.shard_index == 1);
  CHECK(h.shard_count == 2);
  CHECK(h.block_floats == 1024);
  CHECK(h.num_tensors == 3);
  CHECK(h.num_blocks == 3);  // global blocks 1, 3, 5
  CHECK(h.lr.load() == spec.optimizer.lr);
  CHECK(h.opens.load() == 1);
  CHECK(h.data_offset % kPageBytes == 0);
  for (uint32_t i = 0; i < seg->num_blocks(); ++i) {
    CHECK(seg->block(i).data_offset % kPageBytes == 0);
    CHECK(seg->block(i).data_bytes % kPageBytes == 0);
    CHECK(reinterpret_cast<uintptr_t>(seg->block_data(i)) % kPageBytes == 0);
  }
}

TEST_CASE("segment initial values match FillInitialValues", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  for (uint32_t shard = 0; shard < 2; ++shard) {
    auto seg = MustOpen(spec, shard, 2, dir.File("s" + std::to_string(shard)));
    for (uint32_t i = 0; i < seg->num_blocks(); ++i) {
      const BlockEntry& b = seg->block(i);
      std::vector<float> want(b.num_floats);
      FillInitialValues(spec.tensors[b.tensor], uint64_t{b.block} * 1024,
                        want.data(), want.size());
      INFO("shard " << shard << " block entry " << i);
      CHECK(std::memcmp(seg->block_data(i), want.data(),
                        want.size() * sizeof(float)) == 0);
    }
  }
  // Guard against a vacuous pass (everything zero): "w" is uniform(-1, 1)
  // and "b" constant 0.5, as the spec says.
  auto seg = MustOpen(spec, 0, 1, dir.File("one"));
  const float* w = seg->block_data(0);
  float lo = w[0], hi = w[0];
  for (int j = 0; j < 1024; ++j) {
    lo = std::min(lo, w[j]);
    hi = std::max(hi, w[j]);
  }
  CHECK(lo >= -1.0f);
  CHECK(hi < 1.0f);
  CHECK(hi - lo > 1.5f);
  const int64_t b = seg->LocalBlock(1, 0);
  REQUIRE(b >= 0);
  for (int j = 0; j < 10; ++j)
    CHECK(seg->block_data(static_cast<uint32_t>(b))[j] == 0.5f);
}

TEST_CASE("segment refuses a foreign file", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");

  SECTION("random bytes") {
    std::mt19937 rng(7);
    std::vector<char> junk(64 * 1024);
    for (char& c : junk) c = static_cast<char>(rng());
    test::WriteBytes(path, junk);
  }
  SECTION("a text file") {
    test::WriteBytes(
        path, std::vector<char>({'[', 'm', 'o', 'd', 'e', 'l', ']', '\n'}));
  }
  SECTION("a long text file") {
    const std::string line = "name = \"not a segment\"\n";
    std::vector<char> text;
    while (text.size() < 3 * kHeaderBytes)
      text.insert(text.end(), line.begin(), line.end());
    test::WriteBytes(path, text);
  }
  SECTION("an empty file") { test::WriteBytes(path, {}); }

  ExpectRefused(spec, 0, 1, path, Code::kCorrupt, "not a shardps segment");
  auto ro = Segment::OpenReadOnly(path);
  REQUIRE_FALSE(ro.ok());
  CHECK(ro.status().code() == Code::kCorrupt);
}

TEST_CASE("segment refuses a file with a damaged header or directory",
          "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  CreateUsedSegment(spec, 0, 2, path);

  std::string fragment;
  SECTION("flipped header byte") {
    // created_unix_ms: covered by the checksum, checked by nothing else.
    FlipByte(path, offsetof(SegmentHeader, created_unix_ms));
    fragment = "header checksum";
  }
  SECTION("flipped model name byte") {
    FlipByte(path, offsetof(SegmentHeader, model) + 2);
    fragment = "header checksum";
  }
  SECTION("flipped directory byte") {
    FlipByte(path, kHeaderBytes + 3);  // inside the first tensor's name
    fragment = "directory checksum";
  }
  SECTION("flipped byte in a block entry") {
    FlipByte(path, kHeaderBytes + 3 * sizeof(TensorEntry) +
                       offsetof(BlockEntry, data_offset) + 1);
    fragment = "directory checksum";
  }
  SECTION("truncated file") {
    const auto size = std::filesystem::file_size(path);
    std::filesystem::resize_file(path, size - kPageBytes);
    fragment = "truncated";
  }
  SECTION("file with bytes appended") {
    std::filesystem::resize_file(path,
                                 std::filesystem::file_size(path) + kPageBytes);
    fragment = "header says";
  }
  SECTION("unknown format version") {
    const uint32_t version = kSegmentFormatVersion + 1;
    PatchFile(path, offsetof(SegmentHeader, format_version), &version,
              sizeof(version));
    fragment = "format version";
  }
  ExpectRefused(spec, 0, 2, path, Code::kCorrupt, fragment);
  auto ro = Segment::OpenReadOnly(path);
  REQUIRE_FALSE(ro.ok());
  CHECK(ro.status().code() == Code::kCorrupt);
}

TEST_CASE("segment refuses a file from another spec", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  CreateUsedSegment(spec, 0, 2, path);

  SECTION("different shape") {
    ExpectRefused(SegSpec(dir.path(), 999), 0, 2, path, Code::kSpecMismatch,
                  "spec");
  }
  SECTION("different model name") {
    ModelSpec other = spec;
    other.name = "othermodel";
    ExpectRefused(other, 0, 2, path, Code::kSpecMismatch, "segtest");
  }
  SECTION("different block size") {
    ModelSpec other = spec;
    other.block_floats = 2048;
    ExpectRefused(other, 0, 2, path, Code::kSpecMismatch, "spec");
  }
  SECTION("another shard index") {
    ExpectRefused(spec, 1, 2, path, Code::kSpecMismatch, "shard 0 of 2");
  }
  SECTION("another shard count") {
    ExpectRefused(spec, 0, 3, path, Code::kSpecMismatch, "shard 0 of 2");
  }
}

TEST_CASE("segment reopens with a new learning rate, keeping weights",
          "[segment]") {
  // The learning rate is not part of the layout: a restart may change it.
  test::TempDir dir;
  ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  CreateUsedSegment(spec, 0, 1, path);
  spec.optimizer.lr = 0.125;
  auto seg = MustOpen(spec, 0, 1, path);
  CHECK(seg->header().lr.load() == 0.125);
  CHECK(seg->block_data(0)[0] == 1000.0f);
}

TEST_CASE("segment is exclusive to one server at a time", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  auto first = MustOpen(spec, 0, 2, path);
  first->block_data(0)[0] = 7.0f;

  const std::vector<char> before = test::ReadBytes(path);
  SegmentOpenReport report;
  auto second = Open(spec, 0, 2, path, &report);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kBusy);
  CHECK_THAT(second.status().message(), Contains("in use"));
  CHECK_THAT(second.status().message(),
             Contains("pid " + std::to_string(::getpid())));
  CHECK(FirstDifference(before, test::ReadBytes(path)) == -1);

  first.reset();
  auto third = MustOpen(spec, 0, 2, path, &report);
  CHECK_FALSE(report.created);
  CHECK(third->block_data(0)[0] == 7.0f);
}

TEST_CASE("segment repairs a block torn by a crash", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  uint64_t stable_version = 0;
  {
    auto seg = MustOpen(spec, 0, 2, path);
    seg->MarkCleanShutdown();  // so only the crash below counts
  }
  {
    SegmentOpenReport report;
    auto seg = MustOpen(spec, 0, 2, path, &report);
    CHECK_FALSE(report.unclean);
    seg->version(2).seq.store(6);  // three finished updates
    stable_version = 6;
    seg->version(1).seq.store(9);  // a writer died inside its fifth update
    // Destroyed without MarkCleanShutdown: a crash.
  }
  SegmentOpenReport report;
  auto seg = MustOpen(spec, 0, 2, path, &report);
  CHECK(report.unclean);
  CHECK(report.torn_blocks == 1);
  CHECK(seg->version(1).seq.load() == 10);
  CHECK(seg->version(2).seq.load() == stable_version);  // untouched
  CHECK(seg->version(0).seq.load() == 0);
  CHECK(seg->header().unclean_opens.load() == 1);
  CHECK(seg->header().opens.load() == 3);
}

// A host replica's copy is not the shard's data where a crash cut a write
// off: such a block must stay odd from the moment the file is reopened (a
// reader maps the copy meanwhile) until the shard sends it again.
TEST_CASE("a replica copy reopened after a crash keeps its torn block odd",
          "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  {
    auto seg = MustOpen(spec, 0, 2, path);
    seg->version(1).seq.store(9);  // the replica died inside a write
  }
  SegmentOpenReport report;
  auto seg = Segment::OpenForServing(spec, 0, 2, path, &report,
                                     Segment::TornBlocks::kKeepOdd);
  REQUIRE(seg.ok());
  CHECK(report.torn_blocks == 1);
  CHECK((*seg)->version(1).seq.load() == 9);
  CHECK((*seg)->version(0).seq.load() == 0);
}

TEST_CASE("segment marked clean reopens without a crash report", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  {
    SegmentOpenReport report;
    auto seg = MustOpen(spec, 0, 1, path, &report);
    CHECK(report.created);
    CHECK_FALSE(report.unclean);
    seg->MarkCleanShutdown();
    CHECK(seg->header().owner_pid.load() == 0);
  }
  SegmentOpenReport report;
  {
    auto seg = MustOpen(spec, 0, 1, path, &report);
    CHECK_FALSE(report.unclean);
    CHECK(report.torn_blocks == 0);
    // Serving again: a crash from here on must be detected.
    CHECK(seg->header().clean_shutdown.load() == 0);
  }
  MustOpen(spec, 0, 1, path, &report);
  CHECK(report.unclean);
}

// For every block of every tensor, the segment of the shard that owns it maps
// it to an entry describing exactly that block; every other shard says -1.
void CheckLocalBlocks(uint32_t shards) {
  INFO(shards << " shards");
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const ModelLayout layout(spec, shards);
  std::vector<std::unique_ptr<Segment>> segs;
  for (uint32_t s = 0; s < shards; ++s)
    segs.push_back(MustOpen(spec, s, shards, dir.File(std::to_string(s))));
  for (const TensorLayout& t : layout.tensors()) {
    for (uint32_t b = 0; b < t.num_blocks; ++b) {
      INFO("tensor " << t.name << " block " << b);
      for (uint32_t s = 0; s < shards; ++s) {
        const int64_t local = segs[s]->LocalBlock(t.index, b);
        if (s != layout.OwnerOf(t, b)) {
          CHECK(local == -1);
          continue;
        }
        REQUIRE(local >= 0);
        REQUIRE(local < segs[s]->num_blocks());
        const BlockEntry& e = segs[s]->block(static_cast<uint32_t>(local));
        CHECK(e.tensor == t.index);
        CHECK(e.block == b);
        CHECK(e.num_floats == layout.BlockLength(t, b));
      }
    }
    for (uint32_t s = 0; s < shards; ++s)
      CHECK(segs[s]->LocalBlock(t.index, t.num_blocks) == -1);
  }
  uint64_t total = 0;
  for (uint32_t s = 0; s < shards; ++s) {
    total += segs[s]->num_blocks();
    CHECK(segs[s]->LocalBlock(3, 0) == -1);  // no fourth tensor
    CHECK(segs[s]->LocalBlock(~0u, 0) == -1);
  }
  CHECK(total == layout.total_blocks());
}

TEST_CASE("segment LocalBlock maps every block to its owner's entry",
          "[segment]") {
  for (uint32_t shards : {1, 2, 3, 4, 7}) CheckLocalBlocks(shards);
}

TEST_CASE("segment of a shard that owns no blocks opens and reopens",
          "[segment]") {
  // Six blocks over eight shards: shards 6 and 7 hold only the directory.
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  {
    SegmentOpenReport report;
    auto seg = MustOpen(spec, 7, 8, path, &report);
    CHECK(report.created);
    CHECK(seg->num_blocks() == 0);
    CHECK(seg->num_tensors() == 3);  // every shard knows the whole model
    CHECK(seg->LocalBlock(0, 0) == -1);
    seg->MarkCleanShutdown();
  }
  SegmentOpenReport report;
  auto seg = MustOpen(spec, 7, 8, path, &report);
  CHECK_FALSE(report.created);
  CHECK_FALSE(report.unclean);
  auto ro = Segment::OpenReadOnly(path);
  CHECK(ro.ok());
}

TEST_CASE("segment rebuilds the layout it was made with", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  auto seg = MustOpen(spec, 2, 3, dir.File("s.seg"));
  const ModelLayout want(spec, 3);
  const ModelLayout got = seg->Layout();
  CHECK(got.shards() == 3);
  CHECK(got.block_floats() == want.block_floats());
  REQUIRE(got.tensors().size() == want.tensors().size());
  for (size_t i = 0; i < want.tensors().size(); ++i) {
    CHECK(got.tensors()[i].name == want.tensors()[i].name);
    CHECK(got.tensors()[i].shape == want.tensors()[i].shape);
    CHECK(got.tensors()[i].first_global_block ==
          want.tensors()[i].first_global_block);
  }
}

TEST_CASE("segment opens read-only while a server holds it", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  auto server = MustOpen(spec, 0, 2, path);
  server->block_data(1)[5] = 42.5f;

  auto ro = Segment::OpenReadOnly(path);
  INFO(ro.status().ToString());
  REQUIRE(ro.ok());
  const Segment& reader = **ro;
  CHECK_FALSE(reader.writable());
  CHECK(reader.header().spec_hash == SpecHash(spec));
  CHECK(reader.num_blocks() == server->num_blocks());
  CHECK(reader.block_data(1)[5] == 42.5f);
  // The mapping is shared and live: later writes show without reopening.
  server->block_data(1)[5] = -3.0f;
  CHECK(reader.block_data(1)[5] == -3.0f);
  // Readers hold no lock, so they never keep a server out.
  CHECK(server->header().owner_pid.load() == ::getpid());
}

TEST_CASE("segments get different identities that survive a reopen",
          "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  SegmentId first;
  {
    auto seg = MustOpen(spec, 0, 2, path);
    first = seg->identity();
    CHECK_FALSE(first.empty());
    CHECK(first.ToString().size() == 32);
    auto parsed = ParseSegmentId(first.ToString());
    REQUIRE(parsed.ok());
    CHECK(*parsed == first);
  }
  {
    SegmentOpenReport report;
    auto seg = MustOpen(spec, 0, 2, path, &report);
    REQUIRE_FALSE(report.created);
    CHECK(seg->identity() == first);
  }
  auto ro = Segment::OpenReadOnly(path);
  REQUIRE(ro.ok());
  CHECK((*ro)->identity() == first);
  auto read = ReadSegmentIdentity(path);
  REQUIRE(read.ok());
  CHECK(*read == first);

  // The same shard of the same spec made again at the same path, and
  // another shard: new identities each time.
  ro->reset();
  REQUIRE(std::remove(path.c_str()) == 0);
  const SegmentId again = MustOpen(spec, 0, 2, path)->identity();
  const SegmentId other = MustOpen(spec, 1, 2, dir.File("t.seg"))->identity();
  CHECK(again != first);
  CHECK(other != first);
  CHECK(other != again);
}

TEST_CASE("segment identity reads refuse what is not a current segment",
          "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  MustOpen(spec, 0, 2, path).reset();
  CHECK(ReadSegmentIdentity(dir.File("missing.seg")).status().code() ==
        Code::kNotFound);
  SECTION("a format 4 segment") {
    const uint32_t old = 4;
    PatchFile(path, offsetof(SegmentHeader, format_version), &old, sizeof(old));
    const Status s = ReadSegmentIdentity(path).status();
    CHECK(s.code() == Code::kCorrupt);
    CHECK_THAT(s.message(), Contains("unsupported segment format version 4"));
    CHECK_THAT(Segment::OpenReadOnly(path).status().message(),
               Contains("unsupported segment format version 4"));
  }
  SECTION("a damaged identity") {
    FlipByte(path, offsetof(SegmentHeader, identity) + 3);
    CHECK_THAT(ReadSegmentIdentity(path).status().message(),
               Contains("header checksum"));
  }
}

TEST_CASE("segment tells whether a server holds its lock", "[segment]") {
  test::TempDir dir;
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("s.seg");
  {
    auto server = MustOpen(spec, 0, 2, path);
    auto ro = Segment::OpenReadOnly(path);
    REQUIRE(ro.ok());
    auto held = (*ro)->HeldByServer();
    REQUIRE(held.ok());
    CHECK(*held);
    // Asking did not take the server's lock away.
    CHECK(Segment::OpenExclusive(path).status().code() == Code::kBusy);
  }
  // The recorded pid of a crashed owner does not make it a server.
  SimulateCrashedOwner(path);
  auto ro = Segment::OpenReadOnly(path);
  REQUIRE(ro.ok());
  REQUIRE((*ro)->header().owner_pid.load() != 0);
  auto held = (*ro)->HeldByServer();
  REQUIRE(held.ok());
  CHECK_FALSE(*held);
  // Nor did the test leave a lock behind.
  auto repairer = Segment::OpenExclusive(path);
  INFO(repairer.status().ToString());
  CHECK(repairer.ok());
}

TEST_CASE("segment OpenReadOnly reports a missing file", "[segment]") {
  test::TempDir dir;
  auto ro = Segment::OpenReadOnly(dir.File("nothing.seg"));
  REQUIRE_FALSE(ro.ok());
  CHECK(ro.status().code() == Code::kNotFound);
}

// ---- ValidateSegmentImage on damaged images ----

struct FreeDeleter {
  void operator()(char* p) const { ::free(p); }
};
using AlignedBuffer = std::unique_ptr<char, FreeDeleter>;

// Exactly `size` bytes (so ASan sees any read past them), aligned like the
// page-aligned mapping the validator normally reads.
AlignedBuffer Allocate(size_t size) {
  void* p = nullptr;
  REQUIRE(::posix_memalign(&p, kPageBytes, size) == 0);
  return AlignedBuffer(static_cast<char*>(p));
}

bool Fits(uint64_t offset, uint64_t bytes, uint64_t size) {
  return offset <= size && bytes <= size - offset;
}

// What every caller of a validated image relies on: each region, entry and
// block lies inside the image, so no pointer built from it can stray.
void CheckImageInvariants(const char* image, size_t size) {
  const auto& h = *reinterpret_cast<const SegmentHeader*>(image);
  REQUIRE(h.file_bytes == size);
  REQUIRE(Fits(h.directory_offset, h.directory_bytes, size));
  REQUIRE(h.directory_bytes >= h.num_tensors * sizeof(TensorEntry) +
                                   h.num_blocks * sizeof(BlockEntry));
  REQUIRE(Fits(h.versions_offset, uint64_t{h.num_blocks} * sizeof(BlockVersion),
               size));
  REQUIRE(Fits(h.data_offset, h.data_bytes, size));
  const auto* tensors =
      reinterpret_cast<const TensorEntry*>(image + h.directory_offset);
  const auto* blocks =
      reinterpret_cast<const BlockEntry*>(tensors + h.num_tensors);
  for (uint32_t i = 0; i < h.num_tensors; ++i)
    REQUIRE(uint64_t{tensors[i].first_local} + tensors[i].local_blocks <=
            h.num_blocks);
  for (uint32_t i = 0; i < h.num_blocks; ++i) {
    INFO("block entry " << i);
    REQUIRE(blocks[i].tensor < h.num_tensors);
    REQUIRE(Fits(blocks[i].data_offset, blocks[i].data_bytes, size));
    REQUIRE(blocks[i].num_floats <= blocks[i].data_bytes / sizeof(float));
  }
}

// Recomputes both checksums so a mutation reaches the structural checks
// behind them instead of stopping at the first CRC.
void FixChecksums(char* image, size_t size) {
  auto* h = reinterpret_cast<SegmentHeader*>(image);
  const uint64_t dir_bytes = uint64_t{h->num_tensors} * sizeof(TensorEntry) +
                             uint64_t{h->num_blocks} * sizeof(BlockEntry);
  if (Fits(h->directory_offset, dir_bytes, size))
    h->directory_crc = Crc32c(image + h->directory_offset, dir_bytes);
  h->header_crc = Crc32c(h, offsetof(SegmentHeader, header_crc));
}

// A valid image of a small segment, read from a real file.
std::vector<char> ValidImage(const test::TempDir& dir) {
  const ModelSpec spec = SegSpec(dir.path());
  const std::string path = dir.File("image.seg");
  MustOpen(spec, 0, 1, path)->MarkCleanShutdown();
  std::vector<char> image = test::ReadBytes(path);
  REQUIRE(ValidateSegmentImage(image.data(), image.size()).ok());
  return image;
}

// Applies one random change inside the checked area: header fields or the
// directory.
void Mutate(std::mt19937_64& rng, char* image, size_t size,
            uint64_t directory_end) {
  const uint64_t interesting[] = {0,
                                  1,
                                  63,
                                  64,
                                  kPageBytes,
                                  0xffffffffull,
                                  1ull << 32,
                                  1ull << 62,
                                  1ull << 63,
                                  ~0ull,
                                  ~0ull - kPageBytes + 1,
                                  size,
                                  size - kPageBytes};
  const bool in_header = rng() % 2 == 0;
  const uint64_t lo = in_header ? 0 : kHeaderBytes;
  const uint64_t hi =
      in_header ? offsetof(SegmentHeader, header_crc) : directory_end;
  const uint64_t pos = lo + rng() % (hi - lo);
  switch (rng() % 3) {
    case 0:
      image[pos] = static_cast<char>(image[pos] ^ (1 << (rng() % 8)));
      break;
    case 1:
      image[pos] = static_cast<char>(rng());
      break;
    default: {
      const uint64_t v = interesting[rng() % std::size(interesting)];
      const uint64_t at = std::min(pos & ~uint64_t{7}, hi - sizeof(v));
      std::memcpy(image + at, &v, sizeof(v));
    }
  }
}

TEST_CASE("segment image validation survives thousands of mutations",
          "[segment]") {
  test::TempDir dir;
  const std::vector<char> image = ValidImage(dir);
  const auto& h = *reinterpret_cast<const SegmentHeader*>(image.data());
  const uint64_t directory_end = h.directory_offset + h.directory_bytes;
  std::mt19937_64 rng(20240601);
  int refused = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    AlignedBuffer buf = Allocate(image.size());
    std::memcpy(buf.get(), image.data(), image.size());
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m)
      Mutate(rng, buf.get(), image.size(), directory_end);
    const bool fixed = rng() % 4 != 0;
    if (fixed) FixChecksums(buf.get(), image.size());
    Status s = ValidateSegmentImage(buf.get(), image.size());
    INFO("iteration " << iter << (fixed ? " (checksums fixed)" : ""));
    if (s.ok()) {
      CheckImageInvariants(buf.get(), image.size());
    } else {
      ++refused;
      CHECK(s.code() == Code::kCorrupt);
      CHECK_FALSE(s.message().empty());
    }
  }
  // Most mutations must be caught; some (e.g. a byte of unused name padding
  // with fixed checksums) are harmless and may pass.
  CHECK(refused > 2000);
}

TEST_CASE("segment image validation refuses every truncation", "[segment]") {
  test::TempDir dir;
  const std::vector<char> image = ValidImage(dir);
  std::mt19937_64 rng(99);
  std::vector<size_t> sizes = {
      1, 8, kHeaderBytes - 1, kHeaderBytes, kHeaderBytes + 1, image.size() - 1};
  for (int i = 0; i < 200; ++i) sizes.push_back(1 + rng() % (image.size() - 1));
  for (size_t size : sizes) {
    INFO("size " << size);
    AlignedBuffer buf = Allocate(size);
    std::memcpy(buf.get(), image.data(), size);
    Status s = ValidateSegmentImage(buf.get(), size);
    CHECK(s.code() == Code::kCorrupt);
  }
}

// Returns `image` with `edit` applied to its header and first block entry and
// the checksums made valid again: a crafted file, not random damage.
template <typename Edit>
std::vector<char> Crafted(const std::vector<char>& image, Edit edit) {
  AlignedBuffer buf = Allocate(image.size());
  std::memcpy(buf.get(), image.data(), image.size());
  auto* h = reinterpret_cast<SegmentHeader*>(buf.get());
  auto* tensors =
      reinterpret_cast<TensorEntry*>(buf.get() + h->directory_offset);
  auto* blocks = reinterpret_cast<BlockEntry*>(tensors + h->num_tensors);
  edit(*h, blocks[0]);
  FixChecksums(buf.get(), image.size());
  return std::vector<char>(buf.get(), buf.get() + image.size());
}

TEST_CASE("segment image validation catches offsets that wrap around",
          "[segment]") {
  test::TempDir dir;
  const std::vector<char> image = ValidImage(dir);
  std::vector<char> bad;
  SECTION("block data offset near 2^64") {
    // offset + bytes wraps to a small number that passes "<= file_bytes".
    bad = Crafted(image, [](SegmentHeader&, BlockEntry& b) {
      b.data_offset = ~0ull - kPageBytes + 1;
      b.data_bytes = 2 * kPageBytes;
    });
  }
  SECTION("block float count whose byte size wraps") {
    // num_floats * 4 wraps to 4, which "fits" in one page.
    bad = Crafted(image, [](SegmentHeader& h, BlockEntry& b) {
      h.block_floats = 1ull << 63;
      b.num_floats = (1ull << 62) + 1;
    });
  }
  SECTION("versions offset near 2^64") {
    bad = Crafted(image, [](SegmentHeader& h, BlockEntry&) {
      h.versions_offset = ~0ull - 63;
    });
  }
  AlignedBuffer buf = Allocate(bad.size());
  std::memcpy(buf.get(), bad.data(), bad.size());
  Status s = ValidateSegmentImage(buf.get(), bad.size());
  CHECK(s.code() == Code::kCorrupt);

  // The same file on disk must be refused by both openers.
  const std::string path = dir.File("crafted.seg");
  test::WriteBytes(path, bad);
  auto ro = Segment::OpenReadOnly(path);
  CHECK_FALSE(ro.ok());
}

}  // namespace
}  // namespace shardps
