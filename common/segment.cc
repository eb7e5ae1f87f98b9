#include "common/segment.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "common/checksum.h"
#include "common/hex.h"
#include "common/optimizer_config.h"
#include "common/spec_diff.h"

namespace shardps {

namespace {

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

// Everything a segment for (spec, shard, shards) must contain, computed from
// the spec alone. Creation writes it; reopening compares against it.
struct Plan {
  // Immutable part filled in; atomics zero. Heap-allocated because the
  // atomics make SegmentHeader non-copyable and Plan is returned by value.
  std::unique_ptr<SegmentHeader> header = std::make_unique<SegmentHeader>();
  std::vector<TensorEntry> tensors;
  std::vector<BlockEntry> blocks;
  std::vector<TableEntry> tables;
};

uint64_t NextPowerOfTwo(uint64_t x) {
  uint64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

// Copies `s` into a fixed NUL-padded field.
template <size_t N>
void CopyName(char (&dst)[N], const std::string& s) {
  std::memset(dst, 0, N);
  std::memcpy(dst, s.data(), std::min(s.size(), N - 1));
}

// The directory entries of every tensor and of the blocks this shard owns
// (offsets come with the data region, in PlaceData).
void PlanTensors(const ModelSpec& spec, const ModelLayout& layout,
                 uint32_t shard, Plan& plan) {
  for (const TensorLayout& t : layout.tensors()) {
    TensorEntry e{};
    CopyName(e.name, t.name);
    e.rank = static_cast<uint32_t>(t.shape.size());
    e.num_blocks = t.num_blocks;
    for (size_t d = 0; d < t.shape.size(); ++d) e.shape[d] = t.shape[d];
    e.num_floats = t.num_floats;
    e.first_global_block = t.first_global_block;
    e.first_local = static_cast<uint32_t>(plan.blocks.size());
    const std::string& kind = spec.OptimizerFor(spec.tensors[t.index]).kind;
    CopyName(e.optimizer, kind);
    // REQUIRES (validated spec): the kind parses.
    e.state_slots =
        static_cast<uint32_t>(StateSlots(*ParseOptimizerKind(kind)));
    e.accum_slots =
        spec.consistency.mode == ConsistencySpec::Mode::kBsp ? 1 : 0;
    for (uint32_t b : layout.BlocksOnShard(t, shard)) {
      BlockEntry be{};
      be.tensor = t.index;
      be.block = b;
      be.num_floats = layout.BlockLength(t, b);
      be.data_bytes = RoundUp(be.num_floats * sizeof(float), kPageBytes);
      plan.blocks.push_back(be);
    }
    e.local_blocks = static_cast<uint32_t>(plan.blocks.size()) - e.first_local;
    plan.tensors.push_back(e);
  }
}

// The directory entries of every table (offsets come with PlaceData).
void PlanTables(const ModelSpec& spec, uint32_t shards, Plan& plan) {
  for (const TableSpec& t : spec.tables) {
    TableEntry e{};
    CopyName(e.name, t.name);
    const std::string& kind = spec.OptimizerFor(t).kind;
    CopyName(e.optimizer, kind);
    e.dim = t.dim;
    e.capacity = t.RowsPerShard(shards);
    // Load factor <= 1/2 keeps linear probes short even when full.
    e.index_slots = NextPowerOfTwo(std::max<uint64_t>(2 * e.capacity, 16));
    e.rows_bytes = RoundUp(e.capacity * e.dim * sizeof(float), kPageBytes);
    e.state_slots =
        static_cast<uint32_t>(StateSlots(*ParseOptimizerKind(kind)));
    plan.tables.push_back(e);
  }
}

// The header: identity of the model and shard, and where the directory,
// versions, table counters, client slots and dedupe windows lie.
void PlanHeader(const ModelSpec& spec, uint32_t shard, uint32_t shards,
                Plan& plan) {
  SegmentHeader& h = *plan.header;
  std::memcpy(h.magic, kSegmentMagic, sizeof(h.magic));
  h.format_version = kSegmentFormatVersion;
  h.header_bytes = kHeaderBytes;
  CopyName(h.model, spec.name);
  CopyName(h.optimizer, spec.optimizer.kind);
  h.spec_hash = SpecHash(spec);
  h.shard_index = shard;
  h.shard_count = shards;
  h.block_floats = spec.block_floats;
  h.num_tensors = static_cast<uint32_t>(plan.tensors.size());
  h.num_blocks = static_cast<uint32_t>(plan.blocks.size());
  h.num_tables = static_cast<uint32_t>(plan.tables.size());
  h.directory_offset = kHeaderBytes;
  h.directory_bytes = plan.tensors.size() * sizeof(TensorEntry) +
                      plan.blocks.size() * sizeof(BlockEntry) +
                      plan.tables.size() * sizeof(TableEntry);
  h.versions_offset = RoundUp(h.directory_offset + h.directory_bytes, 64);
  h.table_counters_offset =
      h.versions_offset + plan.blocks.size() * sizeof(BlockVersion);
  h.dedupe_slots = kDedupeSlots;
  h.clients_offset =
      h.table_counters_offset + plan.tables.size() * sizeof(TableCounters);
  h.dedupe_offset =
      RoundUp(h.clients_offset + kDedupeSlots * sizeof(ClientSlot), kPageBytes);
}

// The data region after the header's regions: each block's and table's
// offset, and the file's size.
void PlaceData(Plan& plan) {
  SegmentHeader& h = *plan.header;
  const uint64_t versions_end = h.dedupe_offset + plan.blocks.size() *
                                                      uint64_t{kDedupeSlots} *
                                                      sizeof(DedupeWindow);
  // Each block's footprint: its weights, its optimizer state slots, then
  // its accumulator.
  auto footprint = [&](const BlockEntry& b) {
    const TensorEntry& t = plan.tensors[b.tensor];
    return b.data_bytes * (1 + t.state_slots + t.accum_slots);
  };
  auto table_footprint = [](const TableEntry& t) {
    return RoundUp(t.index_slots * sizeof(RowSlot), kPageBytes) +
           t.rows_bytes * (1 + t.state_slots);
  };
  uint64_t data_bytes = 0;
  for (const BlockEntry& b : plan.blocks) data_bytes += footprint(b);
  for (const TableEntry& t : plan.tables) data_bytes += table_footprint(t);
  const uint64_t align =
      data_bytes >= kHugeAlignThreshold ? kHugePageBytes : kPageBytes;
  h.data_offset = RoundUp(versions_end, align);
  h.data_bytes = data_bytes;
  h.file_bytes = h.data_offset + data_bytes;
  uint64_t offset = h.data_offset;
  for (BlockEntry& b : plan.blocks) {
    b.data_offset = offset;
    b.state_offset = offset + b.data_bytes;
    offset += footprint(b);
  }
  for (TableEntry& t : plan.tables) {
    t.index_offset = offset;
    t.rows_offset =
        offset + RoundUp(t.index_slots * sizeof(RowSlot), kPageBytes);
    offset += table_footprint(t);
  }
}

Plan MakePlan(const ModelSpec& spec, uint32_t shard, uint32_t shards) {
  const ModelLayout layout(spec, shards);
  Plan plan;
  PlanTensors(spec, layout, shard, plan);
  PlanTables(spec, shards, plan);
  PlanHeader(spec, shard, shards, plan);
  PlaceData(plan);
  return plan;
}

// The directory is contiguous: tensors, blocks, tables.
uint32_t DirectoryCrc(const void* directory, uint64_t bytes) {
  return Crc32c(directory, bytes);
}

uint32_t HeaderCrc(const SegmentHeader& h) {
  return Crc32c(&h, offsetof(SegmentHeader, header_crc));
}

bool NameTerminated(const char* name, size_t n) {
  return std::memchr(name, 0, n) != nullptr;
}

Status ValidateHeader(const SegmentHeader& h, size_t size) {
  if (std::memcmp(h.magic, kSegmentMagic, sizeof(h.magic)) != 0)
    return Status::Corrupt("not a shardps segment (bad magic)");
  if (h.format_version != kSegmentFormatVersion)
    return Status::Corrupt("unsupported segment format version " +
                           std::to_string(h.format_version) +
                           " (this build reads " +
                           std::to_string(kSegmentFormatVersion) + ")");
  if (h.header_crc != HeaderCrc(h))
    return Status::Corrupt("header checksum mismatch");
  if (h.header_bytes != kHeaderBytes || !NameTerminated(h.model, kNameBytes) ||
      !NameTerminated(h.optimizer, sizeof(h.optimizer)))
    return Status::Corrupt("malformed header");
  if (h.file_bytes != size)
    return Status::Corrupt("file is " + std::to_string(size) +
                           " bytes, header says " +
                           std::to_string(h.file_bytes) + " (truncated?)");
  if (h.shard_count == 0 || h.shard_index >= h.shard_count ||
      h.block_floats == 0)
    return Status::Corrupt("malformed header (shard or block size)");
  const uint64_t dir_need = uint64_t{h.num_tensors} * sizeof(TensorEntry) +
                            uint64_t{h.num_blocks} * sizeof(BlockEntry) +
                            uint64_t{h.num_tables} * sizeof(TableEntry);
  if (h.directory_offset != kHeaderBytes || h.directory_bytes != dir_need ||
      h.versions_offset < h.directory_offset + h.directory_bytes ||
      h.versions_offset % 64 != 0 ||
      // Subtract rather than add: a crafted offset must not wrap around.
      h.versions_offset > h.data_offset ||
      (h.data_offset - h.versions_offset) / sizeof(BlockVersion) <
          h.num_blocks ||
      h.table_counters_offset % 64 != 0 ||
      h.table_counters_offset < h.versions_offset ||
      (h.table_counters_offset - h.versions_offset) / sizeof(BlockVersion) <
          h.num_blocks ||
      h.table_counters_offset > h.data_offset ||
      (h.data_offset - h.table_counters_offset) / sizeof(TableCounters) <
          h.num_tables ||
      h.dedupe_slots == 0 || h.dedupe_slots > 4096 ||
      h.clients_offset % 64 != 0 ||
      h.clients_offset < h.table_counters_offset ||
      (h.clients_offset - h.table_counters_offset) / sizeof(TableCounters) <
          h.num_tables ||
      h.clients_offset > h.data_offset ||
      (h.data_offset - h.clients_offset) / sizeof(ClientSlot) <
          h.dedupe_slots ||
      h.dedupe_offset % kPageBytes != 0 || h.dedupe_offset < h.clients_offset ||
      (h.dedupe_offset - h.clients_offset) / sizeof(ClientSlot) <
          h.dedupe_slots ||
      h.dedupe_offset > h.data_offset ||
      (h.data_offset - h.dedupe_offset) / sizeof(DedupeWindow) /
              h.dedupe_slots <
          h.num_blocks ||
      h.data_offset % kPageBytes != 0 || h.data_offset > h.file_bytes ||
      h.data_bytes != h.file_bytes - h.data_offset)
    return Status::Corrupt("malformed header (region offsets)");
  return Status::Ok();
}

Status ValidateTables(const SegmentHeader& h, const TableEntry* tables) {
  for (uint32_t i = 0; i < h.num_tables; ++i) {
    const TableEntry& t = tables[i];
    // Each bound is checked before it is used in the next, and by
    // subtraction or division, so crafted values cannot wrap around.
    const bool ok =
        NameTerminated(t.name, kNameBytes) &&
        NameTerminated(t.optimizer, sizeof(t.optimizer)) &&
        t.state_slots <= kMaxStateSlots && t.dim >= 1 &&
        t.dim <= kMaxTableDim && t.capacity <= kMaxTableRowsPerShard &&
        t.index_slots >= t.capacity && t.index_slots <= (1ull << 33) &&
        (t.index_slots & (t.index_slots - 1)) == 0 &&
        t.index_offset % kPageBytes == 0 && t.index_offset >= h.data_offset &&
        t.index_offset <= h.file_bytes &&
        t.index_slots * sizeof(RowSlot) <= h.file_bytes - t.index_offset &&
        t.rows_offset % kPageBytes == 0 && t.rows_offset >= h.data_offset &&
        t.rows_offset <= h.file_bytes &&
        t.capacity <= t.rows_bytes / sizeof(float) / t.dim &&
        t.rows_bytes <= h.file_bytes &&
        t.rows_bytes * (1 + t.state_slots) <= h.file_bytes - t.rows_offset;
    if (!ok)
      return Status::Corrupt("malformed table entry " + std::to_string(i));
  }
  return Status::Ok();
}

Status ValidateDirectory(const SegmentHeader& h, const TensorEntry* tensors,
                         const BlockEntry* blocks, const TableEntry* tables) {
  if (h.directory_crc != DirectoryCrc(tensors, h.directory_bytes))
    return Status::Corrupt("directory checksum mismatch");
  SHARDPS_RETURN_IF_ERROR(ValidateTables(h, tables));
  for (uint32_t i = 0; i < h.num_tensors; ++i) {
    const TensorEntry& t = tensors[i];
    if (!NameTerminated(t.name, kNameBytes) ||
        !NameTerminated(t.optimizer, sizeof(t.optimizer)) ||
        t.state_slots > kMaxStateSlots || t.accum_slots > 1 || t.rank == 0 ||
        t.rank > 8 || uint64_t{t.first_local} + t.local_blocks > h.num_blocks)
      return Status::Corrupt("malformed tensor entry " + std::to_string(i));
  }
  for (uint32_t i = 0; i < h.num_blocks; ++i) {
    const BlockEntry& b = blocks[i];
    if (b.tensor >= h.num_tensors || b.num_floats > h.block_floats ||
        b.data_offset % kPageBytes != 0 || b.data_offset < h.data_offset ||
        // Divide and subtract rather than multiply and add, so crafted
        // values cannot wrap around and pass.
        b.num_floats > b.data_bytes / sizeof(float) ||
        // Exactly the pages the floats need: ModelView maps data_bytes into
        // a fixed-size slot per block, so more would spill into the next.
        b.data_bytes != RoundUp(b.num_floats * sizeof(float), kPageBytes) ||
        b.data_offset > h.file_bytes ||
        b.data_bytes > h.file_bytes - b.data_offset ||
        b.block >= tensors[b.tensor].num_blocks ||
        b.state_offset != b.data_offset + b.data_bytes ||
        // state_slots <= 4, accum_slots <= 1 and data_bytes <= file_bytes:
        // no overflow here.
        b.data_bytes * (tensors[b.tensor].state_slots +
                        tensors[b.tensor].accum_slots) >
            h.file_bytes - b.state_offset)
      return Status::Corrupt("malformed block entry " + std::to_string(i));
  }
  return Status::Ok();
}

Status EnsureDirectory(const std::string& dir) {
  // mkdir -p with mode 0700: segments hold the model, other users get nothing.
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      return ErrnoStatus("mkdir " + partial, errno);
  }
  return Status::Ok();
}

// Reads the owner pid for a "busy" message without mapping the file.
// Relaxed: `h` is our own copy, and the pid is only shown.
int32_t OwnerPidOf(int fd) {
  SegmentHeader h;
  if (::pread(fd, &h, sizeof(h), 0) != static_cast<ssize_t>(sizeof(h)))
    return 0;
  return h.owner_pid.load(std::memory_order_relaxed);
}

Status LockExclusive(int fd, const std::string& path) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return Status::Ok();
  if (errno == EWOULDBLOCK) {
    const int32_t pid = OwnerPidOf(fd);
    return Status(Code::kBusy,
                  "segment " + path + " is in use by another server" +
                      (pid > 0 ? " (pid " + std::to_string(pid) + ")" : ""));
  }
  return ErrnoStatus("flock " + path, errno);
}

}  // namespace

std::string Segment::PathFor(const std::string& storage,
                             const std::string& model, uint32_t shard,
                             uint32_t shards) {
  return storage + "/" + model + "/shard-" + std::to_string(shard) + "-of-" +
         std::to_string(shards) + ".seg";
}

Segment::Segment(std::string path, UniqueFd fd, Mapping map, bool writable)
    : path_(std::move(path)),
      fd_(std::move(fd)),
      map_(std::move(map)),
      writable_(writable) {
  header_ = reinterpret_cast<SegmentHeader*>(base());
  tensors_ =
      reinterpret_cast<const TensorEntry*>(base() + header_->directory_offset);
  blocks_ =
      reinterpret_cast<const BlockEntry*>(tensors_ + header_->num_tensors);
  tables_ = reinterpret_cast<const TableEntry*>(blocks_ + header_->num_blocks);
  versions_ =
      reinterpret_cast<BlockVersion*>(base() + header_->versions_offset);
  table_counters_ =
      reinterpret_cast<TableCounters*>(base() + header_->table_counters_offset);
  client_slots_ =
      reinterpret_cast<ClientSlot*>(base() + header_->clients_offset);
  dedupe_windows_ =
      reinterpret_cast<DedupeWindow*>(base() + header_->dedupe_offset);
}

Segment::~Segment() {
  // Relaxed: owner_pid is only shown (inspect, "busy" messages); it
  // publishes nothing.
  if (claimed_) header_->owner_pid.store(0, std::memory_order_relaxed);
}

Status ValidateSegmentImage(const char* data, size_t size) {
  if (size < kHeaderBytes)
    return Status::Corrupt("file too small for a segment header");
  const auto& h = *reinterpret_cast<const SegmentHeader*>(data);
  SHARDPS_RETURN_IF_ERROR(ValidateHeader(h, size));
  const char* dir = data + h.directory_offset;
  const auto* tensors = reinterpret_cast<const TensorEntry*>(dir);
  const auto* blocks = reinterpret_cast<const BlockEntry*>(
      dir + h.num_tensors * sizeof(TensorEntry));
  const auto* tables = reinterpret_cast<const TableEntry*>(
      dir + h.num_tensors * sizeof(TensorEntry) +
      h.num_blocks * sizeof(BlockEntry));
  return ValidateDirectory(h, tensors, blocks, tables);
}

namespace {

// Maps an open segment file after checking its size and image.
Result<Mapping> MapAndValidate(int fd, const std::string& path, bool writable,
                               bool populate) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus("stat " + path, errno);
  const auto size = static_cast<size_t>(st.st_size);
  if (size < kHeaderBytes)
    return Status(Code::kCorrupt, path + ": not a shardps segment (" +
                                      std::to_string(size) +
                                      " bytes, too small for a header)");
  auto map = Mapping::Map(fd, size, writable, populate);
  if (!map.ok()) return map.status().WithContext(path);
  Status valid = ValidateSegmentImage(map->data(), size);
  if (!valid.ok()) return valid.WithContext(path);
  return std::move(map).value();
}

// Fills every block with the spec's initial values and its optimizer state
// with the optimizer's starting state.
void InitialiseData(char* base, const Plan& plan, const ModelSpec& spec) {
  for (const BlockEntry& b : plan.blocks) {
    const TensorSpec& t = spec.tensors[b.tensor];
    FillInitialValues(t, uint64_t{b.block} * spec.block_floats,
                      reinterpret_cast<float*>(base + b.data_offset),
                      b.num_floats);
    const OptimizerSpec& o = spec.OptimizerFor(t);
    float* state[kMaxStateSlots] = {};
    for (uint32_t k = 0; k < plan.tensors[b.tensor].state_slots; ++k)
      state[k] =
          reinterpret_cast<float*>(base + b.state_offset + k * b.data_bytes);
    InitState(*ParseOptimizerKind(o.kind), ToOptimizerParams(o), state,
              b.num_floats);
  }
}

// The refusal of a segment made from another spec: what differs (the
// first few differences) and the ways out.
Status SpecMismatch(const Segment& seg, const ModelSpec& spec,
                    uint64_t want_hash) {
  const SegmentHeader& h = seg.header();
  const std::vector<std::string> diffs = SpecDifferences(seg, spec);
  const std::string what =
      diffs.empty() ? "a setting the spec hash covers differs (bsp or not, "
                      "in a model without tensors)"
                    : JoinDifferences(diffs, 5);
  return Status(Code::kSpecMismatch,
                seg.path() + " holds model '" + h.model + "' made from spec " +
                    Hex(h.spec_hash) + ", not from this spec of model '" +
                    spec.name + "' (" + Hex(want_hash) + "): " + what +
                    ". Refusing to touch it: serve the spec it was created "
                    "with, use another --storage for this spec, or `shardps "
                    "restore` a checkpoint of this spec into new storage");
}

Status CheckMatchesPlan(const Segment& seg, const Plan& plan,
                        const ModelSpec& spec) {
  const SegmentHeader& h = seg.header();
  const SegmentHeader& want = *plan.header;
  if (std::strcmp(h.model, want.model) != 0 || h.spec_hash != want.spec_hash)
    return SpecMismatch(seg, spec, want.spec_hash);
  if (h.shard_index != want.shard_index || h.shard_count != want.shard_count)
    return Status(Code::kSpecMismatch,
                  seg.path() + " belongs to shard " +
                      std::to_string(h.shard_index) + " of " +
                      std::to_string(h.shard_count) + ", not shard " +
                      std::to_string(want.shard_index) + " of " +
                      std::to_string(want.shard_count));
  // Same hash, so the directory must be byte-identical to what we would make.
  const bool same_dir =
      h.num_tensors == want.num_tensors && h.num_blocks == want.num_blocks &&
      h.num_tables == want.num_tables && h.file_bytes == want.file_bytes &&
      (plan.tensors.empty() ||
       std::memcmp(&seg.tensor(0), plan.tensors.data(),
                   plan.tensors.size() * sizeof(TensorEntry)) == 0) &&
      (plan.blocks.empty() ||
       std::memcmp(&seg.block(0), plan.blocks.data(),
                   plan.blocks.size() * sizeof(BlockEntry)) == 0) &&
      (plan.tables.empty() ||
       std::memcmp(&seg.table(0), plan.tables.data(),
                   plan.tables.size() * sizeof(TableEntry)) == 0);
  if (!same_dir)
    return Status(Code::kCorrupt,
                  seg.path() + ": directory does not match its spec hash");
  return Status::Ok();
}

// Writes a new segment's header, directory and initial data into `base`
// (the mapping of `tmp`, sized for the plan).
Status WriteNewImage(char* base, const Plan& plan, const ModelSpec& spec,
                     const std::string& tmp) {
  const SegmentHeader& want = *plan.header;
  std::memcpy(base, &want, offsetof(SegmentHeader, updates_applied));
  auto* h = reinterpret_cast<SegmentHeader*>(base);
  std::memcpy(base + want.directory_offset, plan.tensors.data(),
              plan.tensors.size() * sizeof(TensorEntry));
  // A shard may own no blocks (more shards than blocks); memcpy from the
  // empty vector's null data() would be undefined even for 0 bytes.
  if (!plan.blocks.empty())
    std::memcpy(base + want.directory_offset +
                    plan.tensors.size() * sizeof(TensorEntry),
                plan.blocks.data(), plan.blocks.size() * sizeof(BlockEntry));
  h->created_unix_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  auto identity = NewSegmentId();
  if (!identity.ok()) return identity.status().WithContext(tmp);
  h->identity = *identity;
  if (!plan.tables.empty())
    std::memcpy(base + want.directory_offset +
                    plan.tensors.size() * sizeof(TensorEntry) +
                    plan.blocks.size() * sizeof(BlockEntry),
                plan.tables.data(), plan.tables.size() * sizeof(TableEntry));
  h->directory_crc =
      DirectoryCrc(base + want.directory_offset, want.directory_bytes);
  h->header_crc = HeaderCrc(*h);
  // Relaxed: the file is not linked into place yet, and the update threads
  // that read lr start after this (thread creation orders it).
  h->lr.store(spec.optimizer.lr, std::memory_order_relaxed);
  InitialiseData(base, plan, spec);
  return Status::Ok();
}

// A new segment file, linked into place: its fd (holding the exclusive
// flock) and its mapping. Both empty when another server linked `path`
// first: the caller reopens theirs.
struct NewSegment {
  UniqueFd fd;
  Mapping map;
};

// Builds the new segment under a private name, then links it into place:
// link() fails if another server created `path` meanwhile, and the caller
// falls through to reopening theirs.
Result<NewSegment> CreateSegmentFile(const Plan& plan, const ModelSpec& spec,
                                     const std::string& path) {
  const std::string tmp = path + ".creating." + std::to_string(::getpid());
  UniqueFd tfd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!tfd.valid()) return ErrnoStatus("create " + tmp, errno);
  struct TmpGuard {
    const std::string& p;
    ~TmpGuard() { ::unlink(p.c_str()); }
  } guard{tmp};
  SHARDPS_RETURN_IF_ERROR(LockExclusive(tfd.get(), tmp));
  // A leftover from a creator that died with our pid (containers reuse
  // pids) is ours to overwrite: we hold its lock, so nobody else uses it.
  if (::ftruncate(tfd.get(), 0) != 0)
    return ErrnoStatus("truncate " + tmp, errno);
  const SegmentHeader& want = *plan.header;
  if (int err =
          ::posix_fallocate(tfd.get(), 0, static_cast<off_t>(want.file_bytes)))
    return ErrnoStatus(
        "allocate " + std::to_string(want.file_bytes) + " bytes for " + tmp,
        err);
  auto map = Mapping::Map(tfd.get(), want.file_bytes, true, true);
  if (!map.ok()) return map.status().WithContext(tmp);
  SHARDPS_RETURN_IF_ERROR(WriteNewImage(map->data(), plan, spec, tmp));
  if (::link(tmp.c_str(), path.c_str()) == 0)
    return NewSegment{std::move(tfd), std::move(map).value()};
  if (errno != EEXIST) return ErrnoStatus("link " + path, errno);
  return NewSegment{};
}

}  // namespace

Result<std::unique_ptr<Segment>> Segment::OpenReadOnly(
    const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(path, errno);
  auto map = MapAndValidate(fd.get(), path, /*writable=*/false,
                            /*populate=*/false);
  if (!map.ok()) return map.status();
  return std::unique_ptr<Segment>(
      new Segment(path, std::move(fd), std::move(map).value(), false));
}

Result<std::unique_ptr<Segment>> Segment::OpenExclusive(
    const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  SHARDPS_RETURN_IF_ERROR(CheckPrivateFile(fd.get(), path));
  SHARDPS_RETURN_IF_ERROR(LockExclusive(fd.get(), path));
  auto map = MapAndValidate(fd.get(), path, /*writable=*/true,
                            /*populate=*/false);
  if (!map.ok()) return map.status();
  return std::unique_ptr<Segment>(
      new Segment(path, std::move(fd), std::move(map).value(), true));
}

Result<bool> Segment::HeldByServer() const {
  // Our own lock (a writable Segment holds LOCK_EX on this very open file):
  // asking for LOCK_SH on it would convert, not test, the lock.
  if (writable_) return true;
  if (::flock(fd_.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd_.get(), LOCK_UN);
    return false;
  }
  if (errno == EWOULDBLOCK) return true;
  return ErrnoStatus("flock " + path_, errno);
}

Result<SegmentId> ReadSegmentIdentity(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(path, errno);
  // Only the immutable part: the atomics after it are not ours to copy.
  alignas(SegmentHeader) char buf[offsetof(SegmentHeader, updates_applied)];
  const ssize_t r = ::pread(fd.get(), buf, sizeof(buf), 0);
  if (r < 0) return ErrnoStatus("read " + path, errno);
  if (static_cast<size_t>(r) != sizeof(buf))
    return Status(Code::kCorrupt, path + ": too small for a segment header");
  const auto& h = *reinterpret_cast<const SegmentHeader*>(buf);
  if (std::memcmp(h.magic, kSegmentMagic, sizeof(h.magic)) != 0)
    return Status(Code::kCorrupt, path + ": not a shardps segment (bad magic)");
  if (h.format_version != kSegmentFormatVersion)
    return Status(Code::kCorrupt,
                  path + ": unsupported segment format version " +
                      std::to_string(h.format_version) + " (this build reads " +
                      std::to_string(kSegmentFormatVersion) + ")");
  if (h.header_crc != HeaderCrc(h))
    return Status(Code::kCorrupt, path + ": header checksum mismatch");
  return h.identity;
}

Result<std::unique_ptr<Segment>> Segment::OpenForServing(
    const ModelSpec& spec, uint32_t shard, uint32_t shards,
    const std::string& path, SegmentOpenReport* report, TornBlocks torn) {
  *report = SegmentOpenReport{};
  const Plan plan = MakePlan(spec, shard, shards);
  const std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty()) SHARDPS_RETURN_IF_ERROR(EnsureDirectory(dir));

  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid() && errno == ENOENT) {
    auto made = CreateSegmentFile(plan, spec, path);
    if (!made.ok()) return made.status();
    if (made->fd.valid()) {
      report->created = true;
      // Relaxed, as the claim of a reopened segment below.
      auto seg = std::unique_ptr<Segment>(
          new Segment(path, std::move(made->fd), std::move(made->map), true));
      seg->header_->opens.fetch_add(1, std::memory_order_relaxed);
      seg->header_->owner_pid.store(::getpid(), std::memory_order_relaxed);
      seg->claimed_ = true;
      return seg;
    }
    fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  }
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  // Before the lock and the mapping: a file another user controls is never
  // touched, not even its header.
  SHARDPS_RETURN_IF_ERROR(CheckPrivateFile(fd.get(), path));
  SHARDPS_RETURN_IF_ERROR(LockExclusive(fd.get(), path));

  auto map = MapAndValidate(fd.get(), path, true, /*populate=*/true);
  if (!map.ok()) return map.status();
  auto seg = std::unique_ptr<Segment>(
      new Segment(path, std::move(fd), std::move(map).value(), true));
  SHARDPS_RETURN_IF_ERROR(CheckMatchesPlan(*seg, plan, spec));

  // Memory order of the claim: relaxed throughout. We hold the exclusive
  // flock, so no other process writes the header; the previous server's
  // stores happened before it exited and so before we got the lock (the
  // kernel orders those). Counters, pid and flags are only shown by
  // readers, never used to find data; lr is read by update threads that
  // start after this. The torn-block repair stores publish no data either:
  // the block's bytes are not touched here.
  SegmentHeader& h = *seg->header_;
  report->unclean = h.clean_shutdown.load(std::memory_order_relaxed) == 0;
  // A crash inside an update leaves its block's version odd. That update was
  // never acknowledged (acks follow EndWrite), so bump it even and move on.
  for (uint32_t i = 0; i < h.num_blocks; ++i) {
    auto& seq = seg->versions_[i].seq;
    const uint64_t v = seq.load(std::memory_order_relaxed);
    if (v & 1) {
      if (torn == TornBlocks::kClose)
        seq.store(v + 1, std::memory_order_relaxed);
      ++report->torn_blocks;
    }
  }
  if (report->unclean) h.unclean_opens.fetch_add(1, std::memory_order_relaxed);
  h.opens.fetch_add(1, std::memory_order_relaxed);
  h.clean_shutdown.store(0, std::memory_order_relaxed);
  h.owner_pid.store(::getpid(), std::memory_order_relaxed);
  seg->claimed_ = true;
  h.lr.store(spec.optimizer.lr, std::memory_order_relaxed);
  return seg;
}

int64_t Segment::FindTable(std::string_view name) const {
  for (uint32_t i = 0; i < num_tables(); ++i)
    if (name == tables_[i].name) return i;
  return -1;
}

int64_t Segment::LocalBlock(uint32_t tensor, uint32_t block) const {
  if (tensor >= header_->num_tensors) return -1;
  const TensorEntry& t = tensors_[tensor];
  if (t.local_blocks == 0 || block >= t.num_blocks) return -1;
  const uint32_t first = blocks_[t.first_local].block;
  const uint32_t shards = header_->shard_count;
  if (block < first || (block - first) % shards != 0) return -1;
  const uint32_t pos = (block - first) / shards;
  if (pos >= t.local_blocks) return -1;
  return int64_t{t.first_local} + pos;
}

ModelLayout Segment::Layout() const {
  std::vector<TensorLayout> tensors;
  for (uint32_t i = 0; i < header_->num_tensors; ++i) {
    TensorLayout t;
    t.name = tensors_[i].name;
    t.shape.assign(tensors_[i].shape, tensors_[i].shape + tensors_[i].rank);
    tensors.push_back(std::move(t));
  }
  return ModelLayout(std::move(tensors), header_->block_floats,
                     header_->shard_count);
}

void Segment::MarkCleanShutdown() {
  header_->owner_pid.store(0, std::memory_order_relaxed);  // only shown
  // Release: whoever reads clean_shutdown == 1 also sees every update.
  header_->clean_shutdown.store(1, std::memory_order_release);
}

}  // namespace shardps
