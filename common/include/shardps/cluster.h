// The cluster file: where a model's shard servers listen.
//
// Written by `shardps launch`, `shardps cluster` (a multi-host file, read by
// each host's `launch --this-host`) or by hand; read by clients and the CLI:
//
//   model = "demo"
//   spec_hash = "0x1234abcd5678ef00"   # optional; checked by clients
//   server_key = "<40-char Z85>"       # optional; the servers' CURVE public
//                                      # key (docs/security.md)
//
//   [[shard]]
//   index = 0
//   endpoint = "tcp://127.0.0.1:40123"
//   segment = "/dev/shm/shardps/demo/shard-0-of-2.seg"  # optional; lets a
//                                                        # ModelView on the
//                                                        same # host map it
//
// Shards must be listed exactly once each, indices 0..N-1 (any order).
//
// Or, instead of the [[shard]] tables, a pattern (for a Kubernetes
// StatefulSet behind a headless Service: the same file for every pod):
//
//   shards = 3                                         # 1..4096
//   endpoint_pattern = "tcp://shardps-{i}.shardps:7000" # {i}: shard index
//
// Parsed, it is the same ClusterInfo as the three tables it names (no
// segment hints); ToToml writes those tables, not the pattern.
//
// Thread-safety: values; the functions are pure apart from file I/O.
#ifndef SHARDPS_CLUSTER_H_
#define SHARDPS_CLUSTER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shardps/status.h"

namespace shardps {

struct ShardAddress {
  uint32_t index = 0;
  // A ZeroMQ endpoint: tcp://host:port or ipc://path (CheckShardEndpoint).
  std::string endpoint;
  // Optional hint: the path of its segment, for ModelView::Open(ClusterInfo)
  // and `checkpoint --to`, which need every shard on this host. Empty in a
  // multi-host file (the segment is a file on its shard's host only).
  // Clients never trust it: locality comes from the segment path and
  // identity each shard reports in its Hello (Client::local_segments()).
  std::string segment;
};

struct ClusterInfo {
  std::string model;
  std::optional<uint64_t> spec_hash;
  // The shard servers' CURVE public key (Z85), when they run with CURVE;
  // clients use it unless ClientOptions::curve_server_key overrides it.
  // Empty: plain connections.
  std::string server_key;
  std::vector<ShardAddress> shards;  // sorted by index, indices 0..N-1

  // Renders the TOML text ParseCluster reads back, always with [[shard]]
  // tables (a file read in the pattern form comes back expanded).
  std::string ToToml() const;
};

// Errors are kInvalidArgument naming the key (e.g. "shard[2].endpoint:
// missing") or saying that the text is a model spec (a [model] table), and
// kNotFound (asking whether `shardps launch` is still starting) / kIoError
// for the file.
Result<ClusterInfo> ParseCluster(std::string_view toml_text);
Result<ClusterInfo> LoadCluster(const std::string& path);

// OK when `endpoint` could reach a shard server: tcp:// or ipc:// with an
// address after it. kInvalidArgument saying which schemes are accepted
// otherwise; inproc:// is refused with why (it connects only sockets of one
// ZeroMQ context, and client and server each own theirs). ParseCluster
// checks every shard's endpoint with it.
Status CheckShardEndpoint(const std::string& endpoint);

// Writes atomically (temp file, fsync, rename, directory fsync) so a reader
// never sees half a file; on error `path` is unchanged.
Status SaveCluster(const ClusterInfo& cluster, const std::string& path);

}  // namespace shardps

#endif  // SHARDPS_CLUSTER_H_
