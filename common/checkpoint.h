// Checkpoints: a copy of every shard's segment state, written once as new
// files, and the rebuild of segments from it.
//
// A checkpoint is a directory:
//   MANIFEST                 "key = value" lines: format, model, spec hash,
//                            shard count, creation time, and per shard its
//                            file, size, CRC-32C, clocks and update count
//   shard-I-of-N.ckpt        the segment from its version array to its end
//                            (block versions, table counters, weights,
//                            optimizer state, accumulators, table rows)
//
// Writing: each file is written sequentially into DIR.partial-<pid>, fsync-ed,
// then the directory is renamed to DIR, so a reader never sees a half-written
// checkpoint and nothing is modified in place (write-once mounts work).
//
// Consistency (a live server keeps applying pushes meanwhile): each block's
// weights are a seqlock-consistent snapshot and its recorded version matches
// them; a block's optimizer state is copied right after, so it may be one
// update newer than its weights; table rows are copied as they are. Stop the
// trainers first (or use bsp clocks) for a checkpoint of one exact moment.
//
// Thread-safety: free functions; the segments are only read.
#ifndef SHARDPS_COMMON_CHECKPOINT_H_
#define SHARDPS_COMMON_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shardps/model_spec.h"
#include "shardps/status.h"

namespace shardps {

struct CheckpointSummary {
  std::string dir;
  uint32_t shards = 0;
  uint64_t bytes = 0;
};

// One shard's line group of a MANIFEST.
struct CheckpointShard {
  std::string file;  // shard-I-of-N.ckpt
  uint64_t bytes = 0;
  uint32_t crc = 0;
  uint64_t updates_applied = 0;
  int64_t applied_clock = 0;
  std::vector<int64_t> clocks;  // at most kMaxWorkers
};

// A MANIFEST as read, before it is compared with any spec.
struct CheckpointManifest {
  std::string model;
  uint64_t spec_hash = 0;
  std::vector<CheckpointShard> shards;  // 1..4096 of them
};

// Parses the text of a MANIFEST. Every key is checked (present, a number in
// range) before the caller trusts it; anything else is kCorrupt naming the
// line or key. Pure: the files the manifest names are not touched. Exposed
// for RestoreCheckpoint, tests and fuzzing.
Result<CheckpointManifest> ParseCheckpointManifest(std::string_view text);

// Writes a checkpoint of the segments `segment_paths` (shard i's at index
// i, all of one model) to `dir`. kBusy if `dir` exists; kIoError for a
// failed write; errors of Segment::OpenReadOnly for the segments.
Result<CheckpointSummary> WriteCheckpoint(
    const std::vector<std::string>& segment_paths, const std::string& dir);

// Rebuilds every shard's segment of `spec` under `storage` from the
// checkpoint in `dir`. Refuses, changing nothing, a checkpoint of another
// spec (kSpecMismatch), a damaged one (kCorrupt, with the file and reason)
// and existing segments (kBusy).
Result<CheckpointSummary> RestoreCheckpoint(const std::string& dir,
                                            const ModelSpec& spec,
                                            const std::string& storage);

}  // namespace shardps

#endif  // SHARDPS_COMMON_CHECKPOINT_H_
