// Suite definitions and the workloads that wait on other features.
#include "bench/workloads.h"

namespace shardps::bench {

SuiteOptions DefaultSuite() {
  SuiteOptions o;
  o.seconds = 0.3;
  o.sizes = {4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20};
  o.inflight = {1, 8};
  o.transports = {"tcp", "ipc"};
  o.max_shards = 4;
  o.max_clients = 4;
  o.apply_floats = 16 << 20;
  o.model_floats = {16 << 20, 64 << 20};
  o.workers = {1, 2};
  o.steps = 5;
  o.compute_ms = 20;
  o.sparse_dims = {1, 16, 64};
  return o;
}

SuiteOptions QuickSuite() {
  SuiteOptions o;
  o.seconds = 0.05;
  o.sizes = {4 << 10, 1 << 20};
  o.inflight = {8};
  o.transports = {"tcp"};
  o.max_shards = 1;
  o.max_clients = 1;
  o.apply_floats = 1 << 20;
  o.model_floats = {1 << 20};
  o.workers = {1};
  o.steps = 2;
  o.compute_ms = 1;
  o.sparse_dims = {16};
  return o;
}

namespace {
void Unavailable(const char* workload, const char* why, Report* report) {
  Figure f;
  f.workload = workload;
  f.name = "-";
  f.note = std::string("unavailable: ") + why;
  report->Add(f);
}
}  // namespace

Status RunStream(const SuiteOptions&, Report* report) {
  Unavailable("stream", "BatchQueue streaming is not built yet", report);
  return Status::Ok();
}

}  // namespace shardps::bench
