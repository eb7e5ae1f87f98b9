// UpdateJournal: makes each block update all-or-nothing across a crash.
//
// An optimizer step rewrites a block's weights, its optimizer state and its
// exactly-once window in place. A server killed half-way through would
// leave some floats stepped and others not, and the client's retry would
// step the first ones twice. So before a journaled update, the writer saves
// the block's whole footprint (weights, state, accumulator), its version,
// bsp clock and window into its own entry of <segment>.journal, marks the
// entry open, updates the block, and marks the entry closed. A server
// starting on the segment puts back every block whose entry is still open:
// the update it was making never happened, and it was never acknowledged
// (acks follow Close), so the client retries it.
//
// The journal lives beside the segment on the same tmpfs: it survives a
// process crash, as the segment does, and nothing else.
//
// Thread-safety: Begin/Close for entry w only from writer w (the pool
// thread that owns blocks b with b % writers == w, or the frontend for 0).
#ifndef SHARDPS_SERVER_UPDATE_JOURNAL_H_
#define SHARDPS_SERVER_UPDATE_JOURNAL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "common/mapping.h"
#include "common/posix_file.h"
#include "common/segment.h"
#include "shardps/status.h"

namespace shardps {

// What opening the journal found.
struct JournalReport {
  uint64_t restored_blocks = 0;  // blocks put back to before a torn update
  std::string discarded;         // why an existing journal was not used
};

class UpdateJournal {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  // "<segment path>.journal"
  static std::string PathFor(const std::string& segment_path);

  // Opens the journal of `segment`, first restoring any block a crashed
  // server left mid-update, then makes room for `writers` entries. A
  // journal from another segment (another identity: an older segment at
  // this path, even one created in the same millisecond, or another shard)
  // is discarded, with the reason in the report. REQUIRES: `segment` is opened
  // for serving (no other writer) and outlives the journal.
  static Result<std::unique_ptr<UpdateJournal>> Open(Segment& segment,
                                                     uint32_t writers,
                                                     JournalReport* report);

  ~UpdateJournal();
  UpdateJournal(const UpdateJournal&) = delete;
  UpdateJournal& operator=(const UpdateJournal&) = delete;

  // Saves local block `block` (and the window of client slot `slot`, or
  // kNoSlot) in writer `writer`'s entry and opens it. Costs one copy of the
  // block's footprint, into memory the writer reuses every time.
  void Begin(uint32_t writer, uint32_t block, uint32_t slot);
  // Closes writer `writer`'s entry: the update is complete.
  void Close(uint32_t writer);

 private:
  UpdateJournal(Segment& segment, UniqueFd fd, Mapping map,
                uint64_t entry_bytes);
  char* entry(uint32_t writer) const;

  Segment& segment_;
  UniqueFd fd_;
  Mapping map_;
  const uint64_t entry_bytes_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_UPDATE_JOURNAL_H_
