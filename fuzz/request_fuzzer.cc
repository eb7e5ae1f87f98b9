// Fuzzes what a shard server does with a request before touching memory:
// ParseRequest (size bounds, FlatBuffers verification, op range), then
// RequestValidator::ValidateDense against a real segment's layout, with the
// payload frame sizes fuzzed too. The same bytes also go through
// ParseReply, which clients run on every reply a server sends.
//
// Input: byte 0 = number of payload frames (0..15), then 2 bytes
// (little-endian) per frame giving its size, then the header frame. Only
// the sizes matter to validation, so payload bytes are not materialised.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/segment.h"
#include "common/wire.h"
#include "fuzz/fuzz_fixture.h"
#include "server/request_validator.h"

namespace {

void TouchReply(const shardps::wire::Reply& reply) {
  (void)shardps::CodeFromWire(reply.code());
  if (reply.message() != nullptr) (void)reply.message()->str();
  if (reply.blocks() != nullptr)
    for (uint32_t b : *reply.blocks()) (void)b;
  if (reply.hello() != nullptr && reply.hello()->tensors() != nullptr)
    for (const auto* t : *reply.hello()->tensors())
      if (t->name() != nullptr) (void)t->name()->str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const shardps::ModelSpec spec = shardps::fuzz::ParseSpecOrDie(
      shardps::fuzz::kRequestSpec, "request_fuzzer");
  static const std::unique_ptr<shardps::Segment> segment =
      shardps::fuzz::TransientSegment(spec, 0, 2, "request_fuzzer");
  static shardps::RequestValidator validator(*segment);
  if (size < 1) return 0;
  const size_t frames = data[0] % 16;
  if (size < 1 + 2 * frames) return 0;
  std::vector<size_t> payload_sizes(frames);
  for (size_t i = 0; i < frames; ++i)
    payload_sizes[i] = data[1 + 2 * i] | (size_t{data[2 + 2 * i]} << 8);
  const uint8_t* header = data + 1 + 2 * frames;
  const size_t header_size = size - 1 - 2 * frames;

  shardps::HeaderScratch scratch;
  if (auto reply = shardps::ParseReply(header, header_size, scratch);
      reply.ok())
    TouchReply(**reply);
  auto req = shardps::ParseRequest(header, header_size, scratch);
  if (!req.ok()) return 0;
  (void)shardps::OpName((*req)->op());
  std::vector<uint32_t> local;
  if (!validator.ValidateDense(**req, payload_sizes, &local).ok()) return 0;
  // What the update pool does next: index the segment with `local`.
  for (uint32_t l : local) {
    if (l >= segment->num_blocks()) __builtin_trap();
    (void)segment->block_data(l)[segment->block(l).num_floats - 1];
  }
  return 0;
}
