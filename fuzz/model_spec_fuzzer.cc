// Fuzzes the model spec parser: `shardps serve --spec` and every client
// read a TOML spec a user wrote, so no text may crash or hang the parser.
//
// On success the spec must also survive what a server does next: hash it
// and lay it out over a few shard counts (only when the layout is small,
// since a valid spec may legitimately describe terabytes of blocks).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shardps/layout.h"
#include "shardps/model_spec.h"

namespace {

// Blocks of the whole model; stops counting once past `limit`.
uint64_t BlockCount(const shardps::ModelSpec& spec, uint64_t limit) {
  uint64_t blocks = 0;
  for (const shardps::TensorSpec& t : spec.tensors) {
    uint64_t floats = 1;
    for (uint64_t d : t.shape) floats *= d;  // validated: <= 2^40 total
    blocks += (floats + spec.block_floats - 1) / spec.block_floats;
    if (blocks > limit) return blocks;
  }
  return blocks;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = shardps::ParseModelSpec(text);
  if (!spec.ok()) return 0;
  // A parsed spec must pass the validation it was parsed with.
  if (!shardps::ValidateModelSpec(*spec).ok()) __builtin_trap();
  (void)shardps::SpecHash(*spec);
  if (BlockCount(*spec, 4096) > 4096) return 0;
  for (uint32_t shards : {1u, 2u, 7u}) {
    const shardps::ModelLayout layout(*spec, shards);
    for (const shardps::TensorLayout& t : layout.tensors())
      for (uint32_t s = 0; s < shards; ++s) (void)layout.BlocksOnShard(t, s);
  }
  return 0;
}
