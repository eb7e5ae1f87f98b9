#include "server/segment_repair.h"

#include <memory>

#include "common/segment.h"
#include "server/row_journal.h"
#include "server/update_journal.h"

namespace shardps {

Status RepairFromJournal(const std::string& segment_path,
                         SegmentRepairReport* report) {
  *report = SegmentRepairReport{};
  auto seg = Segment::OpenExclusive(segment_path);
  if (!seg.ok()) return seg.status();
  // One entry is enough for the fresh journal it leaves: every entry of the
  // old one is closed once restored, and the next server sizes it again.
  JournalReport journal;
  auto opened = UpdateJournal::Open(**seg, 1, &journal);
  if (!opened.ok()) return opened.status();
  report->restored_blocks = journal.restored_blocks;
  report->journal_discarded = journal.discarded;
  std::string rows_discarded;
  auto rows = RowJournal::Open(**seg, &report->restored_rows, &rows_discarded);
  if (!rows.ok()) return rows.status();
  if (!rows_discarded.empty() && report->journal_discarded.empty())
    report->journal_discarded = "row journal: " + rows_discarded;
  for (uint32_t i = 0; i < (*seg)->num_blocks(); ++i) {
    const uint64_t v = (*seg)->version(i).seq.load(std::memory_order_acquire);
    if ((v & 1) == 0) continue;
    const BlockEntry& b = (*seg)->block(i);
    return Status(
        Code::kCorrupt,
        "block " + std::to_string(b.block) + " of '" +
            (*seg)->tensor(b.tensor).name + "' in " + segment_path +
            " was left mid-update and its journal holds no copy of it (" +
            (journal.discarded.empty()
                 ? "an at-least-once push is not journaled"
                 : "journal not used: " + journal.discarded) +
            "); `shardps serve` on the segment accepts the block as it is, "
            "or restore an earlier checkpoint");
  }
  return Status::Ok();
}

}  // namespace shardps
