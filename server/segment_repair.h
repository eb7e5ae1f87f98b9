// Offline repair of a segment whose server died inside a block update: what
// a server starting on the segment would do, without serving it. Used by
// `shardps checkpoint --to` (through CheckpointWriteOptions::repair), which
// must not copy a half-updated block.
//
// Thread-safety: a free function; it takes the segment's exclusive flock, so
// no server can run on the segment meanwhile (one starting gets kBusy).
#ifndef SHARDPS_SERVER_SEGMENT_REPAIR_H_
#define SHARDPS_SERVER_SEGMENT_REPAIR_H_

#include <cstdint>
#include <string>

#include "shardps/status.h"

namespace shardps {

struct SegmentRepairReport {
  uint64_t restored_blocks = 0;   // put back from the journal
  std::string journal_discarded;  // why an existing journal was not used
  uint64_t restored_rows = 0;     // table rows put back from the row journal
};

// Puts back, from `<segment_path>.journal`, every block a dead server left
// mid-update, with its version, bsp clock and exactly-once window, and from
// `<segment_path>.rows.journal` the rows and row window of a row push it
// left half-applied, so the interrupted (never acknowledged) update never
// happened. The segment's
// owner pid, open counts and clean-shutdown flag are left as they were.
// Errors: kBusy when a server holds the segment; kCorrupt naming the block
// when a block is still mid-update afterwards (an at-least-once push, which
// is not journaled, or a journal that did not belong to the segment):
// nothing can restore it, and serving the segment accepts it as it is;
// those of Segment::OpenExclusive and UpdateJournal::Open.
Status RepairFromJournal(const std::string& segment_path,
                         SegmentRepairReport* report);

}  // namespace shardps

#endif  // SHARDPS_SERVER_SEGMENT_REPAIR_H_
