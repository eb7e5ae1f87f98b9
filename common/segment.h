// Segment: one shard's memory-mapped file (format in segment_format.h).
//
// Servers open segments read-write with OpenForServing, which creates the
// file or reopens an existing one and holds an exclusive flock on it for the
// Segment's lifetime. Readers (ModelView, `shardps inspect`) use OpenReadOnly,
// which takes no lock. Both validate everything before trusting an offset:
// a foreign or corrupt file is refused with a Status, never "repaired".
//
// Thread-safety: the accessors are safe from any thread; the data behind them
// follows the segment's own rules (one writer per block, seqlock readers).
#ifndef SHARDPS_COMMON_SEGMENT_H_
#define SHARDPS_COMMON_SEGMENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/mapping.h"
#include "common/posix_file.h"
#include "common/segment_format.h"
#include "shardps/layout.h"
#include "shardps/model_spec.h"
#include "shardps/status.h"

namespace shardps {

// What OpenForServing found, for the server's start-up log.
struct SegmentOpenReport {
  bool created = false;      // a new segment was initialised from the spec
  bool unclean = false;      // reopened after a crash (no clean shutdown)
  uint64_t torn_blocks = 0;  // blocks a crash left mid-update (never acked)
  // Filled in by the server from its UpdateJournal: blocks put back to
  // before the update a crash interrupted, and why an existing journal was
  // not used (empty if it was, or there was none).
  uint64_t journal_restored = 0;
  std::string journal_discarded;
  // Table rows put back from the row journal (a row push a crash cut off).
  uint64_t journal_restored_rows = 0;
};

class Segment {
 public:
  // "<storage>/<model>/shard-<shard>-of-<shards>.seg"
  static std::string PathFor(const std::string& storage,
                             const std::string& model, uint32_t shard,
                             uint32_t shards);

  // Creates `path` from `spec` (weights initialised, pages populated, mode
  // 0600) or reopens it if it exists and matches. Errors: kBusy when another
  // process serves it; kSpecMismatch when it was made from another spec or
  // for another shard; kCorrupt for a damaged or foreign file; kIoError.
  // REQUIRES: spec validated, shard < shards.
  //
  // A block a crash left mid-write (odd version) is counted in
  // report->torn_blocks and, by default, closed (made even): a shard's
  // update was never acknowledged, and its journal puts the block back
  // next. A host replica's copy passes kKeepOdd: there the block is not
  // the shard's data until the shard sends it again, and a reader mapping
  // the copy must never take it for a snapshot, not even for a moment.
  enum class TornBlocks { kClose, kKeepOdd };
  static Result<std::unique_ptr<Segment>> OpenForServing(
      const ModelSpec& spec, uint32_t shard, uint32_t shards,
      const std::string& path, SegmentOpenReport* report,
      TornBlocks torn = TornBlocks::kClose);

  // Maps an existing segment read-only after validating it.
  static Result<std::unique_ptr<Segment>> OpenReadOnly(const std::string& path);

  // Maps an existing segment read-write under its exclusive flock, like a
  // server, but without claiming it (owner pid, open counts and the clean
  // flag stay as they are): for repairing a segment no server holds.
  // Errors: kBusy when a server holds it; those of OpenReadOnly.
  static Result<std::unique_ptr<Segment>> OpenExclusive(
      const std::string& path);

  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  bool writable() const { return writable_; }

  // Random, fixed at creation: tells this segment from any other, including
  // one recreated at the same path (see SegmentId).
  SegmentId identity() const { return header_->identity; }

  // Whether a server holds the segment's exclusive flock now (a live
  // server always does; a dead one's lock went with its process). Tested
  // with a non-blocking shared lock that is released at once, so a server
  // starting in that instant may see kBusy. A writable Segment is its own
  // server: true. kIoError if flock fails otherwise.
  Result<bool> HeldByServer() const;

  const SegmentHeader& header() const { return *header_; }
  SegmentHeader& mutable_header() { return *header_; }  // REQUIRES writable()

  uint32_t num_tensors() const { return header_->num_tensors; }
  const TensorEntry& tensor(uint32_t i) const { return tensors_[i]; }
  uint32_t num_blocks() const { return header_->num_blocks; }
  const BlockEntry& block(uint32_t i) const { return blocks_[i]; }
  BlockVersion& version(uint32_t i) const { return versions_[i]; }
  float* block_data(uint32_t i) const {
    return reinterpret_cast<float*>(base() + blocks_[i].data_offset);
  }
  // Optimizer state slot `slot` of block `i` (same length as its weights).
  // REQUIRES: slot < the block's tensor's state_slots.
  float* state_data(uint32_t i, uint32_t slot) const {
    const BlockEntry& b = blocks_[i];
    return reinterpret_cast<float*>(base() + b.state_offset +
                                    uint64_t{slot} * b.data_bytes);
  }
  // The bsp gradient accumulator of block i, after its state slots.
  // REQUIRES: the block's tensor has accum_slots == 1.
  float* accum_data(uint32_t i) const {
    return state_data(i, tensor(blocks_[i].tensor).state_slots);
  }

  // Exactly-once pushes (see DedupeWindow): client slot `i`, and the window
  // of block `block` for the client in slot `slot`.
  uint32_t dedupe_slots() const { return header_->dedupe_slots; }
  ClientSlot& client_slot(uint32_t i) const { return client_slots_[i]; }
  DedupeWindow& dedupe_window(uint32_t block, uint32_t slot) const {
    return dedupe_windows_[uint64_t{block} * header_->dedupe_slots + slot];
  }

  // Sparse tables (see TableIndex for the row index).
  uint32_t num_tables() const { return header_->num_tables; }
  const TableEntry& table(uint32_t i) const { return tables_[i]; }
  TableCounters& table_counters(uint32_t i) const { return table_counters_[i]; }
  RowSlot* row_index(uint32_t i) const {
    return reinterpret_cast<RowSlot*>(base() + tables_[i].index_offset);
  }
  float* table_rows(uint32_t i) const {
    return reinterpret_cast<float*>(base() + tables_[i].rows_offset);
  }
  // Optimizer state slot `slot` of table i's rows, laid out like the rows.
  float* table_state(uint32_t i, uint32_t slot) const {
    const TableEntry& t = tables_[i];
    return reinterpret_cast<float*>(base() + t.rows_offset +
                                    (uint64_t{slot} + 1) * t.rows_bytes);
  }
  // Index of the table called `name`, or -1.
  int64_t FindTable(std::string_view name) const;

  // Index of this shard's entry for block `block` of tensor `tensor`, or -1
  // when the block lives on another shard or is out of range.
  int64_t LocalBlock(uint32_t tensor, uint32_t block) const;

  // Rebuilds the layout the segment was made with (names, shapes, shards).
  ModelLayout Layout() const;

  // The mapped file, for checkpoint copies. REQUIRES: the caller keeps
  // within header().file_bytes and, for writes, writable() with no server.
  const char* bytes() const { return base(); }
  char* mutable_bytes() { return base(); }

  // Records a clean shutdown: the next open will not report a crash.
  // REQUIRES: writable(); every writer stopped.
  void MarkCleanShutdown();

 private:
  Segment(std::string path, UniqueFd fd, Mapping map, bool writable);
  char* base() const { return map_.data(); }

  const std::string path_;
  UniqueFd fd_;
  Mapping map_;
  const bool writable_;
  SegmentHeader* header_;
  const TensorEntry* tensors_;
  const BlockEntry* blocks_;
  const TableEntry* tables_;
  BlockVersion* versions_;
  TableCounters* table_counters_;
  ClientSlot* client_slots_;
  DedupeWindow* dedupe_windows_;
  // True once this Segment recorded its pid as the owner. Only then does the
  // destructor clear owner_pid: a refused open must leave the file as it was.
  bool claimed_ = false;
};

// The identity in the header of the segment file at `path`, read with
// one pread (no mapping, no lock), after checking magic, format version and
// header checksum. Errors: those of open(2) (kNotFound...), kCorrupt.
Result<SegmentId> ReadSegmentIdentity(const std::string& path);

// Checks a header and directory image for internal consistency: magic,
// version, checksums, every offset inside `file_bytes`. Exposed for tests and
// fuzzing; `data` must hold `size` readable bytes.
Status ValidateSegmentImage(const char* data, size_t size);

}  // namespace shardps

#endif  // SHARDPS_COMMON_SEGMENT_H_
