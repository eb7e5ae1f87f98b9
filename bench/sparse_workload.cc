// sparse workload: PushRows/PullRows of 1000 ids per request against one
// shard, 8 in flight, against raw ZeroMQ moving the same bytes per request.
#include <cstdio>
#include <string>

#include "bench/cluster.h"
#include "bench/workloads.h"

namespace shardps::bench {

namespace {

constexpr uint64_t kIdsPerRequest = 1000;
constexpr int kInflight = 8;
// Distinct ids the requests draw from: enough that rows are spread over a
// large index (cache misses like a real embedding), few enough that the
// table fills during the warm-up and the run measures steady state.
constexpr uint64_t kIdPool = 200000;

Figure SparseFigure(const char* name, uint64_t dim, const LoadResult& r,
                    const LoadResult& raw) {
  Figure f;
  f.workload = "sparse";
  f.name = name;
  f.config = {{"ids", std::to_string(kIdsPerRequest)},
              {"dim", std::to_string(dim)},
              {"inflight", std::to_string(kInflight)},
              {"shards", "1"},
              {"transport", "tcp"}};
  f.value = r.requests / r.seconds;
  f.unit = "req/s";
  f.ceiling = raw.requests / raw.seconds;
  f.ceiling_name = "raw zmq, same bytes";
  char note[64];
  std::snprintf(note, sizeof(note), "%.1f M rows/s",
                r.requests * kIdsPerRequest / r.seconds / 1e6);
  f.note = note;
  return f;
}

}  // namespace

Status RunSparse(const SuiteOptions& o, Report* report) {
  auto dir = MakeTempDir();
  if (!dir.ok()) return dir.status();
  auto sink = StartSink("tcp", *dir);
  if (!sink.ok()) return sink.status();
  for (uint64_t dim : o.sparse_dims) {
    const std::string table =
        "[[table]]\nname = \"emb\"\ndim = " + std::to_string(dim) +
        "\ncapacity = " + std::to_string(kIdPool) + "\ninit = \"zeros\"\n";
    auto cluster = BenchCluster::Start(1024, 1, "tcp", 1, table);
    if (!cluster.ok()) return cluster.status();
    const uint64_t row_bytes = kIdsPerRequest * dim * sizeof(float);
    const uint64_t id_bytes = kIdsPerRequest * sizeof(uint64_t);
    for (Direction d : {Direction::kPush, Direction::kPull}) {
      const bool push = d == Direction::kPush;
      std::fprintf(stderr, "sparse: %s dim %llu\n",
                   push ? "PushRows" : "PullRows",
                   static_cast<unsigned long long>(dim));
      LoadSpec spec{d, 0, kInflight, o.seconds, true};
      auto r = SparseLoad(cluster->cluster_file(), "emb", dim, kIdsPerRequest,
                          kIdPool, spec);
      if (!r.ok()) return r.status();
      // The ceiling moves a request's bytes: ids + rows out for a push, rows
      // back for a pull (the raw request carries no ids).
      LoadSpec raw_spec{d, push ? id_bytes + row_bytes : row_bytes, kInflight,
                        o.seconds, true};
      auto raw = RawLoad(sink->endpoint, raw_spec);
      if (!raw.ok()) return raw.status();
      report->Add(SparseFigure(push ? "pushrows" : "pullrows", dim, *r, *raw));
    }
  }
  sink->child.Stop();
  RemoveTree(*dir);
  return Status::Ok();
}

}  // namespace shardps::bench
