// exactly-once workload: what exactly-once pushes cost. The same pushes,
// same cluster, with ClientOptions::exactly_once on (numbered, windowed,
// journaled on the server) and off (the ceiling).
#include <cstdio>
#include <string>

#include "bench/cluster.h"
#include "bench/workloads.h"

namespace shardps::bench {

Status RunExactlyOnce(const SuiteOptions& o, Report* report) {
  for (uint64_t size : o.exactly_once_sizes) {
    auto cluster = BenchCluster::Start(size / sizeof(float), 1, "tcp");
    if (!cluster.ok()) return cluster.status();
    for (int inflight : o.inflight) {
      std::fprintf(stderr, "exactly-once: %llu bytes, %d in flight\n",
                   static_cast<unsigned long long>(size), inflight);
      LoadSpec spec{Direction::kPush, size, inflight, o.seconds, true};
      spec.exactly_once = false;
      auto plain = ShardpsLoad(cluster->cluster_file(), "t", spec);
      if (!plain.ok()) return plain.status();
      spec.exactly_once = true;
      auto once = ShardpsLoad(cluster->cluster_file(), "t", spec);
      if (!once.ok()) return once.status();
      Figure f;
      f.workload = "exactly-once";
      f.name = "push";
      f.config = {{"bytes", std::to_string(size)},
                  {"inflight", std::to_string(inflight)}};
      f.value = once->gbps();
      f.unit = "GB/s";
      f.ceiling = plain->gbps();
      f.ceiling_name = "at-least-once push";
      f.note = std::to_string(
                   static_cast<uint64_t>(once->requests / once->seconds)) +
               " req/s";
      report->Add(f);
    }
  }
  return Status::Ok();
}

}  // namespace shardps::bench
