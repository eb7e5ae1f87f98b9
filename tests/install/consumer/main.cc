// Links against the installed client library and uses its public headers
// only: parses a spec, lays it out over 3 shards, and fails to connect to a
// cluster that is not there (proving the client code is linked, not just
// declared).
#include <cstdio>

#include "shardps/client.h"
#include "shardps/layout.h"
#include "shardps/model_spec.h"
#include "shardps/model_view.h"

int main() {
  auto spec = shardps::ParseModelSpec(R"(
[model]
name = "consumer"
block_floats = 1024
[[tensor]]
name = "w"
shape = [4000]
init = "zeros"
)");
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
    return 1;
  }
  const shardps::ModelLayout layout(*spec, 3);
  const shardps::TensorLayout* w = layout.Find("w");
  if (w == nullptr || w->num_blocks != 4) return 1;

  shardps::ClusterInfo cluster;
  cluster.model = "consumer";
  cluster.shards.push_back({0, "tcp://127.0.0.1:1", ""});
  shardps::ClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(200);
  auto client = shardps::Client::Connect(cluster, options);
  if (client.ok() || client.status().code() != shardps::Code::kUnavailable) {
    std::fprintf(stderr, "expected kUnavailable, got %s\n",
                 client.status().ToString().c_str());
    return 1;
  }
  std::printf("consumer ok: %u blocks, connect said: %s\n", w->num_blocks,
              client.status().ToString().c_str());
  return 0;
}
