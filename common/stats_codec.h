// The Stats reply (wire::ShardStats inside a wire::Reply): its encoder, used
// by the server, and its decoder, used by the client, side by side so the
// two cannot drift apart.
//
// Thread-safety: pure functions; each caller brings its own builder.
#ifndef SHARDPS_COMMON_STATS_CODEC_H_
#define SHARDPS_COMMON_STATS_CODEC_H_

#include <cstdint>

#include "common/wire.h"
#include "shardps/shard_stats.h"
#include "shardps/status.h"

namespace shardps {

// Clears `builder` and finishes in it a Reply to request `request_id`
// carrying `stats` (all but `endpoint`, which is not on the wire). The
// per-worker lists are sent with `stats.workers_detail.size()` entries.
void EncodeStatsReply(uint64_t request_id, const ShardStats& stats,
                      flatbuffers::FlatBufferBuilder* builder);

// The stats of a verified Reply. `endpoint` is left empty (the caller knows
// where it asked). Per-worker lists an older server did not send read as
// clock 0, never seen, idle -1; a worker state beyond the known ones reads
// as kGone. kBadMessage when the reply has no stats, or a per-worker list
// whose length is not the worker count.
Result<ShardStats> DecodeStats(const wire::Reply& reply);

}  // namespace shardps

#endif  // SHARDPS_COMMON_STATS_CODEC_H_
