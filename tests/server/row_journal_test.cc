// RowJournal: the rows and row window of a row push a crash cut off are put
// back whole; a closed entry, or a journal of another segment, changes
// nothing.
#include "server/row_journal.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/dedupe_window.h"
#include "common/segment.h"
#include "common/table_index.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

constexpr uint64_t kDim = 4;
constexpr uint32_t kSlot = 2;

// Adam: each row has two state slots, which the journal saves too.
ModelSpec RowSpec(const std::string& storage) {
  ModelSpec spec = test::MakeSpec("rowj", storage, {{"w", {16}, "zeros", 0}});
  spec.optimizer.kind = "adam";
  TableSpec t;
  t.name = "emb";
  t.dim = kDim;
  t.capacity = 64;
  t.init = *InitSpec::Parse("zeros");
  spec.tables.push_back(t);
  REQUIRE(ValidateModelSpec(spec).ok());
  return spec;
}

// The only shard of `spec`, its segment at `path`.
std::unique_ptr<Segment> OpenShard(const ModelSpec& spec,
                                   const std::string& path) {
  return test::OpenServing(spec, 0, 1, path);
}

std::unique_ptr<RowJournal> OpenJournal(Segment& seg, uint64_t* restored,
                                        std::string* discarded) {
  return test::ValueOrThrow(RowJournal::Open(seg, restored, discarded));
}

// Rows for ids 1..n, row i's values and state all i + 0.5, 3 steps each.
std::vector<RowSlot*> MakeRows(Segment& seg, uint64_t n) {
  TableIndex index(seg.table(0), seg.row_index(0), seg.table_counters(0));
  std::vector<RowSlot*> slots;
  for (uint64_t id = 1; id <= n; ++id) {
    auto slot = index.FindOrInsert(id, [&](uint32_t row) {
      for (uint64_t j = 0; j < kDim; ++j) {
        seg.table_rows(0)[row * kDim + j] = float(id) + 0.5f;
        for (uint32_t k = 0; k < 2; ++k)
          seg.table_state(0, k)[row * kDim + j] = float(id) + 0.5f;
      }
    });
    REQUIRE(slot.ok());
    (*slot)->updates = 3;
    slots.push_back(*slot);
  }
  return slots;
}

float* RowOf(Segment& seg, const RowSlot* s) {
  return seg.table_rows(0) + (s->row_plus_one.load() - 1) * kDim;
}

// What a push in progress does to a row: values and state changed, one
// more step.
void Step(Segment& seg, RowSlot* s) {
  for (uint64_t j = 0; j < kDim; ++j) RowOf(seg, s)[j] = -99;
  seg.table_state(0, 1)[(s->row_plus_one.load() - 1) * kDim] = -7;
  ++s->updates;
}

TEST_CASE("row journal puts back the rows and window of an interrupted push",
          "[row_journal]") {
  test::TempDir dir;
  const ModelSpec spec = RowSpec(dir.path());
  const std::string path = dir.File("shard.seg");
  {
    auto seg = OpenShard(spec, path);
    std::vector<RowSlot*> rows = MakeRows(*seg, 5);
    DedupeWindow& window = seg->client_slot(kSlot).rows;
    DedupeRecord(window, 42, 6);
    uint64_t restored = 0;
    std::string discarded;
    auto journal = OpenJournal(*seg, &restored, &discarded);
    // The push touches rows 1 and 3 (a folded duplicate is nullptr).
    std::vector<RowSlot*> touched = {rows[1], nullptr, rows[3]};
    REQUIRE(journal->Begin(0, kSlot, touched).ok());
    Step(*seg, rows[1]);
    Step(*seg, rows[3]);
    DedupeRecord(window, 42, 7);
    // Killed here: no Close.
  }
  auto seg = OpenShard(spec, path);
  uint64_t restored = 0;
  std::string discarded;
  auto journal = OpenJournal(*seg, &restored, &discarded);
  CHECK(discarded.empty());
  CHECK(restored == 2);
  TableIndex index(seg->table(0), seg->row_index(0), seg->table_counters(0));
  for (uint64_t id = 1; id <= 5; ++id) {
    auto slot = index.FindToUpdate(id);
    REQUIRE(slot.ok());
    REQUIRE(*slot != nullptr);
    CHECK((*slot)->updates == 3);
    const uint64_t row = (*slot)->row_plus_one.load() - 1;
    for (uint64_t j = 0; j < kDim; ++j) {
      CHECK(seg->table_rows(0)[row * kDim + j] == float(id) + 0.5f);
      CHECK(seg->table_state(0, 1)[row * kDim + j] == float(id) + 0.5f);
    }
  }
  const DedupeWindow& window = seg->client_slot(kSlot).rows;
  CHECK(DedupeSeen(window, 42, 6));
  CHECK_FALSE(DedupeSeen(window, 42, 7));
  // The journal was reset: opening it again restores nothing.
  journal.reset();
  OpenJournal(*seg, &restored, &discarded);
  CHECK(restored == 0);
}

TEST_CASE("row journal leaves a completed push alone", "[row_journal]") {
  test::TempDir dir;
  const ModelSpec spec = RowSpec(dir.path());
  const std::string path = dir.File("shard.seg");
  {
    auto seg = OpenShard(spec, path);
    std::vector<RowSlot*> rows = MakeRows(*seg, 2);
    uint64_t restored = 0;
    std::string discarded;
    auto journal = OpenJournal(*seg, &restored, &discarded);
    REQUIRE(journal->Begin(0, kSlot, rows).ok());
    Step(*seg, rows[0]);
    DedupeRecord(seg->client_slot(kSlot).rows, 42, 1);
    journal->Close();
  }
  auto seg = OpenShard(spec, path);
  uint64_t restored = 0;
  std::string discarded;
  OpenJournal(*seg, &restored, &discarded);
  CHECK(restored == 0);
  CHECK(discarded.empty());
  CHECK(DedupeSeen(seg->client_slot(kSlot).rows, 42, 1));
  TableIndex index(seg->table(0), seg->row_index(0), seg->table_counters(0));
  auto slot = index.FindToUpdate(1);
  REQUIRE(slot.ok());
  CHECK((*slot)->updates == 4);
  CHECK(RowOf(*seg, *slot)[0] == -99);
}

TEST_CASE("row journal of another segment is ignored", "[row_journal]") {
  test::TempDir dir;
  const ModelSpec spec = RowSpec(dir.path());
  const std::string a = dir.File("a.seg"), b = dir.File("b.seg");
  {
    auto seg = OpenShard(spec, a);
    std::vector<RowSlot*> rows = MakeRows(*seg, 2);
    uint64_t restored = 0;
    std::string discarded;
    auto journal = OpenJournal(*seg, &restored, &discarded);
    REQUIRE(journal->Begin(0, kSlot, rows).ok());
  }
  auto seg = OpenShard(spec, b);
  std::vector<RowSlot*> rows = MakeRows(*seg, 2);
  Step(*seg, rows[0]);
  std::filesystem::copy_file(RowJournal::PathFor(a), RowJournal::PathFor(b));
  uint64_t restored = 0;
  std::string discarded;
  OpenJournal(*seg, &restored, &discarded);
  CHECK(restored == 0);
  CHECK(discarded.find("another segment") != std::string::npos);
  CHECK(RowOf(*seg, rows[0])[0] == -99);
}

}  // namespace
}  // namespace shardps
