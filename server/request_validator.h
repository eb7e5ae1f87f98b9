// RequestValidator: checks a dense request against the segment's layout
// before anything touches memory.
//
// Every problem a peer can cause is a Status with a message naming the
// tensor, block and sizes involved; the frontend sends it back as the reply.
//
// Thread-safety: one thread (the frontend) at a time: ValidateDense reuses
// scratch memory, so it allocates nothing per request.
#ifndef SHARDPS_SERVER_REQUEST_VALIDATOR_H_
#define SHARDPS_SERVER_REQUEST_VALIDATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/segment.h"
#include "protocol_generated.h"
#include "shardps/status.h"

namespace shardps {

// Upper bound on blocks named in one request (and so on payload frames).
inline constexpr size_t kMaxBlocksPerRequest = 1 << 16;

// Bytes per gradient element on the wire for `dtype` (4 for F32, 2 for F16
// and BF16). REQUIRES: a known dtype.
inline uint64_t GradientElementBytes(wire::DType dtype) {
  return dtype == wire::DType::F32 ? 4 : 2;
}

class RequestValidator {
 public:
  explicit RequestValidator(const Segment& segment);

  // Checks model name, tensor and block list of a Push, Pull or PushPull,
  // and that `payload_sizes` (bytes of each payload frame) match the blocks:
  // one block per frame for pushes (float32, float16 or bfloat16 as the
  // header's dtype says), no frames for pulls (whose replies are float32). On
  // success fills `local` with the segment's block index for each named block.
  // A block named twice is refused (kInvalidArgument): a pull would copy it
  // twice into reply memory, and a push would apply it once or twice
  // depending on exactly-once.
  Status ValidateDense(const wire::Request& req,
                       const std::vector<size_t>& payload_sizes,
                       std::vector<uint32_t>* local);

  // kSpecMismatch unless `model` names this segment's model.
  Status CheckModel(const flatbuffers::String* model) const;

 private:
  Result<uint32_t> FindTensor(const flatbuffers::String* name) const;
  // ValidateDense's checks; marks each block in named_ as it goes.
  Status CheckBlocks(const wire::Request& req,
                     const std::vector<size_t>& payload_sizes,
                     std::vector<uint32_t>* local);

  const Segment& segment_;
  std::unordered_map<std::string, uint32_t> tensors_;
  // By local block: 1 while the request being validated names it. All 0
  // between calls.
  std::vector<uint8_t> named_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_REQUEST_VALIDATOR_H_
