// Parsing and naming helpers for the FlatBuffers headers in protocol.fbs.
//
// Thread-safety: pure functions; each caller brings its own scratch buffer.
#ifndef SHARDPS_COMMON_WIRE_H_
#define SHARDPS_COMMON_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol_generated.h"
#include "shardps/status.h"

namespace shardps {

// Headers are small; anything bigger is refused before verification.
inline constexpr size_t kMaxHeaderBytes = 64 * 1024;

// An aligned, reusable copy of a header frame. ZeroMQ gives no alignment
// guarantee for frame data and FlatBuffers reads scalars in place, so headers
// (never payloads) are copied here first.
class HeaderScratch {
 public:
  // Copies `size` bytes and returns the aligned copy; valid until next call.
  const uint8_t* Assign(const void* data, size_t size);

 private:
  std::vector<uint64_t> words_;
};

// Verifies `size` bytes as a Request (kBadMessage with the reason if not).
// The returned pointer borrows `scratch`.
Result<const wire::Request*> ParseRequest(const void* data, size_t size,
                                          HeaderScratch& scratch);
Result<const wire::Reply*> ParseReply(const void* data, size_t size,
                                      HeaderScratch& scratch);

// A Code received on the wire; unknown values become kBadMessage.
Code CodeFromWire(uint8_t code);

const char* OpName(wire::Op op);

}  // namespace shardps

#endif  // SHARDPS_COMMON_WIRE_H_
