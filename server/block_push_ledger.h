// BlockPushLedger: bsp apply = "block" lets a shard apply a block's clock
// as soon as every worker's gradient for it is in, which is right only if
// no worker pushes that block again in the same clock. The ledger remembers
// the clock (and push) in which each worker last pushed each block, so the
// frontend refuses a second push before anything of it is applied.
//
// A retry of the same exactly-once push (same client and seq) is not a
// second push: it passes, and the update pool skips it as a duplicate.
// The ledger is memory only: after a restart a second push is not caught,
// and the pool then applies those blocks with their clock instead.
//
// Thread-safety: the frontend thread's object.
#ifndef SHARDPS_SERVER_BLOCK_PUSH_LEDGER_H_
#define SHARDPS_SERVER_BLOCK_PUSH_LEDGER_H_

#include <cstdint>
#include <vector>

#include "common/segment.h"
#include "shardps/status.h"

namespace shardps {

class BlockPushLedger {
 public:
  // Empty (every push passes) unless `enabled`; then blocks * workers
  // entries, allocated once.
  BlockPushLedger(const Segment& segment, uint32_t workers, bool enabled);

  bool enabled() const { return workers_ > 0; }

  // kInvalidArgument naming the first local block that `worker` already
  // pushed in `clock` under another push.
  Status Check(int worker, int64_t clock, uint64_t client, uint64_t seq,
               const std::vector<uint32_t>& local) const;
  // Records an accepted push. REQUIRES: Check passed for it.
  void Record(int worker, int64_t clock, uint64_t client, uint64_t seq,
              const std::vector<uint32_t>& local);

 private:
  struct Entry {
    int64_t clock = -1;
    uint64_t client = 0;
    uint64_t seq = 0;  // 0: at-least-once, never a retry
  };
  Entry& At(uint32_t block, int worker) {
    return entries_[uint64_t{block} * workers_ + static_cast<uint32_t>(worker)];
  }
  const Entry& At(uint32_t block, int worker) const {
    return entries_[uint64_t{block} * workers_ + static_cast<uint32_t>(worker)];
  }

  const Segment& segment_;
  const uint32_t workers_;  // 0 when disabled
  std::vector<Entry> entries_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_BLOCK_PUSH_LEDGER_H_
