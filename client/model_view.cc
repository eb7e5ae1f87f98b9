#include "shardps/model_view.h"

#include <utility>

#include "common/mapping.h"
#include "common/segment.h"
#include "common/seqlock.h"
#include "common/table_index.h"

namespace shardps {

class ModelView::Impl {
 public:
  std::vector<std::unique_ptr<Segment>> segments;  // indexed by shard
  std::unique_ptr<ModelLayout> layout;
  std::vector<TensorMapping> mappings;  // indexed by tensor

  Status MapTensors() {
    const uint64_t block_bytes = layout->block_floats() * sizeof(float);
    for (const TensorLayout& t : layout->tensors()) {
      TensorMapping m;
      SHARDPS_RETURN_IF_ERROR(m.Reserve(t.num_blocks * block_bytes));
      for (uint32_t b = 0; b < t.num_blocks; ++b) {
        const Segment& seg = *segments[layout->OwnerOf(t, b)];
        const int64_t local = seg.LocalBlock(t.index, b);
        if (local < 0)
          return Status(Code::kCorrupt, seg.path() + " lacks block " +
                                            std::to_string(b) + " of '" +
                                            t.name + "'");
        const BlockEntry& e = seg.block(static_cast<uint32_t>(local));
        SHARDPS_RETURN_IF_ERROR(
            m.MapBlock(b * block_bytes, seg.fd(), e.data_offset, e.data_bytes)
                .WithContext(seg.path()));
      }
      mappings.push_back(std::move(m));
    }
    return Status::Ok();
  }

  Result<const TensorLayout*> Find(std::string_view name) const {
    const TensorLayout* t = layout->Find(name);
    if (t == nullptr)
      return Status(Code::kNotFound, "unknown tensor '" + std::string(name) +
                                         "' in model '" +
                                         segments[0]->header().model + "'");
    return t;
  }
};

Result<std::unique_ptr<ModelView>> ModelView::Open(
    const std::vector<std::string>& segment_paths) {
  if (segment_paths.empty())
    return Status(Code::kInvalidArgument, "no segments to map");
  auto impl = std::make_unique<Impl>();
  impl->segments.resize(segment_paths.size());
  const size_t shards = segment_paths.size();
  uint64_t hash = 0;
  std::string model;
  for (const std::string& path : segment_paths) {
    auto seg = Segment::OpenReadOnly(path);
    if (!seg.ok()) return seg.status();
    const SegmentHeader& h = (*seg)->header();
    if (model.empty()) {
      model = h.model;
      hash = h.spec_hash;
    }
    if (h.spec_hash != hash || model != h.model || h.shard_count != shards)
      return Status(Code::kSpecMismatch,
                    path + " is shard " + std::to_string(h.shard_index) +
                        " of " + std::to_string(h.shard_count) + " of model '" +
                        h.model + "', which does not fit with the other " +
                        std::to_string(shards - 1) + " segment(s)");
    auto& slot = impl->segments[h.shard_index];
    if (slot)
      return Status(Code::kInvalidArgument,
                    "shard " + std::to_string(h.shard_index) +
                        " listed twice (" + slot->path() + ", " + path + ")");
    slot = std::move(seg).value();
  }
  impl->layout = std::make_unique<ModelLayout>(impl->segments[0]->Layout());
  SHARDPS_RETURN_IF_ERROR(impl->MapTensors());
  return std::unique_ptr<ModelView>(new ModelView(std::move(impl)));
}

Result<std::unique_ptr<ModelView>> ModelView::Open(const ClusterInfo& cluster) {
  std::vector<std::string> paths;
  for (const ShardAddress& s : cluster.shards) {
    if (s.segment.empty())
      return Status(Code::kInvalidArgument,
                    "cluster file gives no segment for shard " +
                        std::to_string(s.index) +
                        " (is it on another host?); ModelView needs all "
                        "shards on this host");
    paths.push_back(s.segment);
  }
  return Open(paths);
}

ModelView::ModelView(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelView::~ModelView() = default;

const ModelLayout& ModelView::layout() const { return *impl_->layout; }
uint64_t ModelView::spec_hash() const {
  return impl_->segments[0]->header().spec_hash;
}

Result<Eigen::Map<const Eigen::VectorXf>> ModelView::Tensor(
    std::string_view name) const {
  auto t = impl_->Find(name);
  if (!t.ok()) return t.status();
  return Eigen::Map<const Eigen::VectorXf>(
      impl_->mappings[(*t)->index].data(),
      static_cast<Eigen::Index>((*t)->num_floats));
}

Result<Eigen::Map<const ModelView::RowMatrix>> ModelView::Matrix(
    std::string_view name) const {
  auto t = impl_->Find(name);
  if (!t.ok()) return t.status();
  const auto rows = static_cast<Eigen::Index>((*t)->shape[0]);
  const auto cols = static_cast<Eigen::Index>((*t)->num_floats) / rows;
  return Eigen::Map<const RowMatrix>(impl_->mappings[(*t)->index].data(), rows,
                                     cols);
}

Status ModelView::Copy(std::string_view name, float* out, size_t count,
                       std::chrono::milliseconds timeout) const {
  auto found = impl_->Find(name);
  if (!found.ok()) return found.status();
  const TensorLayout& t = **found;
  if (count != t.num_floats)
    return Status(Code::kSizeMismatch, "tensor '" + t.name + "' has " +
                                           std::to_string(t.num_floats) +
                                           " floats, buffer has " +
                                           std::to_string(count));
  const ModelLayout& layout = *impl_->layout;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (uint32_t b = 0; b < t.num_blocks; ++b) {
    const Segment& seg = *impl_->segments[layout.OwnerOf(t, b)];
    const auto local = static_cast<uint32_t>(seg.LocalBlock(t.index, b));
    const size_t start = layout.BlockStart(b);
    const size_t bytes = layout.BlockLength(t, b) * sizeof(float);
    uint64_t version;
    // The writer is another process we cannot wait on: retry until the copy
    // is clean or the caller's patience runs out.
    Status read = ReadConsistent(seg.version(local), seg.block_data(local),
                                 out + start, bytes, deadline, &version);
    if (!read.ok())
      return read.WithContext("block " + std::to_string(b) + " of '" + t.name +
                              "' in " + seg.path());
  }
  return Status::Ok();
}

Result<Eigen::Map<const Eigen::VectorXf>> ModelView::Row(std::string_view table,
                                                         uint64_t id) const {
  const auto shards = static_cast<uint32_t>(impl_->segments.size());
  const Segment& seg = *impl_->segments[JumpHash(id, shards)];
  const int64_t t = seg.FindTable(table);
  if (t < 0)
    return Status(Code::kNotFound, "unknown table '" + std::string(table) +
                                       "' in model '" + seg.header().model +
                                       "'");
  const auto index = static_cast<uint32_t>(t);
  const TableEntry& entry = seg.table(index);
  const TableIndex rows(entry, seg.row_index(index), seg.table_counters(index));
  auto slot = rows.Find(id);
  if (!slot.ok()) return slot.status().WithContext(seg.path());
  if (*slot == nullptr)
    return Status(Code::kNotFound,
                  "table '" + std::string(table) + "' has no row " +
                      std::to_string(id) +
                      " yet: nobody pushed or pulled it, so it holds no "
                      "memory to view; its value is the table's init "
                      "(FillInitialRow with the servers' spec), which "
                      "PullRows returns and creates");
  // Acquire, as TableIndex::Find's own load: pairs with the release that
  // published the slot (see RowSlot in segment_format.h).
  const uint32_t row =
      (*slot)->row_plus_one.load(std::memory_order_acquire) - 1;
  return Eigen::Map<const Eigen::VectorXf>(
      seg.table_rows(index) + uint64_t{row} * entry.dim,
      static_cast<Eigen::Index>(entry.dim));
}

Result<uint64_t> ModelView::Updates(std::string_view name) const {
  auto found = impl_->Find(name);
  if (!found.ok()) return found.status();
  const TensorLayout& t = **found;
  uint64_t total = 0;
  for (uint32_t b = 0; b < t.num_blocks; ++b) {
    const Segment& seg = *impl_->segments[impl_->layout->OwnerOf(t, b)];
    const auto local = static_cast<uint32_t>(seg.LocalBlock(t.index, b));
    // Acquire, as every seqlock reader loads a version (seqlock.h); for a
    // count on its own relaxed would do.
    total += seg.version(local).seq.load(std::memory_order_acquire) / 2;
  }
  return total;
}

}  // namespace shardps
