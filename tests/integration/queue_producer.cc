// shardps_queue_producer: a batch producer for the queue tests.
//
// Pushes --count batches (0 = until the queue closes) of shape [--batch, 1,
// --features] / [--batch, 1], every float of batch k equal to
// producer_id * 1e6 + k, so a consumer can check order, loss, duplicates
// and torn batches. With --die-after-claim it claims a slot, writes half of
// it, prints "claimed" and waits to be killed.
//
// stdout: "claimed" (see above), then "done <pushed> <status>" at the end.
// Exit status: 0 when it stopped because of --count or a closed queue, 1 on
// any other error, 2 for bad flags.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "shardps/batch_queue.h"

int main(int argc, char** argv) {
  CLI::App app{"queue test producer"};
  std::string path;
  uint64_t id = 0, count = 0;
  uint32_t batch = 4, features = 16;
  bool die_after_claim = false;
  app.add_option("--queue", path)->required();
  app.add_option("--id", id);
  app.add_option("--count", count);
  app.add_option("--batch", batch);
  app.add_option("--features", features);
  app.add_flag("--die-after-claim", die_after_claim);
  CLI11_PARSE(app, argc, argv);

  auto queue = shardps::BatchQueue::Open(path);
  if (!queue.ok()) {
    std::printf("done 0 %s\n", queue.status().ToString().c_str());
    return 1;
  }
  const shardps::BatchShape shape{batch, 1, features, 1};
  if (die_after_claim) {
    auto slot = (*queue)->Claim(std::chrono::seconds(10));
    if (!slot.ok()) return 1;
    // Half a batch of a value no committed batch has.
    for (uint64_t i = 0; i < shape.feature_floats() / 2; ++i)
      slot->data()[i] = -1.0f;
    std::printf("claimed\n");
    std::fflush(stdout);
    for (;;) pause();
  }
  std::vector<float> features_buf(shape.feature_floats());
  std::vector<float> labels(shape.label_floats());
  uint64_t pushed = 0;
  shardps::Status s;
  while (count == 0 || pushed < count) {
    const float value = static_cast<float>(id * 1000000 + pushed);
    std::fill(features_buf.begin(), features_buf.end(), value);
    std::fill(labels.begin(), labels.end(), value);
    s = (*queue)->Push(shape, features_buf.data(), labels.data(),
                       std::chrono::seconds(30), id, pushed);
    if (!s.ok()) break;
    ++pushed;
  }
  std::printf("done %llu %s\n", static_cast<unsigned long long>(pushed),
              s.ok() ? "ok" : s.ToString().c_str());
  return s.ok() || s.code() == shardps::Code::kClosed ? 0 : 1;
}
