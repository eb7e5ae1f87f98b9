// SegmentId: the random 128-bit identity every segment gets once, when it is
// created (SegmentHeader::identity). It tells "this segment" from any other,
// including one deleted and recreated at the same path, for the same shard,
// in the same millisecond: the update journal, checkpoint manifests and the
// client's "is this shard's segment on my host" all compare it.
//
// Thread-safety: a plain value; NewSegmentId may be called from any thread.
#ifndef SHARDPS_COMMON_SEGMENT_ID_H_
#define SHARDPS_COMMON_SEGMENT_ID_H_

#include <cstdint>
#include <string>
#include <type_traits>

#include "shardps/status.h"

namespace shardps {

struct SegmentId {
  uint64_t hi = 0;
  uint64_t lo = 0;

  // All zero: no identity (a peer that sent none). NewSegmentId never
  // returns it.
  bool empty() const { return hi == 0 && lo == 0; }
  // 32 lower-case hex digits, hi first.
  std::string ToString() const;

  friend bool operator==(const SegmentId& a, const SegmentId& b) {
    return a.hi == b.hi && a.lo == b.lo;
  }
  friend bool operator!=(const SegmentId& a, const SegmentId& b) {
    return !(a == b);
  }
};
static_assert(std::is_trivially_copyable_v<SegmentId> &&
              sizeof(SegmentId) == 16);

// 128 bits from the kernel's CSPRNG (getrandom(2), /dev/urandom where the
// call is missing). kIoError when neither gives them.
Result<SegmentId> NewSegmentId();

// Parses ToString's form (exactly 32 hex digits); kInvalidArgument else.
Result<SegmentId> ParseSegmentId(const std::string& text);

}  // namespace shardps

#endif  // SHARDPS_COMMON_SEGMENT_ID_H_
