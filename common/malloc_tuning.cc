#include "common/malloc_tuning.h"

#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace shardps {

void TuneMallocForBlocks() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    // Up to 1 GiB of freed memory stays with the process for reuse; it is
    // bounded by the process's own peak, so nothing grows without limit.
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    // Allocations below 32 MiB (glibc's largest allowed value) come from the
    // heap, where freed blocks are recycled, instead of fresh mmaps.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
  });
#endif
}

}  // namespace shardps
