#include "server/update_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "common/checksum.h"

namespace shardps {

namespace {

constexpr char kJournalMagic[8] = {'S', 'P', 'S', 'J', 'R', 'N', 'L', 0};
// 2: names its segment by SegmentId instead of the creation time, which a
//    segment recreated within the same millisecond shared.
constexpr uint32_t kJournalVersion = 2;

// Page 0 of the file: which segment the journal belongs to.
struct JournalHeader {
  char magic[8];
  uint32_t version;
  uint32_t writers;
  uint64_t entry_bytes;
  SegmentId segment;  // the identity of the segment it journals
  uint64_t spec_hash;
  uint32_t shard_index;
  uint32_t shard_count;
  uint32_t reserved;
  uint32_t crc;  // CRC-32C of every byte before it
};

// The first page of each entry; the saved footprint follows on the next.
struct EntryHeader {
  std::atomic<uint32_t> open;  // 1 from Begin until Close
  uint32_t block;
  uint32_t slot;
  uint32_t reserved;
  uint64_t seq_before;
  int64_t clock_before;
  uint64_t footprint_bytes;
  DedupeWindow window_before;
};
static_assert(sizeof(JournalHeader) <= kPageBytes);
static_assert(sizeof(EntryHeader) <= kPageBytes);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Weights, optimizer state and bsp accumulator: contiguous in the segment.
uint64_t Footprint(const Segment& seg, uint32_t block) {
  const BlockEntry& b = seg.block(block);
  const TensorEntry& t = seg.tensor(b.tensor);
  return b.data_bytes * (1 + t.state_slots + t.accum_slots);
}

uint32_t HeaderCrc(const JournalHeader& h) {
  return Crc32c(&h, offsetof(JournalHeader, crc));
}

JournalHeader HeaderFor(const Segment& seg, uint32_t writers,
                        uint64_t entry_bytes) {
  JournalHeader h{};
  std::memcpy(h.magic, kJournalMagic, sizeof(h.magic));
  h.version = kJournalVersion;
  h.writers = writers;
  h.entry_bytes = entry_bytes;
  h.segment = seg.identity();
  h.spec_hash = seg.header().spec_hash;
  h.shard_index = seg.header().shard_index;
  h.shard_count = seg.header().shard_count;
  h.crc = HeaderCrc(h);
  return h;
}

// Empty when `found` is this segment's journal of `size` bytes, else why not.
std::string Mismatch(const JournalHeader& found, const Segment& seg,
                     uint64_t size) {
  if (std::memcmp(found.magic, kJournalMagic, sizeof(found.magic)) != 0)
    return "not a shardps journal, or a damaged one";
  if (found.version != kJournalVersion)
    return "journal format " + std::to_string(found.version) +
           " (this build reads " + std::to_string(kJournalVersion) + ")";
  if (found.crc != HeaderCrc(found))
    return "not a shardps journal, or a damaged one";
  const JournalHeader want = HeaderFor(seg, found.writers, found.entry_bytes);
  if (found.segment != want.segment || found.spec_hash != want.spec_hash ||
      found.shard_index != want.shard_index ||
      found.shard_count != want.shard_count)
    return "it belongs to another segment (" + found.segment.ToString() +
           ", not " + want.segment.ToString() +
           ": an older one at this path, or another shard)";
  if (found.writers == 0 || found.entry_bytes < kPageBytes ||
      found.entry_bytes % kPageBytes != 0 ||
      (size - kPageBytes) / found.entry_bytes != found.writers ||
      (size - kPageBytes) % found.entry_bytes != 0)
    return "its size does not match its header";
  return "";
}

// Puts back the block of every open entry. Returns false (with `why`) when
// an entry is malformed; blocks of the entries before it are restored.
bool RestoreOpenEntries(Segment& seg, const char* base, const JournalHeader& h,
                        uint64_t* restored, std::string* why) {
  for (uint32_t w = 0; w < h.writers; ++w) {
    const char* e = base + kPageBytes + uint64_t{w} * h.entry_bytes;
    const auto& eh = *reinterpret_cast<const EntryHeader*>(e);
    if (eh.open.load(std::memory_order_acquire) != 1) continue;
    if (eh.block >= seg.num_blocks() ||
        eh.footprint_bytes != Footprint(seg, eh.block) ||
        eh.footprint_bytes > h.entry_bytes - kPageBytes ||
        (eh.slot != UpdateJournal::kNoSlot && eh.slot >= seg.dedupe_slots()) ||
        (eh.seq_before & 1) != 0) {
      *why = "entry " + std::to_string(w) + " is malformed";
      return false;
    }
    const BlockEntry& b = seg.block(eh.block);
    std::memcpy(seg.mutable_bytes() + b.data_offset, e + kPageBytes,
                eh.footprint_bytes);
    if (eh.slot != UpdateJournal::kNoSlot)
      seg.dedupe_window(eh.block, eh.slot) = eh.window_before;
    BlockVersion& v = seg.version(eh.block);
    v.clock.store(eh.clock_before, std::memory_order_relaxed);
    v.seq.store(eh.seq_before, std::memory_order_release);
    ++*restored;
  }
  return true;
}

}  // namespace

std::string UpdateJournal::PathFor(const std::string& segment_path) {
  return segment_path + ".journal";
}

Result<std::unique_ptr<UpdateJournal>> UpdateJournal::Open(
    Segment& segment, uint32_t writers, JournalReport* report) {
  *report = JournalReport{};
  const std::string path = PathFor(segment.path());
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  const auto size = static_cast<uint64_t>(st.st_size);

  if (size >= kPageBytes) {
    JournalHeader found;
    if (::pread(fd.get(), &found, sizeof(found), 0) !=
        static_cast<ssize_t>(sizeof(found)))
      return ErrnoStatus("read " + path, errno);
    report->discarded = Mismatch(found, segment, size);
    if (report->discarded.empty()) {
      auto old = Mapping::Map(fd.get(), size, /*writable=*/false, false);
      if (!old.ok()) return old.status().WithContext(path);
      RestoreOpenEntries(segment, old->data(), found, &report->restored_blocks,
                         &report->discarded);
    }
  } else if (size > 0) {
    report->discarded = "it is too short to be a journal";
  }

  // A fresh file sized for this run's writers: every entry closed.
  uint64_t largest = 0;
  for (uint32_t b = 0; b < segment.num_blocks(); ++b)
    largest = std::max(largest, Footprint(segment, b));
  const uint64_t entry_bytes = kPageBytes + largest;
  const uint64_t bytes = kPageBytes + uint64_t{writers} * entry_bytes;
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
    return ErrnoStatus("size " + path, errno);
  auto map = Mapping::Map(fd.get(), bytes, /*writable=*/true, true);
  if (!map.ok()) return map.status().WithContext(path);
  const JournalHeader h = HeaderFor(segment, writers, entry_bytes);
  std::memcpy(map->data(), &h, sizeof(h));
  return std::unique_ptr<UpdateJournal>(new UpdateJournal(
      segment, std::move(fd), std::move(map).value(), entry_bytes));
}

UpdateJournal::UpdateJournal(Segment& segment, UniqueFd fd, Mapping map,
                             uint64_t entry_bytes)
    : segment_(segment),
      fd_(std::move(fd)),
      map_(std::move(map)),
      entry_bytes_(entry_bytes) {}

UpdateJournal::~UpdateJournal() = default;

char* UpdateJournal::entry(uint32_t writer) const {
  return map_.data() + kPageBytes + uint64_t{writer} * entry_bytes_;
}

void UpdateJournal::Begin(uint32_t writer, uint32_t block, uint32_t slot) {
  char* e = entry(writer);
  auto& eh = *reinterpret_cast<EntryHeader*>(e);
  const BlockVersion& v = segment_.version(block);
  eh.block = block;
  eh.slot = slot;
  eh.seq_before = v.seq.load(std::memory_order_relaxed);
  eh.clock_before = v.clock.load(std::memory_order_relaxed);
  eh.footprint_bytes = Footprint(segment_, block);
  eh.window_before =
      slot == kNoSlot ? DedupeWindow{} : segment_.dedupe_window(block, slot);
  std::memcpy(e + kPageBytes,
              segment_.bytes() + segment_.block(block).data_offset,
              eh.footprint_bytes);
  // The saved copy is complete before the entry reads as open, and the
  // entry reads as open before the block's first changed byte.
  eh.open.store(1, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void UpdateJournal::Close(uint32_t writer) {
  auto& eh = *reinterpret_cast<EntryHeader*>(entry(writer));
  eh.open.store(0, std::memory_order_release);
}

}  // namespace shardps
