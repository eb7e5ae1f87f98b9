// Fuzzes the cluster file parser: clients and the CLI read cluster files
// that `shardps launch` or a user wrote.
//
// Property beyond "no crash": whatever parses renders back (ToToml) to text
// that parses to the same cluster, since launch writes what clients read.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shardps/cluster.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cluster = shardps::ParseCluster(text);
  if (!cluster.ok()) return 0;
  auto again = shardps::ParseCluster(cluster->ToToml());
  if (!again.ok()) __builtin_trap();
  const shardps::ClusterInfo& a = *cluster;
  const shardps::ClusterInfo& b = *again;
  if (a.model != b.model || a.spec_hash != b.spec_hash ||
      a.shards.size() != b.shards.size())
    __builtin_trap();
  for (size_t i = 0; i < a.shards.size(); ++i)
    if (a.shards[i].index != b.shards[i].index ||
        a.shards[i].endpoint != b.shards[i].endpoint ||
        a.shards[i].segment != b.shards[i].segment)
      __builtin_trap();
  return 0;
}
