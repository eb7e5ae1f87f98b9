// Suite definitions: what `all` and `--quick` measure.
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
  o.exactly_once_sizes = {4 << 10, 1 << 20, 16 << 20};
  o.multihost_floats = {16 << 20, 64 << 20};
  o.metrics_sizes = {4 << 10, 1 << 20};
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
  o.stream_rows = 20000;
  o.stream_batches_used = 20;
  o.exactly_once_sizes = {1 << 20};
  o.multihost_floats = {4 << 20};
  o.multihost_warmup = 1;
  o.multihost_steps = 3;
  o.multihost_tmpfs = "512m";
  o.metrics_sizes = {4 << 10};
  o.metrics_rounds = 2;
  o.metrics_seconds = 0.1;
  return o;
}

}  // namespace shardps::bench
