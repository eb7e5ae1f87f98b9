#include "server/row_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "common/checksum.h"

namespace shardps {

namespace {

constexpr char kMagic[8] = {'S', 'P', 'S', 'R', 'O', 'W', 'J', 0};
constexpr uint32_t kVersion = 1;
// Page 0: the header; page 1: the entry; page 2 on: the saved rows.
constexpr off_t kEntryOffset = kPageBytes;
constexpr off_t kRowsOffset = 2 * kPageBytes;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t shard_index;
  SegmentId segment;
  uint64_t spec_hash;
  uint32_t shard_count;
  uint32_t crc;  // CRC-32C of every byte before it
};

struct Entry {
  uint32_t open;  // 1 from Begin until Close
  uint32_t table;
  uint32_t client_slot;
  uint32_t reserved;
  uint64_t rows;        // saved rows that follow
  uint64_t row_floats;  // per row: dim x (1 + state slots)
  DedupeWindow window_before;
};

// Each saved row, in order: the index slot it lives in, its step count,
// then row_floats floats (values, then each state slot's dim floats).
struct RowRecord {
  uint64_t index_slot;
  uint32_t updates;
  uint32_t reserved;
};

uint32_t HeaderCrc(const FileHeader& h) {
  return Crc32c(&h, offsetof(FileHeader, crc));
}

FileHeader HeaderFor(const Segment& seg) {
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.shard_index = seg.header().shard_index;
  h.shard_count = seg.header().shard_count;
  h.segment = seg.identity();
  h.spec_hash = seg.header().spec_hash;
  h.crc = HeaderCrc(h);
  return h;
}

bool ReadAt(int fd, void* out, size_t bytes, off_t at) {
  return ::pread(fd, out, bytes, at) == static_cast<ssize_t>(bytes);
}

Status WriteAt(int fd, const void* data, size_t bytes, off_t at,
               const std::string& path) {
  const ssize_t n = ::pwrite(fd, data, bytes, at);
  if (n == static_cast<ssize_t>(bytes)) return Status::Ok();
  return ErrnoStatus("write " + path, n < 0 ? errno : ENOSPC);
}

// Puts back the rows and window of an open entry. Empty on success (or
// when nothing was open), else why the journal was not used.
std::string Restore(Segment& seg, int fd, uint64_t size, uint64_t* restored) {
  FileHeader found;
  if (!ReadAt(fd, &found, sizeof(found), 0)) return "it is too short";
  const FileHeader want = HeaderFor(seg);
  if (std::memcmp(found.magic, kMagic, sizeof(kMagic)) != 0 ||
      found.crc != HeaderCrc(found) || found.version != kVersion)
    return "not a shardps row journal of this version, or a damaged one";
  if (found.segment != want.segment || found.spec_hash != want.spec_hash ||
      found.shard_index != want.shard_index ||
      found.shard_count != want.shard_count)
    return "it belongs to another segment (" + found.segment.ToString() + ")";
  Entry e;
  if (!ReadAt(fd, &e, sizeof(e), kEntryOffset) || e.open != 1) return "";
  if (e.table >= seg.num_tables() || e.client_slot >= seg.dedupe_slots())
    return "its open entry is malformed";
  const TableEntry& t = seg.table(e.table);
  const uint64_t record_bytes =
      sizeof(RowRecord) + e.row_floats * sizeof(float);
  if (e.row_floats != t.dim * (1 + t.state_slots) || e.rows > t.capacity ||
      kRowsOffset + e.rows * record_bytes > size)
    return "its open entry is malformed";
  // Check every record before changing anything.
  std::vector<char> buf(e.rows * record_bytes);
  if (!buf.empty() && !ReadAt(fd, buf.data(), buf.size(), kRowsOffset))
    return "its open entry cannot be read";
  RowSlot* index = seg.row_index(e.table);
  for (uint64_t i = 0; i < e.rows; ++i) {
    RowRecord r;
    std::memcpy(&r, buf.data() + i * record_bytes, sizeof(r));
    if (r.index_slot >= t.index_slots) return "its open entry is malformed";
    const uint32_t plus_one =
        index[r.index_slot].row_plus_one.load(std::memory_order_relaxed);
    if (plus_one == 0 || plus_one > t.capacity)
      return "its open entry names a row that does not exist";
  }
  for (uint64_t i = 0; i < e.rows; ++i) {
    const char* rec = buf.data() + i * record_bytes;
    RowRecord r;
    std::memcpy(&r, rec, sizeof(r));
    RowSlot& slot = index[r.index_slot];
    const uint64_t row = slot.row_plus_one.load(std::memory_order_relaxed) - 1;
    const float* saved = reinterpret_cast<const float*>(rec + sizeof(r));
    std::memcpy(seg.table_rows(e.table) + row * t.dim, saved,
                t.dim * sizeof(float));
    for (uint32_t k = 0; k < t.state_slots; ++k)
      std::memcpy(seg.table_state(e.table, k) + row * t.dim,
                  saved + (k + 1) * t.dim, t.dim * sizeof(float));
    slot.updates = r.updates;
  }
  seg.client_slot(e.client_slot).rows = e.window_before;
  *restored = e.rows;
  return "";
}

}  // namespace

std::string RowJournal::PathFor(const std::string& segment_path) {
  return segment_path + ".rows.journal";
}

Result<std::unique_ptr<RowJournal>> RowJournal::Open(Segment& segment,
                                                     uint64_t* restored_rows,
                                                     std::string* discarded) {
  *restored_rows = 0;
  discarded->clear();
  const std::string path = PathFor(segment.path());
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  SHARDPS_RETURN_IF_ERROR(CheckPrivateFile(fd.get(), path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  if (st.st_size > 0)
    *discarded = Restore(segment, fd.get(), static_cast<uint64_t>(st.st_size),
                         restored_rows);
  // A fresh journal: this segment's header, the entry closed.
  if (::ftruncate(fd.get(), 0) != 0)
    return ErrnoStatus("truncate " + path, errno);
  const FileHeader h = HeaderFor(segment);
  SHARDPS_RETURN_IF_ERROR(WriteAt(fd.get(), &h, sizeof(h), 0, path));
  const Entry closed{};
  SHARDPS_RETURN_IF_ERROR(
      WriteAt(fd.get(), &closed, sizeof(closed), kEntryOffset, path));
  return std::unique_ptr<RowJournal>(new RowJournal(segment, std::move(fd)));
}

RowJournal::RowJournal(Segment& segment, UniqueFd fd)
    : segment_(segment), fd_(std::move(fd)) {}

Status RowJournal::Begin(uint32_t table, uint32_t client_slot,
                         const std::vector<RowSlot*>& slots) {
  const TableEntry& t = segment_.table(table);
  const uint64_t row_floats = t.dim * (1 + t.state_slots);
  const uint64_t record_bytes = sizeof(RowRecord) + row_floats * sizeof(float);
  uint64_t rows = 0;
  for (const RowSlot* s : slots) rows += s != nullptr;
  buffer_.resize(rows * record_bytes);
  const RowSlot* index = segment_.row_index(table);
  char* out = buffer_.data();
  for (const RowSlot* s : slots) {
    if (s == nullptr) continue;
    const uint64_t row = s->row_plus_one.load(std::memory_order_relaxed) - 1;
    const RowRecord r{static_cast<uint64_t>(s - index), s->updates, 0};
    std::memcpy(out, &r, sizeof(r));
    float* saved = reinterpret_cast<float*>(out + sizeof(r));
    std::memcpy(saved, segment_.table_rows(table) + row * t.dim,
                t.dim * sizeof(float));
    for (uint32_t k = 0; k < t.state_slots; ++k)
      std::memcpy(saved + (k + 1) * t.dim,
                  segment_.table_state(table, k) + row * t.dim,
                  t.dim * sizeof(float));
    out += record_bytes;
  }
  const std::string path = PathFor(segment_.path());
  if (!buffer_.empty())
    SHARDPS_RETURN_IF_ERROR(
        WriteAt(fd_.get(), buffer_.data(), buffer_.size(), kRowsOffset, path));
  // The rows are in the file before the entry reads as open (pwrite order).
  Entry e{};
  e.open = 1;
  e.table = table;
  e.client_slot = client_slot;
  e.rows = rows;
  e.row_floats = row_floats;
  e.window_before = segment_.client_slot(client_slot).rows;
  return WriteAt(fd_.get(), &e, sizeof(e), kEntryOffset, path);
}

void RowJournal::Close() {
  const uint32_t closed = 0;
  // A failed 4-byte write into a page that is already there cannot happen
  // on a tmpfs; if it did, the next start would put back a push that was
  // acknowledged, so say so.
  if (::pwrite(fd_.get(), &closed, sizeof(closed), kEntryOffset) !=
      static_cast<ssize_t>(sizeof(closed)))
    std::perror("shardps: closing the row journal entry");
}

}  // namespace shardps
