// InProcessCluster: N ShardServers of one model running inside the test
// process, with their segments in a private temp directory, plus the
// ClusterInfo a Client or ModelView needs to reach them.
#ifndef SHARDPS_TESTS_IN_PROCESS_CLUSTER_H_
#define SHARDPS_TESTS_IN_PROCESS_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "server/shard_server.h"
#include "shardps/cluster.h"
#include "shardps/model_spec.h"
#include "tests/test_util.h"

namespace shardps::test {

class InProcessCluster {
 public:
  // `make_spec` receives the storage directory and returns the model spec;
  // the servers are started at once (throws if any fails to start).
  // `tweak`, if given, adjusts each server's options first (fault switches).
  template <typename SpecFactory>
  InProcessCluster(uint32_t shards, uint32_t threads, SpecFactory make_spec,
                   const std::function<void(ServerOptions&)>& tweak = {})
      // dir_ named explicitly: it is constructed first anyway (declared
      // first), but clang's -Wuninitialized does not see a field that is
      // default-initialized implicitly before it is used here.
      : dir_(), spec_(make_spec(dir_.path())) {
    for (uint32_t i = 0; i < shards; ++i) {
      ServerOptions options;
      options.spec = spec_;
      options.shard = i;
      options.shards = shards;
      options.threads = threads;
      options.listen = "tcp://127.0.0.1:*";
      if (tweak) tweak(options);
      auto server = ShardServer::Start(std::move(options));
      if (!server.ok())
        throw std::runtime_error("shard " + std::to_string(i) + ": " +
                                 server.status().ToString());
      servers_.push_back(std::move(server).value());
    }
  }

  const ModelSpec& spec() const { return spec_; }
  const TempDir& dir() const { return dir_; }
  ShardServer& server(uint32_t i) { return *servers_.at(i); }

  // Where the shards listen and, since they run here, their segments.
  // REQUIRES: DestroyAll not called.
  ClusterInfo info() const {
    ClusterInfo info;
    info.model = spec_.name;
    for (uint32_t i = 0; i < servers_.size(); ++i) {
      ShardAddress address;
      address.index = i;
      address.endpoint = servers_[i]->endpoint();
      address.segment = servers_[i]->segment_path();
      info.shards.push_back(std::move(address));
    }
    return info;
  }

  std::vector<std::string> segment_paths() const {
    std::vector<std::string> paths;
    for (const ShardAddress& s : info().shards) paths.push_back(s.segment);
    return paths;
  }

  // Stop() leaves the socket bound but unread: requests go unanswered.
  void StopAll() {
    for (auto& s : servers_) s->Stop();
  }
  // Closes the sockets too: clients see the connections drop.
  void DestroyAll() { servers_.clear(); }

 private:
  TempDir dir_;  // first member: outlives the servers that use it
  ModelSpec spec_;
  std::vector<std::unique_ptr<ShardServer>> servers_;
};

}  // namespace shardps::test

#endif  // SHARDPS_TESTS_IN_PROCESS_CLUSTER_H_
