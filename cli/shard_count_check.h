// The guard of `serve` and `launch` against starting a model at a shard
// count other than the one its segments in the storage were made for: that
// would create fresh, untrained segments beside the trained ones, and look
// to the user as if the training were lost.
#ifndef SHARDPS_CLI_SHARD_COUNT_CHECK_H_
#define SHARDPS_CLI_SHARD_COUNT_CHECK_H_

#include <cstdint>
#include <string>

#include "shardps/status.h"

namespace shardps::cli {

// Looks in <storage>/<model>/ for segments "shard-I-of-M.seg" with M !=
// `shards`. None (or no such directory): Ok. Some, and !allow_new:
// kInvalidArgument naming them, that they are untouched, and the ways out
// (--shards M, restore into new storage, --new). Some and allow_new: prints
// a WARNING line ("shardps <command>: ...") to stderr and returns Ok.
// Call it only when about to create segments: reopening a shard's own
// segment (a restart) is never refused. Reads the directory only.
Status CheckShardCount(const char* command, const std::string& storage,
                       const std::string& model, uint32_t shards,
                       bool allow_new);

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_SHARD_COUNT_CHECK_H_
