#include "common/table_index.h"

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
