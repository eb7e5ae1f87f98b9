#include "shardps/layout.h"

#include <algorithm>
#include <utility>

namespace shardps {

namespace {

std::vector<TensorLayout> TensorsOf(const ModelSpec& spec) {
  std::vector<TensorLayout> out;
  out.reserve(spec.tensors.size());
  for (const TensorSpec& t : spec.tensors) {
    TensorLayout l;
    l.name = t.name;
    l.shape = t.shape;
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace

ModelLayout::ModelLayout(std::vector<TensorLayout> tensors,
                         uint64_t block_floats, uint32_t shards)
    : tensors_(std::move(tensors)),
      block_floats_(block_floats),
      shards_(shards) {
  for (uint32_t i = 0; i < tensors_.size(); ++i) {
    TensorLayout& t = tensors_[i];
    t.index = i;
    t.num_floats = 1;
    for (uint64_t d : t.shape) t.num_floats *= d;
    t.num_blocks = static_cast<uint32_t>((t.num_floats + block_floats_ - 1) /
                                         block_floats_);
    t.first_global_block = total_blocks_;
    total_blocks_ += t.num_blocks;
    by_name_.emplace(t.name, i);
  }
}

ModelLayout::ModelLayout(const ModelSpec& spec, uint32_t shards)
    : ModelLayout(TensorsOf(spec), spec.block_floats, shards) {}

const TensorLayout* ModelLayout::Find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

uint64_t ModelLayout::BlockLength(const TensorLayout& t, uint32_t block) const {
  const uint64_t start = BlockStart(block);
  return std::min(block_floats_, t.num_floats - start);
}

std::vector<uint32_t> ModelLayout::BlocksOnShard(const TensorLayout& t,
                                                 uint32_t shard) const {
  std::vector<uint32_t> out;
  // First block b with (first_global_block + b) % shards == shard.
  const uint64_t phase = t.first_global_block % shards_;
  uint64_t b = (shard + shards_ - phase) % shards_;
  for (; b < t.num_blocks; b += shards_)
    out.push_back(static_cast<uint32_t>(b));
  return out;
}

}  // namespace shardps
