// Fuzzes the checkpoint MANIFEST parser: `shardps checkpoint restore` reads
// a MANIFEST from a directory that may be damaged or not ours.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/checkpoint.h"
#include "common/segment_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto manifest = shardps::ParseCheckpointManifest(text);
  if (!manifest.ok()) return 0;
  // What restore relies on without checking again.
  if (manifest->shards.empty() || manifest->shards.size() > 4096)
    __builtin_trap();
  for (const shardps::CheckpointShard& s : manifest->shards)
    if (s.clocks.size() > shardps::kMaxWorkers || s.applied_clock < 0)
      __builtin_trap();
  return 0;
}
