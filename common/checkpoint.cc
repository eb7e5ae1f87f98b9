#include "common/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "common/checksum.h"
#include "common/file_writer.h"
#include "common/hex.h"
#include "common/posix_file.h"
#include "common/segment.h"
#include "common/seqlock.h"

namespace shardps {

namespace {

constexpr int kCheckpointFormat = 1;
constexpr size_t kIoChunk = 4 << 20;

std::string ShardFile(uint32_t shard, uint32_t shards) {
  return "shard-" + std::to_string(shard) + "-of-" + std::to_string(shards) +
         ".ckpt";
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A new checkpoint file (0600, never an existing one), keeping a running
// CRC-32C of what it appends for the MANIFEST.
class ChecksummedWriter {
 public:
  static Result<ChecksummedWriter> Create(const std::string& path) {
    auto file = FileWriter::Create(path, 0600, FileWriter::Mode::kExclusive);
    if (!file.ok()) return file.status();
    return ChecksummedWriter(std::move(file).value());
  }
  Status Write(const void* data, size_t n) {
    crc_ = Crc32c(data, n, crc_);
    return file_.Append(data, n);
  }
  Status Finish() { return file_.Sync(); }
  uint32_t crc() const { return crc_; }
  uint64_t bytes() const { return file_.bytes(); }

 private:
  explicit ChecksummedWriter(FileWriter file) : file_(std::move(file)) {}
  FileWriter file_;
  uint32_t crc_ = 0;
};

// "block 3 of 'w' in /dev/shm/m/shard-0-of-1.seg"
std::string BlockName(const Segment& seg, uint32_t local) {
  const BlockEntry& b = seg.block(local);
  return "block " + std::to_string(b.block) + " of '" +
         seg.tensor(b.tensor).name + "' in " + seg.path();
}

// The first block whose version is odd (mid-update), or -1.
int64_t FirstTornBlock(const Segment& seg) {
  // Acquire pairs with the writer's release of an even version, so a block
  // seen even here was left whole by its last writer. (The copy itself goes
  // through ReadConsistent, which checks the version again around it.)
  for (uint32_t i = 0; i < seg.num_blocks(); ++i)
    if (seg.version(i).seq.load(std::memory_order_acquire) & 1) return i;
  return -1;
}

// Opens `path` for reading a checkpoint. With a server holding the lock, a
// briefly odd block is its writer at work and the reads retry. With none,
// an odd block stays odd forever: it is repaired through options.repair
// and the segment opened again, or refused.
Result<std::unique_ptr<Segment>> OpenToCheckpoint(
    const std::string& path, const CheckpointWriteOptions& options) {
  auto seg = Segment::OpenReadOnly(path);
  if (!seg.ok()) return seg.status();
  auto held = (*seg)->HeldByServer();
  if (!held.ok()) return held.status();
  const int64_t torn = FirstTornBlock(**seg);
  if (*held || torn < 0) return seg;
  const std::string what =
      BlockName(**seg, static_cast<uint32_t>(torn)) +
      " was left mid-update by a server that died, and no server holds the "
      "segment";
  if (!options.repair)
    return Status(Code::kCorrupt,
                  what +
                      "; start `shardps serve` on it to put it back from "
                      "its journal, then checkpoint again");
  seg->reset();
  Status repaired = options.repair(path);
  if (!repaired.ok()) {
    if (repaired.code() != Code::kBusy)
      return repaired.WithContext(what + "; repairing it failed");
    // A server took the segment meanwhile; it repairs the block itself.
  }
  seg = Segment::OpenReadOnly(path);
  if (!seg.ok()) return seg.status();
  held = (*seg)->HeldByServer();
  if (!held.ok()) return held.status();
  const int64_t still = FirstTornBlock(**seg);
  if (!*held && still >= 0)
    return Status(Code::kCorrupt,
                  BlockName(**seg, static_cast<uint32_t>(still)) +
                      " is still mid-update after the repair");
  return seg;
}

// Shard file layout: the data region [data_offset, file_bytes) with each
// block's weights a seqlock-consistent copy, then the version region
// [versions_offset, data_offset) with each block's version as copied.
Status WriteShard(const Segment& seg, const std::string& path,
                  const CheckpointWriteOptions& options,
                  CheckpointShard* record) {
  auto out = ChecksummedWriter::Create(path);
  if (!out.ok()) return out.status();
  const SegmentHeader& h = seg.header();
  const char* base = seg.bytes();
  std::vector<uint64_t> versions(seg.num_blocks());
  std::vector<char> copy;
  uint64_t cursor = h.data_offset;
  for (uint32_t i = 0; i < seg.num_blocks(); ++i) {
    const BlockEntry& b = seg.block(i);
    if (b.data_offset != cursor)
      return Status(Code::kInternal, "segment blocks are not contiguous");
    copy.resize(b.data_bytes);
    Status read = ReadConsistent(
        seg.version(i), seg.block_data(i), copy.data(), b.data_bytes,
        std::chrono::steady_clock::now() + options.block_read_timeout,
        &versions[i]);
    if (!read.ok()) return read.WithContext(BlockName(seg, i));
    SHARDPS_RETURN_IF_ERROR(out->Write(copy.data(), copy.size()));
    // The rest up to the next block (optimizer state, accumulator) or, for
    // the last block, to the end of the file (the tables).
    const uint64_t end =
        i + 1 < seg.num_blocks() ? seg.block(i + 1).data_offset : h.file_bytes;
    cursor = b.data_offset + b.data_bytes;
    SHARDPS_RETURN_IF_ERROR(out->Write(base + cursor, end - cursor));
    cursor = end;
  }
  if (cursor < h.file_bytes)
    SHARDPS_RETURN_IF_ERROR(out->Write(base + cursor, h.file_bytes - cursor));
  std::vector<char> meta(base + h.versions_offset, base + h.data_offset);
  // A restored model starts a new history: no client's retry of a push made
  // before the checkpoint may be mistaken for one already applied to it.
  std::fill(meta.begin() + static_cast<std::ptrdiff_t>(h.clients_offset -
                                                       h.versions_offset),
            meta.end(), 0);
  for (uint32_t i = 0; i < seg.num_blocks(); ++i) {
    const uint64_t v = versions[i];
    std::memcpy(meta.data() + i * sizeof(BlockVersion), &v, sizeof(v));
  }
  SHARDPS_RETURN_IF_ERROR(out->Write(meta.data(), meta.size()));
  SHARDPS_RETURN_IF_ERROR(out->Finish());
  record->bytes = out->bytes();
  record->crc = out->crc();
  record->segment_identity = seg.identity();
  // Relaxed: these counters are only copied into the MANIFEST; no memory is
  // read on the strength of their values. A checkpoint of a live server is
  // fuzzy anyway (each block is consistent by its own seqlock, not with the
  // others or with the counters). The exact one, at a clean stop, runs after
  // the writers stopped, and what told us so (a thread join, a mutex)
  // already orders their stores before these loads; a dead server's stores
  // reach another process through the kernel (its exit, our open).
  record->updates_applied = h.updates_applied.load(std::memory_order_relaxed);
  record->applied_clock = h.applied_clock.load(std::memory_order_relaxed);
  for (size_t w = 0; w < kMaxWorkers; ++w)
    record->clocks.push_back(
        h.worker_clocks[w].load(std::memory_order_relaxed));
  while (!record->clocks.empty() && record->clocks.back() == 0)
    record->clocks.pop_back();
  return Status::Ok();
}

// `shards` is the model's shard count; `records` the shards this checkpoint
// holds (all of them, or one for a shard server's own checkpoint).
std::string ManifestText(const SegmentHeader& h,
                         const std::vector<CheckpointShard>& records) {
  std::string m = "format = " + std::to_string(kCheckpointFormat) +
                  "\nmodel = " + h.model + "\nspec_hash = " + Hex(h.spec_hash) +
                  "\nshards = " + std::to_string(h.shard_count) + "\n";
  for (const CheckpointShard& r : records) {
    const std::string k = "shard." + std::to_string(r.index) + ".";
    std::string clocks;
    for (int64_t c : r.clocks)
      clocks += (clocks.empty() ? "" : ",") + std::to_string(c);
    char crc[16];
    std::snprintf(crc, sizeof(crc), "%08x", r.crc);
    m += k + "file = " + r.file + "\n" + k +
         "bytes = " + std::to_string(r.bytes) + "\n" + k + "crc32c = " + crc +
         "\n" + k + "updates_applied = " + std::to_string(r.updates_applied) +
         "\n" + k + "applied_clock = " + std::to_string(r.applied_clock) +
         "\n" + k + "worker_clocks = " + clocks + "\n" + k +
         "segment_identity = " + r.segment_identity.ToString() + "\n";
  }
  return m;
}

// "key = value" lines; anything else is a corrupt manifest.
Result<std::map<std::string, std::string>> ManifestKeys(std::string_view text) {
  std::map<std::string, std::string> kv;
  size_t start = 0, line = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++line;
    const std::string_view l = text.substr(start, end - start);
    start = end + 1;
    if (l.empty()) continue;
    const size_t eq = l.find(" = ");
    if (eq == std::string_view::npos)
      return Status::Corrupt("MANIFEST line " + std::to_string(line) +
                             " is not 'key = value'");
    kv[std::string(l.substr(0, eq))] = std::string(l.substr(eq + 3));
  }
  return kv;
}

const std::string* Find(const std::map<std::string, std::string>& kv,
                        const std::string& key) {
  auto it = kv.find(key);
  return it == kv.end() ? nullptr : &it->second;
}

// Digits only, with an optional 0x before hex ones (spec_hash is written
// that way): strtoull alone would also take a sign and spaces, and wrap.
Result<uint64_t> Number(const std::map<std::string, std::string>& kv,
                        const std::string& key, int base = 10) {
  const std::string* text = Find(kv, key);
  if (text == nullptr) return Status::Corrupt("MANIFEST lacks " + key);
  std::string_view d = *text;
  if (base == 16 && d.size() > 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'X'))
    d.remove_prefix(2);
  const bool digits =
      !d.empty() && std::all_of(d.begin(), d.end(), [&](char c) {
        const auto u = static_cast<unsigned char>(c);
        return base == 16 ? std::isxdigit(u) != 0 : std::isdigit(u) != 0;
      });
  errno = 0;
  const uint64_t v =
      digits ? std::strtoull(std::string(d).c_str(), nullptr, base) : 0;
  if (!digits || errno == ERANGE)
    return Status::Corrupt("MANIFEST " + key + " = '" + *text +
                           "' is not a number");
  return v;
}

// "c0,c1,...": signed clocks, as WriteShard renders them.
Status ParseClocks(const std::string& key, const std::string& text,
                   std::vector<int64_t>* clocks) {
  if (text.empty()) return Status::Ok();  // no worker has a clock yet
  // Every comma separates two clocks: "1," and ",1" have an empty one.
  for (size_t p = 0;;) {
    size_t comma = text.find(',', p);
    const bool last = comma == std::string::npos;
    if (last) comma = text.size();
    const std::string item = text.substr(p, comma - p);
    const size_t digits_from = !item.empty() && item[0] == '-' ? 1 : 0;
    const bool digits =
        item.size() > digits_from &&
        std::all_of(item.begin() + digits_from, item.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) != 0;
        });
    errno = 0;
    const long long v = digits ? std::strtoll(item.c_str(), nullptr, 10) : 0;
    if (!digits || errno == ERANGE)
      return Status::Corrupt("MANIFEST " + key + " has a bad clock '" + item +
                             "'");
    if (clocks->size() == kMaxWorkers)
      return Status::Corrupt("MANIFEST " + key + " has more than " +
                             std::to_string(kMaxWorkers) + " clocks");
    clocks->push_back(v);
    if (last) return Status::Ok();
    p = comma + 1;
  }
}

// Streams `path` once to check its size and CRC against the manifest.
Status VerifyFile(const std::string& path, uint64_t bytes, uint32_t crc) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  std::vector<char> buf(kIoChunk);
  uint64_t total = 0;
  uint32_t c = 0;
  for (;;) {
    const ssize_t r = ::read(fd.get(), buf.data(), buf.size());
    if (r < 0) return ErrnoStatus("read " + path, errno);
    if (r == 0) break;
    c = Crc32c(buf.data(), static_cast<size_t>(r), c);
    total += static_cast<uint64_t>(r);
  }
  if (total != bytes)
    return Status::Corrupt(path + " is " + std::to_string(total) +
                           " bytes, the manifest says " +
                           std::to_string(bytes));
  if (c != crc) return Status::Corrupt(path + " fails its CRC-32C check");
  return Status::Ok();
}

Status ReadInto(int fd, char* dst, uint64_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t r = ::read(fd, dst, std::min<uint64_t>(n, kIoChunk));
    if (r < 0) return ErrnoStatus("read " + path, errno);
    if (r == 0) return Status::Corrupt(path + " ended early");
    dst += r;
    n -= static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

}  // namespace

Result<CheckpointManifest> ParseCheckpointManifest(std::string_view text) {
  auto kv = ManifestKeys(text);
  if (!kv.ok()) return kv.status();
  auto format = Number(*kv, "format");
  if (!format.ok()) return format.status();
  if (*format != kCheckpointFormat)
    return Status::Corrupt("checkpoint format " + std::to_string(*format) +
                           " (this build reads " +
                           std::to_string(kCheckpointFormat) + ")");
  CheckpointManifest m;
  const std::string* model = Find(*kv, "model");
  if (model == nullptr) return Status::Corrupt("MANIFEST lacks model");
  m.model = *model;
  auto hash = Number(*kv, "spec_hash", 16);
  if (!hash.ok()) return hash.status();
  m.spec_hash = *hash;
  auto shards = Number(*kv, "shards");
  if (!shards.ok()) return shards.status();
  if (*shards == 0 || *shards > 4096)
    return Status::Corrupt("MANIFEST shards = " + std::to_string(*shards) +
                           " (want 1..4096)");
  const auto n = static_cast<uint32_t>(*shards);
  m.shard_count = n;
  for (uint32_t i = 0; i < n; ++i) {
    const std::string k = "shard." + std::to_string(i) + ".";
    // A shard server's own checkpoint holds only its shard.
    if (Find(*kv, k + "file") == nullptr && Find(*kv, k + "bytes") == nullptr)
      continue;
    CheckpointShard& r = m.shards.emplace_back();
    r.index = i;
    auto bytes = Number(*kv, k + "bytes");
    auto crc = Number(*kv, k + "crc32c", 16);
    auto updates = Number(*kv, k + "updates_applied");
    auto applied = Number(*kv, k + "applied_clock");
    for (const auto* v : {&bytes, &crc, &updates, &applied})
      if (!v->ok()) return v->status();
    if (*crc > UINT32_MAX || *applied > uint64_t{INT64_MAX})
      return Status::Corrupt("MANIFEST " + k +
                             "crc32c or applied_clock out of range");
    r.file = ShardFile(i, n);
    r.bytes = *bytes;
    r.crc = static_cast<uint32_t>(*crc);
    r.updates_applied = *updates;
    r.applied_clock = static_cast<int64_t>(*applied);
    if (const std::string* clocks = Find(*kv, k + "worker_clocks"))
      SHARDPS_RETURN_IF_ERROR(
          ParseClocks(k + "worker_clocks", *clocks, &r.clocks));
    // Absent from manifests written before segments had identities.
    if (const std::string* id = Find(*kv, k + "segment_identity")) {
      auto parsed = ParseSegmentId(*id);
      if (!parsed.ok())
        return Status::Corrupt(
            "MANIFEST " + k + "segment_identity: " + parsed.status().message());
      r.segment_identity = *parsed;
    }
  }
  if (m.shards.empty()) return Status::Corrupt("MANIFEST lists no shard");
  return m;
}

namespace {

// Writes `segs` (shards of one model) as a checkpoint in `dir`: files in
// DIR.partial-<pid>, fsync-ed, then renamed into place.
Result<CheckpointSummary> WriteSegments(
    const std::vector<std::unique_ptr<Segment>>& segs, const std::string& dir,
    const CheckpointWriteOptions& options) {
  if (Exists(dir))
    return Status(Code::kBusy, dir +
                                   " exists; checkpoints are written once, "
                                   "to a new directory");
  const std::string tmp = dir + ".partial-" + std::to_string(::getpid());
  if (::mkdir(tmp.c_str(), 0700) != 0)
    return ErrnoStatus("mkdir " + tmp, errno);
  std::vector<CheckpointShard> records(segs.size());
  // Whatever was written so far goes, whichever step failed.
  auto fail = [&](const Status& s) {
    std::error_code ignored;
    std::filesystem::remove_all(tmp, ignored);
    return s;
  };
  CheckpointSummary summary;
  for (size_t i = 0; i < segs.size(); ++i) {
    const SegmentHeader& h = segs[i]->header();
    records[i].index = h.shard_index;
    records[i].file = ShardFile(h.shard_index, h.shard_count);
    Status s =
        WriteShard(*segs[i], tmp + "/" + records[i].file, options, &records[i]);
    if (!s.ok()) return fail(s);
    summary.bytes += records[i].bytes;
    summary.sources.push_back(records[i].segment_identity);
  }
  auto manifest = ChecksummedWriter::Create(tmp + "/MANIFEST");
  if (!manifest.ok()) return fail(manifest.status());
  const std::string text = ManifestText(segs[0]->header(), records);
  Status s = manifest->Write(text.data(), text.size());
  if (s.ok()) s = manifest->Finish();
  if (s.ok()) s = SyncDirectory(tmp);
  if (!s.ok()) return fail(s);
  // The rename publishes it whole; a crash before leaves only *.partial-*.
  if (::rename(tmp.c_str(), dir.c_str()) != 0)
    return fail(ErrnoStatus("rename to " + dir, errno));
  SHARDPS_RETURN_IF_ERROR(SyncDirectory(DirectoryOf(dir)));
  summary.dir = dir;
  summary.shards = static_cast<uint32_t>(segs.size());
  return summary;
}

}  // namespace

Result<CheckpointSummary> WriteCheckpoint(
    const std::vector<std::string>& segment_paths, const std::string& dir,
    const CheckpointWriteOptions& options) {
  if (segment_paths.empty())
    return Status(Code::kInvalidArgument, "no segments to checkpoint");
  std::vector<std::unique_ptr<Segment>> segs;
  for (size_t i = 0; i < segment_paths.size(); ++i) {
    auto seg = OpenToCheckpoint(segment_paths[i], options);
    if (!seg.ok()) return seg.status();
    const SegmentHeader& h = (*seg)->header();
    if (h.shard_index != i || h.shard_count != segment_paths.size() ||
        (i > 0 && h.spec_hash != segs[0]->header().spec_hash))
      return Status(Code::kSpecMismatch,
                    segment_paths[i] + " is not shard " + std::to_string(i) +
                        " of the same model as the others");
    segs.push_back(std::move(seg).value());
  }
  return WriteSegments(segs, dir, options);
}

Result<CheckpointSummary> WriteShardCheckpoint(
    const std::string& segment_path, const std::string& dir,
    const CheckpointWriteOptions& options) {
  auto seg = OpenToCheckpoint(segment_path, options);
  if (!seg.ok()) return seg.status();
  std::vector<std::unique_ptr<Segment>> segs;
  segs.push_back(std::move(seg).value());
  return WriteSegments(segs, dir, options);
}

namespace {

// One shard to restore: the checkpoint directory holding it, and its record.
struct ShardSource {
  std::string dir;
  CheckpointShard record;
};

// Reads `dir`/MANIFEST, a checkpoint of `spec`: the model's shard count and
// the shards this checkpoint holds (all, or one for a server's own).
Status ReadManifest(const std::string& dir, const ModelSpec& spec,
                    uint32_t* shards, std::vector<ShardSource>* out) {
  auto text = ReadFileToString(dir + "/MANIFEST");
  if (!text.ok()) return text.status().WithContext("checkpoint " + dir);
  auto manifest = ParseCheckpointManifest(*text);
  if (!manifest.ok()) return manifest.status().WithContext(dir);
  if (manifest->spec_hash != SpecHash(spec) || manifest->model != spec.name)
    return Status(Code::kSpecMismatch,
                  dir + " holds model '" + manifest->model + "' spec " +
                      Hex(manifest->spec_hash) + ", not '" + spec.name +
                      "' spec " + Hex(SpecHash(spec)));
  *shards = manifest->shard_count;
  for (CheckpointShard& s : manifest->shards)
    out->push_back({dir, std::move(s)});
  return Status::Ok();
}

// The names of the entries of `dir`, sorted; empty if it cannot be read.
std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Under a `serve --checkpoint-dir` root (ROOT/shard-I-of-N/<stamp>/), the
// newest checkpoint of every shard that reads and verifies.
Status PickNewestPerShard(const std::string& root, const ModelSpec& spec,
                          uint32_t* shards, std::vector<ShardSource>* out) {
  std::map<uint32_t, std::string> shard_dirs;
  *shards = 0;
  for (const std::string& name : ListDir(root)) {
    unsigned i = 0, n = 0;
    char tail = 0;
    if (std::sscanf(name.c_str(), "shard-%u-of-%u%c", &i, &n, &tail) != 2)
      continue;
    if (*shards != 0 && n != *shards)
      return Status::Corrupt(root + " mixes checkpoints of " +
                             std::to_string(*shards) + " and " +
                             std::to_string(n) + " shards");
    *shards = n;
    shard_dirs[i] = root + "/" + name;
  }
  if (*shards == 0)
    return Status(Code::kNotFound,
                  root +
                      " is neither a checkpoint (no MANIFEST) nor a "
                      "--checkpoint-dir root (no shard-I-of-N directories)");
  for (uint32_t i = 0; i < *shards; ++i) {
    if (shard_dirs.count(i) == 0)
      return Status(Code::kNotFound,
                    root + " has no checkpoint of shard " + std::to_string(i));
    std::vector<std::string> stamps = ListDir(shard_dirs[i]);
    std::string why = "no checkpoints";
    bool found = false;
    for (auto it = stamps.rbegin(); it != stamps.rend() && !found; ++it) {
      if (it->find(".partial-") != std::string::npos) continue;
      const std::string dir = shard_dirs[i] + "/" + *it;
      uint32_t n = 0;
      std::vector<ShardSource> srcs;
      Status s = ReadManifest(dir, spec, &n, &srcs);
      if (s.ok() &&
          (n != *shards || srcs.size() != 1 || srcs[0].record.index != i))
        s = Status::Corrupt(dir + " does not hold shard " + std::to_string(i) +
                            " of " + std::to_string(*shards));
      if (s.ok())
        s = VerifyFile(dir + "/" + srcs[0].record.file, srcs[0].record.bytes,
                       srcs[0].record.crc);
      if (!s.ok()) {
        // An older one may still be good; say why this one was passed over.
        std::fprintf(stderr, "shardps restore: skipping %s: %s\n", dir.c_str(),
                     s.ToString().c_str());
        why = s.ToString();
        continue;
      }
      out->push_back(std::move(srcs[0]));
      found = true;
    }
    if (!found)
      return Status(Code::kCorrupt, "no usable checkpoint of shard " +
                                        std::to_string(i) + " under " +
                                        shard_dirs[i] + " (last: " + why + ")");
  }
  return Status::Ok();
}

// kBusy naming the server when one holds `segment`'s lock (serves it):
// removing the file would not stop that server, so say to stop it first.
// Ok when no one holds it.
Status RefuseIfServed(const std::string& segment) {
  UniqueFd fd(::open(segment.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid() || ::flock(fd.get(), LOCK_SH | LOCK_NB) == 0)
    return Status::Ok();
  if (errno != EWOULDBLOCK) return Status::Ok();
  int32_t pid = 0;
  SegmentHeader h;
  // Relaxed: `h` is a private copy read by pread, and the pid is only shown.
  if (::pread(fd.get(), &h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h)))
    pid = h.owner_pid.load(std::memory_order_relaxed);
  return Status(Code::kBusy,
                segment + " is in use by a running server" +
                    (pid > 0 ? " (pid " + std::to_string(pid) + ")" : "") +
                    ": stop it first (its `shardps serve` or `shardps "
                    "launch`), then remove the segments and restore");
}

}  // namespace

Result<CheckpointSummary> RestoreCheckpoint(const std::string& dir,
                                            const ModelSpec& spec,
                                            const std::string& storage) {
  // Everything is checked before anything is created.
  uint32_t n = 0;
  std::vector<ShardSource> sources;
  if (Exists(dir + "/MANIFEST") || !Exists(dir)) {
    SHARDPS_RETURN_IF_ERROR(ReadManifest(dir, spec, &n, &sources));
    if (sources.size() != n)
      return Status::Corrupt(dir + " holds " + std::to_string(sources.size()) +
                             " of the model's " + std::to_string(n) +
                             " shards");
    for (const ShardSource& src : sources)
      SHARDPS_RETURN_IF_ERROR(VerifyFile(dir + "/" + src.record.file,
                                         src.record.bytes, src.record.crc));
  } else {
    SHARDPS_RETURN_IF_ERROR(PickNewestPerShard(dir, spec, &n, &sources));
  }
  std::vector<CheckpointShard> records;
  for (uint32_t i = 0; i < n; ++i) {
    records.push_back(sources[i].record);
    const std::string target = Segment::PathFor(storage, spec.name, i, n);
    if (Exists(target)) {
      SHARDPS_RETURN_IF_ERROR(RefuseIfServed(target));
      return Status(Code::kBusy, target +
                                     " exists; restore writes new "
                                     "segments only (remove it first)");
    }
  }

  std::vector<std::string> created;
  auto undo = [&](const Status& s) {
    for (const std::string& p : created) ::unlink(p.c_str());
    return s;
  };
  CheckpointSummary summary;
  for (uint32_t i = 0; i < n; ++i) {
    const std::string target = Segment::PathFor(storage, spec.name, i, n);
    SegmentOpenReport report;
    auto seg = Segment::OpenForServing(spec, i, n, target, &report);
    if (!seg.ok()) return undo(seg.status());
    created.push_back(target);
    SegmentHeader& h = (*seg)->mutable_header();
    const uint64_t data = h.file_bytes - h.data_offset;
    const uint64_t meta = h.data_offset - h.versions_offset;
    if (records[i].bytes != data + meta)
      return undo(Status::Corrupt(
          records[i].file + " is " + std::to_string(records[i].bytes) +
          " bytes; this spec's shard needs " + std::to_string(data + meta)));
    const std::string path = sources[i].dir + "/" + records[i].file;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return undo(ErrnoStatus("open " + path, errno));
    char* base = (*seg)->mutable_bytes();
    Status s = ReadInto(fd.get(), base + h.data_offset, data, path);
    if (s.ok()) s = ReadInto(fd.get(), base + h.versions_offset, meta, path);
    if (!s.ok()) return undo(s);
    // Relaxed: the segment is new and only this thread has it mapped;
    // MarkCleanShutdown's release store of clean_shutdown publishes these
    // to whoever opens the segment and sees it clean.
    h.updates_applied.store(records[i].updates_applied,
                            std::memory_order_relaxed);
    h.applied_clock.store(records[i].applied_clock, std::memory_order_relaxed);
    for (size_t w = 0; w < kMaxWorkers; ++w)
      h.worker_clocks[w].store(
          w < records[i].clocks.size() ? records[i].clocks[w] : 0,
          std::memory_order_relaxed);
    (*seg)->MarkCleanShutdown();
    summary.bytes += records[i].bytes;
    summary.sources.push_back(records[i].segment_identity);
    summary.restored.push_back((*seg)->identity());
  }
  summary.dir = dir;
  summary.shards = n;
  return summary;
}

}  // namespace shardps
