// SpecDifferences: the words a spec-mismatch refusal uses to say what
// changed between a segment and the spec it is opened with.
#include "common/spec_diff.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "common/segment.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

ModelSpec BaseSpec(const std::string& storage) {
  ModelSpec spec = test::MakeSpec(
      "diffs", storage, {{"w", {3, 1000}}, {"b", {10}}, {"z", {2048}}});
  TableSpec t;
  t.name = "emb";
  t.dim = 8;
  t.capacity = 100;
  spec.tables.push_back(t);
  return spec;
}

// Creates the segment of `made` (shard 0 of 2) and returns what differs
// from `now`; checks that opening it with `now` is refused with exactly
// those words.
std::vector<std::string> Differences(const test::TempDir& dir,
                                     const ModelSpec& made,
                                     const ModelSpec& now) {
  const std::string path = Segment::PathFor(dir.path(), made.name, 0, 2);
  {
    SegmentOpenReport report;
    auto seg = Segment::OpenForServing(made, 0, 2, path, &report);
    REQUIRE(seg.ok());
    (*seg)->MarkCleanShutdown();
  }
  auto seg = Segment::OpenReadOnly(path);
  REQUIRE(seg.ok());
  std::vector<std::string> diffs = SpecDifferences(**seg, now);
  SegmentOpenReport report;
  auto refused = Segment::OpenForServing(now, 0, 2, path, &report);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kSpecMismatch);
  const std::string message = refused.status().message();
  INFO(message);
  for (size_t i = 0; i < diffs.size() && i < 5; ++i)
    CHECK(message.find(diffs[i]) != std::string::npos);
  CHECK(message.find("serve the spec it was created with") !=
        std::string::npos);
  CHECK(message.find("another --storage") != std::string::npos);
  CHECK(message.find("`shardps restore`") != std::string::npos);
  return diffs;
}

using Diffs = std::vector<std::string>;

TEST_CASE("spec differences name what changed since the segment was made",
          "[segment]") {
  test::TempDir dir;
  const ModelSpec made = BaseSpec(dir.path());
  ModelSpec now = made;

  SECTION("a tensor's shape") {
    now.tensors[0].shape = {3, 999};
    CHECK(Differences(dir, made, now) ==
          Diffs{"tensor 'w' has shape [3, 1000] in the segment, [3, 999] in "
                "the spec"});
  }
  SECTION("a tensor's rank") {
    now.tensors[1].shape = {2, 5};
    CHECK(Differences(dir, made, now) ==
          Diffs{"tensor 'b' has shape [10] in the segment, [2, 5] in the "
                "spec"});
  }
  SECTION("a tensor added and one removed") {
    now.tensors[2].name = "z2";
    CHECK(Differences(dir, made, now) ==
          Diffs{"tensor 'z' is in the segment, not the spec",
                "tensor 'z2' is in the spec, not the segment"});
  }
  SECTION("tensors reordered") {
    std::swap(now.tensors[0], now.tensors[1]);
    CHECK(Differences(dir, made, now) ==
          Diffs{"the tensors are in the order w, b, z in the segment, b, w, "
                "z in the spec"});
  }
  SECTION("the block size") {
    now.block_floats = 2048;
    CHECK(Differences(dir, made, now) ==
          Diffs{"block_floats is 1024 in the segment, 2048 in the spec"});
  }
  SECTION("the default optimizer, once, not again per tensor") {
    now.optimizer.kind = "adam";
    CHECK(Differences(dir, made, now) ==
          Diffs{"the default optimizer is 'sgd' in the segment, 'adam' in "
                "the spec"});
  }
  SECTION("one tensor's own optimizer") {
    OptimizerSpec adam = made.optimizer;
    adam.kind = "adam";
    now.tensors[1].optimizer = adam;
    CHECK(Differences(dir, made, now) ==
          Diffs{"tensor 'b' is updated by 'sgd' in the segment, 'adam' in "
                "the spec"});
  }
  SECTION("bsp or not") {
    now.consistency.mode = ConsistencySpec::Mode::kBsp;
    CHECK(Differences(dir, made, now) ==
          Diffs{"consistency is not bsp in the segment, bsp in the spec"});
  }
  SECTION("a table's dim, capacity and optimizer") {
    now.tables[0].dim = 16;
    now.tables[0].capacity = 1000;
    OptimizerSpec adagrad = made.optimizer;
    adagrad.kind = "adagrad";
    now.tables[0].optimizer = adagrad;
    const std::string rows = std::to_string(made.tables[0].RowsPerShard(2));
    const std::string new_rows = std::to_string(now.tables[0].RowsPerShard(2));
    CHECK(Differences(dir, made, now) ==
          Diffs{"table 'emb' has dim 8 in the segment, 16 in the spec",
                "table 'emb' holds " + rows +
                    " rows per shard in the "
                    "segment, " +
                    new_rows + " (capacity 1000) in the spec",
                "table 'emb' is updated by 'sgd' in the segment, 'adagrad' "
                "in the spec"});
  }
  SECTION("a table removed") {
    now.tables.clear();
    CHECK(Differences(dir, made, now) ==
          Diffs{"table 'emb' is in the segment, not the spec"});
  }
  SECTION("many differences: the refusal lists the first five") {
    for (auto& t : now.tensors) t.name += "_v2";
    const Diffs diffs = Differences(dir, made, now);
    REQUIRE(diffs.size() == 6);
    CHECK(JoinDifferences(diffs, 5).find("; and 1 more") != std::string::npos);
    CHECK(JoinDifferences(diffs, 6).find("more") == std::string::npos);
  }
}

}  // namespace
}  // namespace shardps
