#include "common/table_index.h"

#include <algorithm>
#include <string>

namespace shardps {

uint64_t TableIndex::Home(uint64_t id) const {
  // splitmix64's finaliser: sequential ids land far apart.
  id ^= id >> 30;
  id *= 0xbf58476d1ce4e5b9ULL;
  id ^= id >> 27;
  id *= 0x94d049bb133111ebULL;
  id ^= id >> 31;
  return id & (entry_.index_slots - 1);
}

Status TableIndex::BadRow(uint32_t row_plus_one) const {
  return Status(Code::kCorrupt, "table '" + std::string(entry_.name) +
                                    "': row index names row " +
                                    std::to_string(row_plus_one - 1) +
                                    " beyond capacity " +
                                    std::to_string(entry_.capacity));
}

Status TableIndex::CheckRoom(uint64_t new_rows) {
  const uint64_t rows = counters_.rows.load(std::memory_order_relaxed);
  if (new_rows <= entry_.capacity - std::min(rows, entry_.capacity))
    return Status::Ok();
  counters_.full_refusals.fetch_add(1, std::memory_order_relaxed);
  return Status(
      Code::kResourceExhausted,
      "table '" + std::string(entry_.name) + "' is full on this shard (" +
          std::to_string(entry_.capacity) + " rows, " + std::to_string(rows) +
          " in use, " + std::to_string(new_rows) +
          " more needed): raise its capacity in the spec");
}

Result<RowSlot*> TableIndex::FindToUpdate(uint64_t id) {
  auto found = Find(id);
  if (!found.ok()) return found.status();
  // The slots are ours (slots_ is not const); Find only promised not to
  // write them.
  return const_cast<RowSlot*>(*found);
}

Result<const RowSlot*> TableIndex::Find(uint64_t id) const {
  const uint64_t mask = entry_.index_slots - 1;
  for (uint64_t probe = 0, i = Home(id); probe <= mask;
       ++probe, i = (i + 1) & mask) {
    const RowSlot& slot = slots_[i];
    const uint32_t row_plus_one =
        slot.row_plus_one.load(std::memory_order_acquire);
    if (row_plus_one == 0) return static_cast<const RowSlot*>(nullptr);
    if (row_plus_one > entry_.capacity) return BadRow(row_plus_one);
    if (slot.id == id) return &slot;
  }
  return static_cast<const RowSlot*>(nullptr);
}

}  // namespace shardps
