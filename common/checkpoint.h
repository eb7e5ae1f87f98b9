// Checkpoints: a copy of every shard's segment state, written once as new
// files, and the rebuild of segments from it.
//
// A checkpoint is a directory:
//   MANIFEST                 "key = value" lines: format, model, spec hash,
//                            shard count, creation time, and per shard its
//                            file, size, CRC-32C, clocks, update count and
//                            the identity of the segment it was taken from
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
// A block left mid-update (odd version) by a server that died is never
// copied: with no server holding the segment's lock it is repaired first
// (CheckpointWriteOptions::repair) or the checkpoint is refused, naming it.
// Every block read has a deadline, and a failed checkpoint leaves no
// DIR.partial-<pid> behind.
//
// Thread-safety: free functions; the segments are only read (a repair, if
// asked for, writes a segment no server holds).
#ifndef SHARDPS_COMMON_CHECKPOINT_H_
#define SHARDPS_COMMON_CHECKPOINT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/segment_id.h"
#include "shardps/model_spec.h"
#include "shardps/status.h"

namespace shardps {

struct CheckpointSummary {
  std::string dir;
  uint32_t shards = 0;
  uint64_t bytes = 0;
  // Per shard written or restored, in shard order: the identity of the
  // segment the checkpoint was taken from (empty if its manifest predates
  // the field), and for a restore the identity of the segment made from it.
  std::vector<SegmentId> sources;
  std::vector<SegmentId> restored;
};

// One shard's line group of a MANIFEST.
struct CheckpointShard {
  uint32_t index = 0;  // which shard of the model
  std::string file;    // shard-I-of-N.ckpt
  uint64_t bytes = 0;
  uint32_t crc = 0;
  uint64_t updates_applied = 0;
  int64_t applied_clock = 0;
  std::vector<int64_t> clocks;  // at most kMaxWorkers
  // The segment it was taken from; empty in manifests written before it
  // was recorded. Shown, never required to match: a restore makes new
  // segments, with new identities.
  SegmentId segment_identity;
};

// A MANIFEST as read, before it is compared with any spec.
struct CheckpointManifest {
  std::string model;
  uint64_t spec_hash = 0;
  uint32_t shard_count = 0;  // the model's shards, 1..4096
  // The shards this checkpoint holds, by index: all of them, or one for a
  // shard server's own checkpoint (`serve --checkpoint-dir`).
  std::vector<CheckpointShard> shards;
};

// Parses the text of a MANIFEST. Every key is checked (present, a number in
// range) before the caller trusts it; anything else is kCorrupt naming the
// line or key. Pure: the files the manifest names are not touched. Exposed
// for RestoreCheckpoint, tests and fuzzing.
Result<CheckpointManifest> ParseCheckpointManifest(std::string_view text);

struct CheckpointWriteOptions {
  // How long to wait for a consistent copy of one block. A live server's
  // writers leave a block odd for microseconds; past this the checkpoint
  // fails (kTimeout or kCorrupt, naming the block) rather than hang.
  std::chrono::milliseconds block_read_timeout{2000};
  // Called for a segment that has a block left mid-update while no server
  // holds its lock (its server died inside an update). It must put the
  // segment back as a server opening it would (the update journal is the
  // server's: common/ cannot reach it), or return why it cannot; the
  // checkpoint then reads the segment again. Empty: such a segment is
  // refused with kCorrupt naming the block.
  std::function<Status(const std::string& segment_path)> repair;
};

// Writes a checkpoint of the segments `segment_paths` (shard i's at index
// i, all of one model) to `dir`. kBusy if `dir` exists; kIoError for a
// failed write; errors of Segment::OpenReadOnly for the segments; kCorrupt
// for a torn block no repair fixed; kTimeout or kCorrupt for a block that
// gave no consistent copy within options.block_read_timeout. On any error
// nothing is left at `dir` or `dir`.partial-<pid>.
Result<CheckpointSummary> WriteCheckpoint(
    const std::vector<std::string>& segment_paths, const std::string& dir,
    const CheckpointWriteOptions& options = {});

// Writes a checkpoint of one shard's segment to `dir`, in the same format
// (its MANIFEST lists just that shard). What `serve --checkpoint-dir` does.
Result<CheckpointSummary> WriteShardCheckpoint(
    const std::string& segment_path, const std::string& dir,
    const CheckpointWriteOptions& options = {});

// Rebuilds every shard's segment of `spec` under `storage` from `dir`:
// either one checkpoint holding every shard, or a `serve --checkpoint-dir`
// root (dir/shard-I-of-N/<time>/), from which each shard's newest
// checkpoint that verifies is taken (older ones are tried when the newest
// is damaged; the ones skipped are named on stderr). Refuses, changing
// nothing, a checkpoint of another spec (kSpecMismatch), a damaged one
// (kCorrupt, with the file and reason), a shard missing (kNotFound) and
// existing segments (kBusy).
Result<CheckpointSummary> RestoreCheckpoint(const std::string& dir,
                                            const ModelSpec& spec,
                                            const std::string& storage);

}  // namespace shardps

#endif  // SHARDPS_COMMON_CHECKPOINT_H_
