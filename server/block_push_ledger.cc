#include "server/block_push_ledger.h"

#include <string>

namespace shardps {

BlockPushLedger::BlockPushLedger(const Segment& segment, uint32_t workers,
                                 bool enabled)
    : segment_(segment), workers_(enabled ? workers : 0) {
  entries_.resize(uint64_t{segment.num_blocks()} * workers_);
}

Status BlockPushLedger::Check(int worker, int64_t clock, uint64_t client,
                              uint64_t seq,
                              const std::vector<uint32_t>& local) const {
  if (!enabled() || worker < 0 || static_cast<uint32_t>(worker) >= workers_)
    return Status::Ok();
  for (uint32_t l : local) {
    const Entry& e = At(l, worker);
    if (e.clock != clock) continue;
    if (seq != 0 && e.client == client && e.seq == seq) continue;  // a retry
    const BlockEntry& b = segment_.block(l);
    return Status(Code::kInvalidArgument,
                  "worker " + std::to_string(worker) +
                      " already pushed block " + std::to_string(b.block) +
                      " of '" + segment_.tensor(b.tensor).name + "' in clock " +
                      std::to_string(clock) +
                      "; with consistency.apply = \"block\" each worker "
                      "pushes each block once per clock (sum the gradients "
                      "first, or use apply = \"clock\"). Nothing of this push "
                      "was applied");
  }
  return Status::Ok();
}

void BlockPushLedger::Record(int worker, int64_t clock, uint64_t client,
                             uint64_t seq, const std::vector<uint32_t>& local) {
  if (!enabled() || worker < 0 || static_cast<uint32_t>(worker) >= workers_)
    return;
  for (uint32_t l : local) At(l, worker) = Entry{clock, client, seq};
}

}  // namespace shardps
