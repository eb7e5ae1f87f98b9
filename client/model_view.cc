#include "shardps/model_view.h"

#include <algorithm>
#include <utility>

#include "client/client_impl.h"
#include "common/futex.h"
#include "common/hex.h"
#include "common/mapping.h"
#include "common/replica_state.h"
#include "common/segment.h"
#include "common/seqlock.h"
#include "common/table_index.h"

namespace shardps {

class ModelView::Impl {
 public:
  std::vector<std::unique_ptr<Segment>> segments;  // indexed by shard
  // Indexed by shard: the replica's state of a shard read through its copy
  // (segments[i] is then the copy); nullptr for a shard's own segment.
  std::vector<std::unique_ptr<ReplicaState>> fresh;
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
  return Finish(std::move(impl));
}

Result<std::unique_ptr<ModelView>> ModelView::Finish(
    std::unique_ptr<Impl> impl) {
  impl->fresh.resize(impl->segments.size());
  impl->layout = std::make_unique<ModelLayout>(impl->segments[0]->Layout());
  SHARDPS_RETURN_IF_ERROR(impl->MapTensors());
  return std::unique_ptr<ModelView>(new ModelView(std::move(impl)));
}

namespace {

// Shard `shard`'s own segment at `path`, which Connect found on this host
// as the segment with identity `served`, if it still is.
Result<std::unique_ptr<Segment>> OpenLocal(const std::string& path,
                                           const SegmentId& served,
                                           uint32_t shard, uint64_t spec_hash) {
  auto seg = Segment::OpenReadOnly(path);
  if (!seg.ok())
    return seg.status().WithContext("shard " + std::to_string(shard) +
                                    "'s segment");
  if ((*seg)->identity() != served || (*seg)->header().spec_hash != spec_hash)
    return Status(Code::kUnavailable,
                  path + " is no longer the segment shard " +
                      std::to_string(shard) +
                      " served when the client connected (recreated since?): "
                      "reconnect the client");
  return seg;
}

// How a missing copy is reported: the shard, the path, what to run.
Status NoCopy(uint32_t shard, uint32_t shards, const std::string& storage,
              const std::string& path) {
  if (storage.empty())
    return Status::NotFound(
        "shard " + std::to_string(shard) + " of " + std::to_string(shards) +
        " is not on this host (no segment of it opens here) and "
        "ClientOptions::replica_storage is empty: run `shardps replica "
        "--cluster C --spec S --storage DIR` on this host and set "
        "replica_storage to its DIR");
  return Status::NotFound(
      "shard " + std::to_string(shard) + " of " + std::to_string(shards) +
      " is not on this host and has no host replica copy at " + path +
      ": run `shardps replica --cluster C --spec S --storage " + storage +
      "` on this host, or set ClientOptions::replica_storage to the "
      "directory its replica uses");
}

// Checks that a replica copy (segment and state) is shard `shard` of
// `shards` of the spec with hash `spec_hash`.
Status CheckCopy(const Segment& seg, const ReplicaState& state, uint32_t shard,
                 uint32_t shards, uint64_t spec_hash) {
  const SegmentHeader& h = seg.header();
  if (h.spec_hash != spec_hash || h.shard_index != shard ||
      h.shard_count != shards)
    return Status::SpecMismatch(
        seg.path() + " is a copy of shard " + std::to_string(h.shard_index) +
        " of " + std::to_string(h.shard_count) + " spec " + Hex(h.spec_hash) +
        ", the cluster serves shard " + std::to_string(shard) + " of " +
        std::to_string(shards) + " spec " + Hex(spec_hash) +
        ": the replica under that directory serves another model version");
  const ReplicaStateHeader& f = state.header();
  if (f.spec_hash != spec_hash || f.shard_index != shard ||
      f.shard_count != shards)
    return Status::SpecMismatch(state.path() + " describes spec " +
                                Hex(f.spec_hash) + " shard " +
                                std::to_string(f.shard_index) +
                                ", the cluster serves spec " + Hex(spec_hash));
  if (state.num_blocks() != seg.num_blocks())
    return Status::Corrupt(state.path() + " has " +
                           std::to_string(state.num_blocks()) +
                           " blocks, its copy " + seg.path() + " has " +
                           std::to_string(seg.num_blocks()));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ModelView>> ModelView::Open(const Client& client) {
  const Client::Impl& c = *client.impl_;
  const std::string& storage = c.io_->options().replica_storage;
  const std::string& model = client.model();
  const uint64_t hash = client.spec_hash();
  const auto shards = static_cast<uint32_t>(c.local_segments_.size());
  auto impl = std::make_unique<Impl>();
  impl->segments.resize(shards);
  impl->fresh.resize(shards);
  for (uint32_t i = 0; i < shards; ++i) {
    if (!c.local_segments_[i].empty()) {
      auto seg =
          OpenLocal(c.local_segments_[i], c.local_segment_ids_[i], i, hash);
      if (!seg.ok()) return seg.status();
      impl->segments[i] = std::move(seg).value();
      continue;
    }
    const std::string seg_path =
        storage.empty() ? "" : Segment::PathFor(storage, model, i, shards);
    auto seg = storage.empty() ? Result<std::unique_ptr<Segment>>(
                                     Status::NotFound("no replica storage"))
                               : Segment::OpenReadOnly(seg_path);
    if (!seg.ok() && seg.status().code() == Code::kNotFound)
      return NoCopy(i, shards, storage, seg_path);
    if (!seg.ok()) return seg.status();
    const std::string state_path =
        ReplicaState::PathFor(storage, model, i, shards);
    auto state = ReplicaState::OpenReadOnly(state_path);
    if (!state.ok() && state.status().code() == Code::kNotFound)
      return NoCopy(i, shards, storage, state_path);
    if (!state.ok()) return state.status();
    SHARDPS_RETURN_IF_ERROR(CheckCopy(**seg, **state, i, shards, hash));
    impl->segments[i] = std::move(seg).value();
    impl->fresh[i] = std::move(state).value();
  }
  return Finish(std::move(impl));
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
  const uint32_t owner = JumpHash(id, shards);
  if (impl_->fresh[owner])
    return Status(Code::kUnimplemented,
                  "row " + std::to_string(id) + " of table '" +
                      std::string(table) + "' is on shard " +
                      std::to_string(owner) +
                      ", read here through a host replica, which copies "
                      "dense tensors only: use Client::PullRows");
  const Segment& seg = *impl_->segments[owner];
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
    const uint32_t shard = impl_->layout->OwnerOf(t, b);
    const Segment& seg = *impl_->segments[shard];
    const auto local = static_cast<uint32_t>(seg.LocalBlock(t.index, b));
    // Acquire, as every seqlock reader loads a version (seqlock.h); for a
    // count on its own relaxed would do. A copy's own seqlock counts the
    // replica's writes, not the shard's updates: its state file has those.
    if (const ReplicaState* fresh = impl_->fresh[shard].get())
      total += fresh->block(local).held.load(std::memory_order_acquire);
    else
      total += seg.version(local).seq.load(std::memory_order_acquire) / 2;
  }
  return total;
}

Result<ModelView::TensorFreshness> ModelView::Freshness(
    std::string_view name) const {
  auto found = impl_->Find(name);
  if (!found.ok()) return found.status();
  const TensorLayout& t = **found;
  TensorFreshness out;
  out.blocks.reserve(t.num_blocks);
  const int64_t now = MonotonicNs();
  std::vector<int> running(impl_->segments.size(), -1);  // asked once a shard
  for (uint32_t b = 0; b < t.num_blocks; ++b) {
    BlockFreshness f;
    f.block = b;
    f.shard = impl_->layout->OwnerOf(t, b);
    const Segment& seg = *impl_->segments[f.shard];
    const auto local = static_cast<uint32_t>(seg.LocalBlock(t.index, b));
    const ReplicaState* fresh = impl_->fresh[f.shard].get();
    if (fresh == nullptr) {
      f.local = true;
      f.held = f.latest =
          seg.version(local).seq.load(std::memory_order_acquire) / 2;
    } else {
      // Acquire: pairs with the replica's release stores (each field is
      // read on its own; latest may be loaded after a newer held).
      const ::shardps::BlockFreshness& r = fresh->block(local);
      f.held = r.held.load(std::memory_order_acquire);
      f.latest = std::max(f.held, r.latest.load(std::memory_order_acquire));
      const int64_t since = r.behind_since_ns.load(std::memory_order_acquire);
      if (f.held < f.latest && since > 0 && now > since)
        f.age = std::chrono::nanoseconds(now - since);
      if (running[f.shard] < 0) running[f.shard] = fresh->WriterAlive();
      f.replica_running = running[f.shard] == 1;
      out.replicas_running = out.replicas_running && f.replica_running;
    }
    if (f.held < f.latest) ++out.blocks_behind;
    out.most_versions_behind =
        std::max(out.most_versions_behind, f.latest - f.held);
    out.oldest_age = std::max(out.oldest_age, f.age);
    out.blocks.push_back(f);
  }
  return out;
}

}  // namespace shardps
