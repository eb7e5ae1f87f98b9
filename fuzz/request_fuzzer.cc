// Fuzzes what a shard server does with a request before touching memory:
// ParseRequest (size bounds, FlatBuffers verification, op range), then
// RequestValidator::ValidateDense against a real segment's layout, with the
// payload frame sizes fuzzed too. The same bytes also go through
// ParseReply, which clients run on every reply a server sends.
//
// Input: byte 0 = number of payload frames (0..15), then 2 bytes
// (little-endian) per frame giving its size, then the header frame. Only
// the sizes matter to validation, so payload bytes are not materialised.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/segment.h"
#include "common/wire.h"
#include "server/request_validator.h"

namespace {

// "w" has 5 blocks of 1024 floats (the last 904), "b" one of 100; shard 0
// of 2 holds w blocks 0, 2, 4 and nothing of b, so "lives elsewhere" and
// short last blocks are reachable.
constexpr char kSpec[] = R"(
[model]
name = "fz"
storage = "/dev/shm"
block_floats = 1024
[optimizer]
kind = "sgd"
lr = 0.1
[[tensor]]
name = "w"
shape = [5000]
init = "zeros"
[[tensor]]
name = "b"
shape = [100]
init = "constant:1"
)";

// The segment is created once per process in a fresh /dev/shm directory,
// then its file and directory are removed at once: the mapping stays valid
// and nothing is left behind, however the fuzzer exits.
[[noreturn]] void Die(const shardps::Status& s) {
  std::fprintf(stderr, "request_fuzzer setup: %s\n", s.ToString().c_str());
  abort();
}

std::unique_ptr<shardps::Segment> MakeSegment() {
  auto spec = shardps::ParseModelSpec(kSpec);
  if (!spec.ok()) Die(spec.status());
  char dir[] = "/dev/shm/shardps-fuzz-XXXXXX";
  if (::mkdtemp(dir) == nullptr) abort();
  const std::string path = std::string(dir) + "/s.seg";
  shardps::SegmentOpenReport report;
  auto seg = shardps::Segment::OpenForServing(*spec, 0, 2, path, &report);
  ::unlink(path.c_str());
  ::rmdir(dir);
  if (!seg.ok()) Die(seg.status());
  return std::move(seg).value();
}

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
  static const std::unique_ptr<shardps::Segment> segment = MakeSegment();
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
