// RowJournal: makes an exactly-once row push all-or-nothing across a crash.
//
// A PushRows steps many rows of one table, then records its seq in the
// client's row window (ClientSlot::rows). A server killed half-way would
// leave some rows stepped and the window without the seq, and the client's
// retry would step those rows twice. So before applying a numbered row
// push, the frontend saves every row it is about to step (values, optimizer
// state, step count) and the window into <segment>.rows.journal and marks
// the entry open; it closes the entry after the rows and the window are
// written, and only then replies. A server starting on the segment puts
// back the rows and window of an open entry: the push never happened and
// was never acknowledged, so the retry applies it once.
//
// Rows a push creates (first touch) are created, with the table's init,
// before the entry opens: a crash may leave them created and unstepped,
// exactly as a PullRows of them would.
//
// Writes go through pwrite(2) into the tmpfs page cache: a kill -9 cannot
// undo a write that returned, so the saved rows are in the file before the
// entry reads as open, and the entry reads as open before the first row
// changes. Like the segment, it survives a process crash and nothing else.
//
// Thread-safety: the frontend thread only (the one writer of rows).
#ifndef SHARDPS_SERVER_ROW_JOURNAL_H_
#define SHARDPS_SERVER_ROW_JOURNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/posix_file.h"
#include "common/segment.h"
#include "shardps/status.h"

namespace shardps {

class RowJournal {
 public:
  // "<segment path>.rows.journal"
  static std::string PathFor(const std::string& segment_path);

  // Opens the journal of `segment`, first putting back the rows and window
  // of a push a crashed server left open; *restored_rows counts the rows
  // put back. A journal of another segment (another identity, spec or
  // shard) or a malformed one is ignored, with the reason in *discarded.
  // REQUIRES: `segment` is opened for serving and outlives the journal.
  static Result<std::unique_ptr<RowJournal>> Open(Segment& segment,
                                                  uint64_t* restored_rows,
                                                  std::string* discarded);

  // Saves the rows at `slots` (index slots of table `table`, each naming a
  // row; nullptr entries are skipped) and the row window of client slot
  // `client_slot`, and opens the entry. Costs one copy of those rows and
  // their state. An I/O error (tmpfs full) leaves the entry closed: the
  // caller must then not apply the push.
  Status Begin(uint32_t table, uint32_t client_slot,
               const std::vector<RowSlot*>& slots);
  // The push is complete: closes the entry.
  void Close();

 private:
  RowJournal(Segment& segment, UniqueFd fd);

  Segment& segment_;
  UniqueFd fd_;
  std::vector<char> buffer_;  // reused by every Begin
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_ROW_JOURNAL_H_
