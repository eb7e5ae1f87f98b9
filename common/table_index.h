// TableIndex: the open-addressing row index of one sparse table on one shard.
//
// Lives in the segment (RowSlot[index_slots], see segment_format.h), so a
// restarted server keeps its rows and a ModelView in another process can look
// rows up. Linear probing from a mixed hash of the id; the index holds at
// most `capacity` rows and at least twice as many slots, so probes stay
// short. Rows are numbered in order of creation.
//
// Thread-safety: one writer (the serving frontend) calls FindOrInsert; any
// number of readers, in any process, may call Find concurrently. A row's
// values are not versioned: a reader may see a row mid-update (as with
// Hogwild-style reads); the index itself is always consistent.
#ifndef SHARDPS_COMMON_TABLE_INDEX_H_
#define SHARDPS_COMMON_TABLE_INDEX_H_

#include <cstdint>

#include "common/segment_format.h"
#include "shardps/status.h"

namespace shardps {

class TableIndex {
 public:
  // All pointers into one segment's table `entry`; they must outlive this.
  TableIndex(const TableEntry& entry, RowSlot* slots, TableCounters& counters)
      : entry_(entry), slots_(slots), counters_(counters) {}

  // The slot holding `id`, or nullptr when the row does not exist.
  // kCorrupt when the index names a row beyond capacity (a damaged file).
  Result<const RowSlot*> Find(uint64_t id) const;

  // The writer's Find: the same lookup, with a slot it may update.
  // REQUIRES: the caller is the table's only writer.
  Result<RowSlot*> FindToUpdate(uint64_t id);

  // kResourceExhausted (counted as a refusal) unless `new_rows` more rows
  // fit on this shard. A request that creates rows calls it with all of
  // them first, so a refusal creates none.
  Status CheckRoom(uint64_t new_rows);

  // The slot holding `id`, creating the row when missing: `init(row)` must
  // write the new row's values and optimizer state before the row is
  // published. kResourceExhausted when the shard's rows are all taken.
  // REQUIRES: the caller is the table's only writer.
  template <typename InitRow>
  Result<RowSlot*> FindOrInsert(uint64_t id, InitRow init);

  // Starts loading the slot `id` hashes to, so a lookup a few ids later
  // finds it in cache: a large index misses on every probe otherwise.
  void Prefetch(uint64_t id) const { __builtin_prefetch(&slots_[Home(id)]); }

  uint64_t rows() const {
    return counters_.rows.load(std::memory_order_acquire);
  }

 private:
  uint64_t Home(uint64_t id) const;
  Status BadRow(uint32_t row_plus_one) const;

  const TableEntry& entry_;
  RowSlot* const slots_;
  TableCounters& counters_;
};

template <typename InitRow>
Result<RowSlot*> TableIndex::FindOrInsert(uint64_t id, InitRow init) {
  const uint64_t mask = entry_.index_slots - 1;
  for (uint64_t probe = 0, i = Home(id); probe <= mask;
       ++probe, i = (i + 1) & mask) {
    RowSlot& slot = slots_[i];
    const uint32_t row_plus_one =
        slot.row_plus_one.load(std::memory_order_relaxed);  // we wrote it
    if (row_plus_one == 0) {
      const uint64_t row = counters_.rows.load(std::memory_order_relaxed);
      SHARDPS_RETURN_IF_ERROR(CheckRoom(1));
      init(static_cast<uint32_t>(row));
      slot.id = id;
      slot.updates = 0;
      counters_.rows.store(row + 1, std::memory_order_relaxed);
      // Publishes the id and the row's initial values to readers.
      slot.row_plus_one.store(static_cast<uint32_t>(row + 1),
                              std::memory_order_release);
      return &slot;
    }
    if (row_plus_one > entry_.capacity) return BadRow(row_plus_one);
    if (slot.id == id) return &slot;
  }
  return Status(Code::kCorrupt, "table '" + std::string(entry_.name) +
                                    "': row index has no free slot");
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_TABLE_INDEX_H_
