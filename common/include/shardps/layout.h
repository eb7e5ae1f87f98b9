// ModelLayout: where every block of every tensor lives.
//
// Placement is a pure function of (tensor names and shapes, block size, shard
// count), so clients and servers compute the same map with no coordinator.
// Tensors are cut into blocks of `block_floats` floats (the last block of a
// tensor may be shorter). Blocks are numbered globally in spec order and dealt
// round-robin: global block g lives on shard g % shards. Round-robin over the
// global numbering spreads both large tensors and many small ones evenly.
//
// Thread-safety: immutable after construction; share freely.
#ifndef SHARDPS_LAYOUT_H_
#define SHARDPS_LAYOUT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shardps/model_spec.h"

namespace shardps {

struct TensorLayout {
  std::string name;
  std::vector<uint64_t> shape;
  uint64_t num_floats = 0;
  uint32_t index = 0;  // position in the spec
  uint32_t num_blocks = 0;
  uint64_t first_global_block = 0;  // global id of block 0
};

class ModelLayout {
 public:
  // REQUIRES: shards >= 1, block_floats >= 1, tensors validated.
  ModelLayout(std::vector<TensorLayout> tensors, uint64_t block_floats,
              uint32_t shards);
  ModelLayout(const ModelSpec& spec, uint32_t shards);

  uint32_t shards() const { return shards_; }
  uint64_t block_floats() const { return block_floats_; }
  const std::vector<TensorLayout>& tensors() const { return tensors_; }
  uint64_t total_blocks() const { return total_blocks_; }

  // The tensor called `name`, or nullptr.
  const TensorLayout* Find(std::string_view name) const;

  // Shard that owns block `block` (0-based within the tensor).
  uint32_t OwnerOf(const TensorLayout& t, uint32_t block) const {
    return static_cast<uint32_t>((t.first_global_block + block) % shards_);
  }
  // Floats in block `block` of `t`: block_floats, or less for the last one.
  uint64_t BlockLength(const TensorLayout& t, uint32_t block) const;
  // Offset in floats of block `block` within the tensor.
  uint64_t BlockStart(uint32_t block) const { return block * block_floats_; }

  // Blocks of `t` owned by `shard`, ascending.
  std::vector<uint32_t> BlocksOnShard(const TensorLayout& t,
                                      uint32_t shard) const;

 private:
  std::vector<TensorLayout> tensors_;
  std::unordered_map<std::string, uint32_t> by_name_;
  uint64_t block_floats_;
  uint32_t shards_;
  uint64_t total_blocks_ = 0;
};

}  // namespace shardps

#endif  // SHARDPS_LAYOUT_H_
