#include "shardps/layout.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace shardps {
namespace {

TensorLayout Shaped(const std::string& name, std::vector<uint64_t> shape) {
  TensorLayout t;
  t.name = name;
  t.shape = std::move(shape);
  return t;
}

// Tensors of the given float counts, named t0, t1, ... (rank 1).
ModelLayout FlatLayout(const std::vector<uint64_t>& sizes,
                       uint64_t block_floats, uint32_t shards) {
  std::vector<TensorLayout> tensors;
  for (size_t i = 0; i < sizes.size(); ++i)
    tensors.push_back(Shaped("t" + std::to_string(i), {sizes[i]}));
  return ModelLayout(std::move(tensors), block_floats, shards);
}

TEST_CASE("layout numbers blocks globally in spec order", "[layout]") {
  // 10 floats in blocks of 4 -> 3 blocks; 3 -> 1; 7 -> 2; 8 -> 2 (exact).
  const ModelLayout layout = FlatLayout({10, 3, 7, 8}, 4, 3);
  const auto& t = layout.tensors();
  REQUIRE(t.size() == 4);
  CHECK(t[0].num_blocks == 3);
  CHECK(t[1].num_blocks == 1);
  CHECK(t[2].num_blocks == 2);
  CHECK(t[3].num_blocks == 2);
  CHECK(t[0].first_global_block == 0);
  CHECK(t[1].first_global_block == 3);
  CHECK(t[2].first_global_block == 4);
  CHECK(t[3].first_global_block == 6);
  CHECK(layout.total_blocks() == 8);
  for (uint32_t i = 0; i < t.size(); ++i) CHECK(t[i].index == i);
}

TEST_CASE("layout deals blocks round-robin over global block ids", "[layout]") {
  const ModelLayout layout = FlatLayout({10, 3, 7, 8}, 4, 3);
  const auto& t = layout.tensors();
  // Global ids 0..7 go to shards 0,1,2,0,1,2,0,1 whatever tensor holds them.
  CHECK(layout.OwnerOf(t[0], 0) == 0);
  CHECK(layout.OwnerOf(t[0], 1) == 1);
  CHECK(layout.OwnerOf(t[0], 2) == 2);
  CHECK(layout.OwnerOf(t[1], 0) == 0);
  CHECK(layout.OwnerOf(t[2], 0) == 1);
  CHECK(layout.OwnerOf(t[2], 1) == 2);
  CHECK(layout.OwnerOf(t[3], 0) == 0);
  CHECK(layout.OwnerOf(t[3], 1) == 1);
}

TEST_CASE("layout computes shape products and block lengths", "[layout]") {
  const ModelLayout layout(
      {Shaped("m", {3, 5, 7}), Shaped("exact", {2, 4}), Shaped("one", {1})}, 8,
      2);
  const TensorLayout& m = layout.tensors()[0];
  CHECK(m.num_floats == 105);
  REQUIRE(m.num_blocks == 14);  // 13 full blocks of 8 and one of 1
  for (uint32_t b = 0; b + 1 < m.num_blocks; ++b)
    CHECK(layout.BlockLength(m, b) == 8);
  CHECK(layout.BlockLength(m, 13) == 1);
  CHECK(layout.BlockStart(13) == 104);

  const TensorLayout& exact = layout.tensors()[1];
  REQUIRE(exact.num_blocks == 1);
  CHECK(layout.BlockLength(exact, 0) == 8);

  const TensorLayout& one = layout.tensors()[2];
  REQUIRE(one.num_blocks == 1);
  CHECK(layout.BlockLength(one, 0) == 1);
}

// Checks that BlocksOnShard partitions every tensor's blocks: each block on
// exactly one shard, the one OwnerOf names, listed in ascending order, and
// that block lengths add up to the tensor.
void CheckPartition(const std::vector<uint64_t>& sizes, uint64_t block_floats,
                    uint32_t shards) {
  INFO("block_floats " << block_floats << ", shards " << shards);
  const ModelLayout layout = FlatLayout(sizes, block_floats, shards);
  uint64_t expected_global = 0;
  for (const TensorLayout& t : layout.tensors()) {
    INFO("tensor " << t.name << " of " << t.num_floats << " floats");
    CHECK(t.first_global_block == expected_global);
    expected_global += t.num_blocks;
    std::vector<int> seen(t.num_blocks, 0);
    for (uint32_t shard = 0; shard < shards; ++shard) {
      const std::vector<uint32_t> blocks = layout.BlocksOnShard(t, shard);
      for (size_t i = 0; i < blocks.size(); ++i) {
        REQUIRE(blocks[i] < t.num_blocks);
        if (i > 0) CHECK(blocks[i - 1] < blocks[i]);
        CHECK(layout.OwnerOf(t, blocks[i]) == shard);
        CHECK((t.first_global_block + blocks[i]) % shards == shard);
        ++seen[blocks[i]];
      }
    }
    uint64_t floats = 0;
    for (uint32_t b = 0; b < t.num_blocks; ++b) {
      CHECK(seen[b] == 1);
      floats += layout.BlockLength(t, b);
    }
    CHECK(floats == t.num_floats);
  }
  CHECK(layout.total_blocks() == expected_global);
}

TEST_CASE("layout BlocksOnShard covers every block exactly once", "[layout]") {
  const std::vector<std::vector<uint64_t>> models = {
      {1},
      {1024},
      {1025},
      {5000, 1, 3, 2048, 777},
      {7, 7, 7, 7, 7, 7, 7},
      {100000, 99999, 4096},
  };
  for (const auto& sizes : models)
    for (uint64_t block_floats : {1, 3, 64, 1024, 4096})
      for (uint32_t shards : {1, 2, 3, 4, 5, 7, 16})
        CheckPartition(sizes, block_floats, shards);
}

TEST_CASE("layout spreads small tensors over all shards", "[layout]") {
  // Twelve one-block tensors on four shards: a per-tensor placement would put
  // every block 0 on shard 0; global round-robin gives each shard three.
  const ModelLayout layout = FlatLayout(std::vector<uint64_t>(12, 10), 1024, 4);
  std::vector<int> per_shard(4, 0);
  for (const TensorLayout& t : layout.tensors()) {
    REQUIRE(t.num_blocks == 1);
    ++per_shard[layout.OwnerOf(t, 0)];
  }
  CHECK(per_shard == std::vector<int>{3, 3, 3, 3});
}

TEST_CASE("layout gives a shard no blocks when it has none to give",
          "[layout]") {
  // One block, three shards: shards 1 and 2 own nothing of it.
  const ModelLayout layout = FlatLayout({5}, 8, 3);
  const TensorLayout& t = layout.tensors()[0];
  CHECK(layout.BlocksOnShard(t, 0) == std::vector<uint32_t>{0});
  CHECK(layout.BlocksOnShard(t, 1).empty());
  CHECK(layout.BlocksOnShard(t, 2).empty());
}

TEST_CASE("layout Find returns the named tensor or nullptr", "[layout]") {
  const ModelLayout layout(
      {Shaped("fc1.weight", {4, 3}), Shaped("fc1.bias", {4}),
       Shaped("fc2.weight", {2, 4})},
      1024, 2);
  const TensorLayout* bias = layout.Find("fc1.bias");
  REQUIRE(bias != nullptr);
  CHECK(bias->name == "fc1.bias");
  CHECK(bias->index == 1);
  CHECK(bias->shape == std::vector<uint64_t>{4});
  CHECK(bias == &layout.tensors()[1]);

  const TensorLayout* fc2 = layout.Find("fc2.weight");
  REQUIRE(fc2 != nullptr);
  CHECK(fc2->index == 2);

  CHECK(layout.Find("fc1") == nullptr);        // a prefix is not a name
  CHECK(layout.Find("fc1.bias ") == nullptr);  // nor is a padded one
  CHECK(layout.Find("FC1.BIAS") == nullptr);   // names are case-sensitive
  CHECK(layout.Find("") == nullptr);
}

TEST_CASE("layout from a spec matches the spec's block size and order",
          "[layout]") {
  const ModelSpec spec = test::MakeSpec(
      "m", "/unused", {{"a", {3000}}, {"b", {10}}, {"c", {2, 1024}}});
  const ModelLayout layout(spec, 2);
  CHECK(layout.block_floats() == 1024);
  CHECK(layout.shards() == 2);
  REQUIRE(layout.tensors().size() == 3);
  CHECK(layout.tensors()[0].num_blocks == 3);
  CHECK(layout.tensors()[1].first_global_block == 3);
  CHECK(layout.tensors()[2].first_global_block == 4);
  CHECK(layout.tensors()[2].num_floats == 2048);
  CHECK(layout.total_blocks() == 6);
}

}  // namespace
}  // namespace shardps
