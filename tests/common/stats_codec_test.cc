#include "common/stats_codec.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/common/parsed_reply.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

TEST_CASE("stats codec decodes what it encodes", "[stats_codec]") {
  ShardStats in;
  in.shard = 2;
  in.endpoint = "tcp://host:1";  // not on the wire
  in.model = "mnist";
  in.blocks = 17;
  in.threads = 4;
  in.pushes = 1001;
  in.pulls = 1002;
  in.updates_applied = 1003;
  in.errors = 5;
  in.bytes_in = uint64_t{1} << 40;
  in.bytes_out = (uint64_t{1} << 41) + 3;
  in.uptime_ms = 123456;
  in.pid = 4321;
  in.consistency = "bsp";
  in.workers = 3;
  in.applied_clock = 9;
  in.workers_detail = {{9, WorkerStats::State::kConnected, 12},
                       {8, WorkerStats::State::kGone, 5000},
                       {0, WorkerStats::State::kNeverSeen, -1}};
  in.waiting = 6;
  in.duplicates = 77;
  in.exactly_once_clients = 2;
  in.auth_refusals = 3;
  in.replicas = 2;
  in.replica_blocks = 77;
  in.replica_bytes = 77ull << 20;
  in.early_applies = 9;
  in.apply = {
      40, 0.125, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  in.push_latency = {30, 1.5, {}};
  in.pull_latency = {20, 0.25, {}};
  in.connected_clients = 4;
  in.queues = {{"train", 8, 3, 100, 97, 1.5, 0.25, false},
               {"eval", 2, 0, 5, 5, 0, 3.0, true}};
  flatbuffers::FlatBufferBuilder builder;
  EncodeStatsReply(99, in, &builder);
  HeaderScratch scratch;
  const wire::Reply& reply = test::ParsedReply(builder, scratch);
  CHECK(reply.request_id() == 99);
  auto out = DecodeStats(reply);
  REQUIRE(out.ok());
  CHECK(out->shard == in.shard);
  CHECK(out->endpoint.empty());
  CHECK(out->model == in.model);
  CHECK(out->blocks == in.blocks);
  CHECK(out->threads == in.threads);
  CHECK(out->pushes == in.pushes);
  CHECK(out->pulls == in.pulls);
  CHECK(out->updates_applied == in.updates_applied);
  CHECK(out->errors == in.errors);
  CHECK(out->bytes_in == in.bytes_in);
  CHECK(out->bytes_out == in.bytes_out);
  CHECK(out->uptime_ms == in.uptime_ms);
  CHECK(out->pid == in.pid);
  CHECK(out->consistency == in.consistency);
  CHECK(out->workers == in.workers);
  CHECK(out->applied_clock == in.applied_clock);
  REQUIRE(out->workers_detail.size() == 3);
  for (size_t w = 0; w < 3; ++w) {
    CHECK(out->workers_detail[w].clock == in.workers_detail[w].clock);
    CHECK(out->workers_detail[w].state == in.workers_detail[w].state);
    CHECK(out->workers_detail[w].idle_ms == in.workers_detail[w].idle_ms);
  }
  CHECK(out->waiting == in.waiting);
  CHECK(out->duplicates == in.duplicates);
  CHECK(out->exactly_once_clients == in.exactly_once_clients);
  CHECK(out->auth_refusals == in.auth_refusals);
  CHECK(out->replicas == in.replicas);
  CHECK(out->replica_blocks == in.replica_blocks);
  CHECK(out->replica_bytes == in.replica_bytes);
  CHECK(out->early_applies == in.early_applies);
  CHECK(out->apply.count == in.apply.count);
  CHECK(out->apply.seconds == in.apply.seconds);
  CHECK(out->apply.buckets == in.apply.buckets);
  CHECK(out->push_latency.count == in.push_latency.count);
  CHECK(out->push_latency.seconds == in.push_latency.seconds);
  CHECK(out->pull_latency.count == in.pull_latency.count);
  CHECK(out->pull_latency.seconds == in.pull_latency.seconds);
  CHECK(out->connected_clients == in.connected_clients);
  REQUIRE(out->queues.size() == 2);
  for (size_t q = 0; q < 2; ++q) {
    const HostedQueueStats& a = out->queues[q];
    const HostedQueueStats& b = in.queues[q];
    CHECK(a.name == b.name);
    CHECK(a.slots == b.slots);
    CHECK(a.queued == b.queued);
    CHECK(a.produced == b.produced);
    CHECK(a.consumed == b.consumed);
    CHECK(a.producer_blocked_s == b.producer_blocked_s);
    CHECK(a.consumer_starved_s == b.consumer_starved_s);
    CHECK(a.closed == b.closed);
  }
}

// A ShardStats reply for `workers` workers with the given per-worker lists
// (null: not sent).
void BuildRaw(uint32_t workers, const std::vector<int64_t>* clocks,
              const std::vector<uint8_t>* states,
              const std::vector<int64_t>* idle,
              flatbuffers::FlatBufferBuilder* b) {
  auto stats = wire::CreateShardStats(
      *b, 0, b->CreateString("m"), 1, 1, 0, 0, 0, 0, 0, 0, 0, 1,
      b->CreateString("ssp:1"), workers, 0,
      clocks ? b->CreateVector(*clocks) : 0,
      states ? b->CreateVector(*states) : 0, idle ? b->CreateVector(*idle) : 0);
  wire::ReplyBuilder reply(*b);
  reply.add_stats(stats);
  b->Finish(reply.Finish());
}

TEST_CASE("stats codec reads lists an older server did not send",
          "[stats_codec]") {
  flatbuffers::FlatBufferBuilder builder;
  BuildRaw(2, nullptr, nullptr, nullptr, &builder);
  HeaderScratch scratch;
  auto out = DecodeStats(test::ParsedReply(builder, scratch));
  REQUIRE(out.ok());
  REQUIRE(out->workers_detail.size() == 2);
  for (const WorkerStats& w : out->workers_detail) {
    CHECK(w.clock == 0);
    CHECK(w.state == WorkerStats::State::kNeverSeen);
    CHECK(w.idle_ms == -1);
  }
}

TEST_CASE("stats codec reads latency and queues an older server did not send",
          "[stats_codec]") {
  flatbuffers::FlatBufferBuilder builder;
  BuildRaw(0, nullptr, nullptr, nullptr, &builder);
  HeaderScratch scratch;
  auto out = DecodeStats(test::ParsedReply(builder, scratch));
  REQUIRE(out.ok());
  CHECK(out->apply.count == 0);
  CHECK(out->apply.buckets.empty());
  CHECK(out->push_latency.count == 0);
  CHECK(out->connected_clients == 0);
  CHECK(out->queues.empty());
}

TEST_CASE("stats codec reads an unknown worker state as gone",
          "[stats_codec]") {
  const std::vector<uint8_t> states = {1, 200};
  flatbuffers::FlatBufferBuilder builder;
  BuildRaw(2, nullptr, &states, nullptr, &builder);
  HeaderScratch scratch;
  auto out = DecodeStats(test::ParsedReply(builder, scratch));
  REQUIRE(out.ok());
  CHECK(out->workers_detail.at(0).state == WorkerStats::State::kConnected);
  CHECK(out->workers_detail.at(1).state == WorkerStats::State::kGone);
}

TEST_CASE("stats codec refuses malformed replies", "[stats_codec]") {
  flatbuffers::FlatBufferBuilder builder;
  std::string text = "per-worker lists do not match the worker count";
  const std::vector<int64_t> two = {1, 2};
  const std::vector<uint8_t> one_state = {1};
  SECTION("no stats") {
    wire::ReplyBuilder reply(builder);
    reply.add_request_id(3);
    builder.Finish(reply.Finish());
    text = "Stats reply empty";
  }
  SECTION("clocks for the wrong worker count") {
    BuildRaw(3, &two, nullptr, nullptr, &builder);
  }
  SECTION("states for the wrong worker count") {
    BuildRaw(2, nullptr, &one_state, nullptr, &builder);
  }
  SECTION("idle times for the wrong worker count") {
    BuildRaw(1, nullptr, nullptr, &two, &builder);
  }
  SECTION("more latency buckets than a histogram has") {
    ShardStats in;
    in.apply.buckets.assign(65, 1);
    EncodeStatsReply(1, in, &builder);
    text = "65 apply latency buckets";
  }
  HeaderScratch scratch;
  auto out = DecodeStats(test::ParsedReply(builder, scratch));
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == Code::kBadMessage);
  CHECK_THAT(out.status().message(), Contains(text));
}

}  // namespace
}  // namespace shardps
