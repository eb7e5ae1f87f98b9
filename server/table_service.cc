#include "server/table_service.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/dedupe_window.h"
#include "common/half_float.h"
#include "common/optimizers.h"
#include "server/request_validator.h"

namespace shardps {

namespace {

Status Invalid(const std::string& message) {
  return Status(Code::kInvalidArgument, message);
}

uint64_t IdAt(const char* ids, uint64_t i) {
  uint64_t id;
  std::memcpy(&id, ids + i * sizeof(id), sizeof(id));  // may be unaligned
  return id;
}

uint64_t NextPowerOfTwo(uint64_t x) {
  uint64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

}  // namespace

TableService::TableService(Segment& segment, const ModelSpec& spec)
    : segment_(segment) {
  for (uint32_t i = 0; i < segment.num_tables(); ++i) {
    const TableEntry& entry = segment.table(i);
    // REQUIRES (the spec hash matched): the spec has this table.
    const TableSpec* table = spec.FindTable(entry.name);
    const OptimizerSpec& o = spec.OptimizerFor(*table);
    tables_.push_back(Table{
        &entry, table,
        TableIndex(entry, segment.row_index(i), segment.table_counters(i)),
        *ParseOptimizerKind(o.kind), ToOptimizerParams(o), i});
  }
}

Status TableService::Check(const wire::Request& req,
                           const std::vector<zmq::message_t>& frames,
                           size_t want_frames, Table** table, uint64_t* n) {
  const char* op = req.op() == wire::Op::PushRows ? "PushRows" : "PullRows";
  if (req.tensor() == nullptr)
    return Invalid(std::string(op) + " names no table");
  *table = nullptr;
  for (Table& t : tables_)
    if (req.tensor()->string_view() == t.entry->name) *table = &t;
  if (*table == nullptr)
    return Status(Code::kNotFound,
                  "unknown table '" + req.tensor()->str() + "'");
  if (frames.size() != want_frames)
    return Invalid(std::string(op) + " of '" + req.tensor()->str() +
                   "' needs " + std::to_string(want_frames - 2) +
                   " payload frame(s), got " +
                   std::to_string(frames.size() - 2));
  const size_t id_bytes = frames[2].size();
  if (id_bytes % sizeof(uint64_t) != 0 || id_bytes == 0)
    return Status(Code::kSizeMismatch,
                  std::string(op) + ": ids frame of " +
                      std::to_string(id_bytes) +
                      " bytes is not a non-empty list of uint64");
  *n = id_bytes / sizeof(uint64_t);
  if (*n > kMaxRowsPerRequest)
    return Invalid(std::string(op) + ": " + std::to_string(*n) +
                   " ids, more than " + std::to_string(kMaxRowsPerRequest));
  return Status::Ok();
}

Status TableService::LookUpRows(Table& table, const zmq::message_t& ids,
                                uint64_t n) {
  const SegmentHeader& h = segment_.header();
  const char* bytes = static_cast<const char*>(ids.data());
  slots_.resize(n);
  missing_.clear();
  // Lookups run kPrefetchAhead ids behind their slots' prefetches.
  constexpr uint64_t kPrefetchAhead = 8;
  for (uint64_t i = 0; i < std::min(n, kPrefetchAhead); ++i)
    table.index.Prefetch(IdAt(bytes, i));
  for (uint64_t i = 0; i < n; ++i) {
    if (i + kPrefetchAhead < n)
      table.index.Prefetch(IdAt(bytes, i + kPrefetchAhead));
    const uint64_t id = IdAt(bytes, i);
    const uint32_t owner = JumpHash(id, h.shard_count);
    if (owner != h.shard_index)
      return Invalid("id " + std::to_string(id) + " of table '" +
                     table.entry->name + "' belongs to shard " +
                     std::to_string(owner) + ", not " +
                     std::to_string(h.shard_index));
    auto slot = table.index.FindToUpdate(id);
    if (!slot.ok()) return slot.status();
    slots_[i] = *slot;
    if (*slot == nullptr) missing_.push_back(id);
  }
  if (missing_.empty()) return Status::Ok();
  // A new id named several times needs one row.
  std::sort(missing_.begin(), missing_.end());
  const uint64_t new_rows = static_cast<uint64_t>(
      std::unique(missing_.begin(), missing_.end()) - missing_.begin());
  return table.index.CheckRoom(new_rows);
}

Status TableService::CreateRows(Table& table, const zmq::message_t& ids,
                                uint64_t n) {
  if (missing_.empty()) return Status::Ok();
  const char* bytes = static_cast<const char*>(ids.data());
  const uint64_t dim = table.entry->dim;
  for (uint64_t i = 0; i < n; ++i) {
    if (slots_[i] != nullptr) continue;
    const uint64_t id = IdAt(bytes, i);
    // Room was checked for every new row, so only a damaged index fails.
    auto slot = table.index.FindOrInsert(id, [&](uint32_t row) {
      float* w = Row(table, row);
      FillInitialRow(*table.spec, id, w);
      float* state[kMaxStateSlots] = {};
      for (uint32_t k = 0; k < table.entry->state_slots; ++k)
        state[k] = segment_.table_state(table.segment_index, k) + row * dim;
      InitState(table.kind, table.params, state, dim);
    });
    if (!slot.ok()) return slot.status();
    slots_[i] = *slot;
  }
  return Status::Ok();
}

float* TableService::Row(const Table& table, uint32_t row) const {
  return segment_.table_rows(table.segment_index) +
         uint64_t{row} * table.entry->dim;
}

// Every row_plus_one load in this file is relaxed: the frontend thread is
// the only writer of the row index (see Thread-safety in the header), and a
// thread sees its own stores in order. The release/acquire pair described
// in segment_format.h is for readers on other threads and processes.
void TableService::ApplyRow(Table& table, RowSlot& slot, const float* grad) {
  const uint32_t row = slot.row_plus_one.load(std::memory_order_relaxed) - 1;
  const uint64_t dim = table.entry->dim;
  float* state[kMaxStateSlots] = {};
  for (uint32_t k = 0; k < table.entry->state_slots; ++k)
    state[k] = segment_.table_state(table.segment_index, k) + row * dim;
  // Each row counts its own steps: Adam's bias correction is per row.
  ++slot.updates;
  ApplyUpdate(table.kind, table.params, slot.updates, Row(table, row), grad,
              state, dim);
}

const float* TableService::Float32Grads(wire::DType dtype,
                                        const zmq::message_t& frame,
                                        uint64_t floats) {
  const float* grads = static_cast<const float*>(frame.data());
  if (dtype != wire::DType::F32) {
    widened_.resize(floats);
    if (dtype == wire::DType::F16) {
      WidenF16(frame.data(), widened_.data(), floats);
    } else {
      WidenBf16(frame.data(), widened_.data(), floats);
    }
    grads = widened_.data();
  } else if (reinterpret_cast<uintptr_t>(grads) % alignof(float) != 0) {
    // ZeroMQ may hand small frames out of its receive buffer at any offset;
    // the row kernels read floats one by one, so they get an aligned copy.
    widened_.resize(floats);
    std::memcpy(widened_.data(), frame.data(), frame.size());
    grads = widened_.data();
  }
  return grads;
}

void TableService::FoldDuplicates(uint64_t n, uint64_t dim,
                                  const float* grads) {
  // Group duplicates: an open-addressing set of rows, each remembering the
  // first position it appeared at. A repeat folds its gradient into a sum
  // owned by that first position.
  const uint64_t set_size = NextPowerOfTwo(2 * n);
  const uint64_t mask = set_size - 1;
  seen_.assign(set_size, 0);
  leader_.resize(set_size);
  sum_of_.assign(n, -1);
  summed_.clear();
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t key =
        slots_[i]->row_plus_one.load(std::memory_order_relaxed);
    uint64_t h = (key * 0x9e3779b97f4a7c15ULL) >> 20 & mask;
    while (seen_[h] != 0 && seen_[h] != key) h = (h + 1) & mask;
    if (seen_[h] == 0) {
      seen_[h] = key;
      leader_[h] = static_cast<uint32_t>(i);
      continue;
    }
    const uint32_t first = leader_[h];
    if (sum_of_[first] < 0) {
      sum_of_[first] = static_cast<int32_t>(summed_.size() / dim);
      summed_.insert(summed_.end(), grads + first * dim,
                     grads + (first + 1) * dim);
    }
    float* sum = summed_.data() + uint64_t(sum_of_[first]) * dim;
    const float* g = grads + i * dim;
    for (uint64_t j = 0; j < dim; ++j) sum[j] += g[j];
    slots_[i] = nullptr;  // folded into `first`
  }
}

Status TableService::PushRows(const wire::Request& req,
                              const std::vector<zmq::message_t>& frames,
                              const Once* once, bool* duplicate) {
  if (duplicate != nullptr) *duplicate = false;
  Table* table = nullptr;
  uint64_t n = 0;
  SHARDPS_RETURN_IF_ERROR(Check(req, frames, 4, &table, &n));
  if (req.dtype() > wire::DType::MAX)
    return Invalid("unknown dtype " +
                   std::to_string(static_cast<int>(req.dtype())));
  const uint64_t dim = table->entry->dim;
  const uint64_t want = n * dim * GradientElementBytes(req.dtype());
  if (frames[3].size() != want)
    return Status(Code::kSizeMismatch,
                  "PushRows of '" + req.tensor()->str() +
                      "': " + std::to_string(n) + " ids of dim " +
                      std::to_string(dim) + " need " + std::to_string(want) +
                      " gradient bytes, got " +
                      std::to_string(frames[3].size()));
  DedupeWindow* window =
      once != nullptr ? &segment_.client_slot(once->slot).rows : nullptr;
  if (window != nullptr && DedupeSeen(*window, once->client, once->seq)) {
    // Applied before (its reply was lost, or the server restarted after
    // applying it): answered OK, applied once.
    if (duplicate != nullptr) *duplicate = true;
    return Status::Ok();
  }
  SHARDPS_RETURN_IF_ERROR(LookUpRows(*table, frames[2], n));
  SHARDPS_RETURN_IF_ERROR(CreateRows(*table, frames[2], n));

  const float* grads = Float32Grads(req.dtype(), frames[3], n * dim);
  FoldDuplicates(n, dim, grads);
  // slots_ now names each distinct row once: save them before the first
  // changes, so a crash from here on is undone whole at the next start.
  if (window != nullptr)
    SHARDPS_RETURN_IF_ERROR(
        once->journal->Begin(table->segment_index, once->slot, slots_));
  for (uint64_t i = 0; i < n; ++i) {
    if (i + 4 < n && slots_[i + 4] != nullptr)
      __builtin_prefetch(
          Row(*table,
              slots_[i + 4]->row_plus_one.load(std::memory_order_relaxed) - 1));
    if (slots_[i] == nullptr) continue;
    const float* g = sum_of_[i] < 0
                         ? grads + i * dim
                         : summed_.data() + uint64_t(sum_of_[i]) * dim;
    ApplyRow(*table, *slots_[i], g);
  }
  if (window != nullptr) {
    DedupeRecord(*window, once->client, once->seq);
    once->journal->Close();
  }
  return Status::Ok();
}

Status TableService::PullRows(const wire::Request& req,
                              const std::vector<zmq::message_t>& frames,
                              const ReplyAllocator& allocate,
                              zmq::message_t* out) {
  Table* table = nullptr;
  uint64_t n = 0;
  SHARDPS_RETURN_IF_ERROR(Check(req, frames, 3, &table, &n));
  SHARDPS_RETURN_IF_ERROR(LookUpRows(*table, frames[2], n));
  const uint64_t dim = table->entry->dim;
  SHARDPS_RETURN_IF_ERROR(allocate(n * dim * sizeof(float), out));
  SHARDPS_RETURN_IF_ERROR(CreateRows(*table, frames[2], n));
  auto* rows = static_cast<float*>(out->data());
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t row =
        slots_[i]->row_plus_one.load(std::memory_order_relaxed) - 1;
    std::memcpy(rows + i * dim, Row(*table, row), dim * sizeof(float));
  }
  return Status::Ok();
}

}  // namespace shardps
