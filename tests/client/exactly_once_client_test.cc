// Exactly-once with client and servers as threads of one process, so the
// ThreadSanitizer run sees the retry paths of the I/O thread and the
// journaled updates of the pool threads: replies are dropped, several user
// threads push at once, and every push still lands exactly once.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "shardps/client.h"
#include "tests/in_process_cluster.h"

namespace shardps {
namespace {

using std::chrono::milliseconds;

TEST_CASE("exactly-once pushes from several threads survive lost replies",
          "[client][exactly-once][concurrency]") {
  // 3000 floats in blocks of 1024 over 2 shards, 2 writers each; lr 0.5.
  test::InProcessCluster cluster(
      2, 2,
      [](const std::string& storage) {
        return test::MakeSpec("once", storage, {{"w", {3000}, "zeros", 0}});
      },
      [](ServerOptions& o) { o.test_faults.drop_push_replies = 4; });
  ClientOptions options;
  options.attempt_timeout = milliseconds(100);
  options.request_timeout = milliseconds(20000);
  auto client = Client::Connect(cluster.info(), options);
  REQUIRE(client.ok());

  constexpr int kThreads = 4;
  constexpr int kPushesEach = 15;
  const std::vector<float> grad(3000, 1.0f);
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPushesEach; ++i)
        if (!(*client)->Push("w", grad.data(), grad.size()).Wait().ok())
          ++failures[t];
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) CHECK(failures[t] == 0);

  std::vector<float> w(3000);
  REQUIRE((*client)->Pull("w", w.data(), w.size()).Wait().ok());
  const float want = -0.5f * kThreads * kPushesEach;
  size_t wrong = 0;
  for (float v : w) wrong += v != want;
  CHECK(wrong == 0);
  auto stats = (*client)->Stats();
  REQUIRE(stats.ok());
  uint64_t duplicates = 0, updates = 0;
  for (const ShardStats& s : *stats) {
    duplicates += s.duplicates;
    updates += s.updates_applied;
  }
  CHECK(duplicates > 0);  // the retries did reach blocks that had the push
  CHECK(updates == uint64_t{kThreads} * kPushesEach * 3);
}

}  // namespace
}  // namespace shardps
