#include "common/replica_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "common/futex.h"

namespace shardps {

namespace {

uint64_t FileBytes(uint32_t num_blocks) {
  return sizeof(ReplicaStateHeader) +
         uint64_t{num_blocks} * sizeof(BlockFreshness);
}

bool SameCopy(const ReplicaStateHeader& h, uint64_t spec_hash, uint32_t shard,
              uint32_t shards, uint32_t num_blocks) {
  return std::memcmp(h.magic, kReplicaStateMagic, sizeof(h.magic)) == 0 &&
         h.format_version == kReplicaStateFormatVersion &&
         h.spec_hash == spec_hash && h.shard_index == shard &&
         h.shard_count == shards && h.num_blocks == num_blocks;
}

// Writes a fresh header into a zero-filled file: nothing held, no clock.
void Initialise(ReplicaStateHeader& h, uint64_t spec_hash, uint32_t shard,
                uint32_t shards, uint32_t num_blocks) {
  h.format_version = kReplicaStateFormatVersion;
  h.num_blocks = num_blocks;
  h.spec_hash = spec_hash;
  h.shard_index = shard;
  h.shard_count = shards;
  h.shard_applied_clock.store(-1, std::memory_order_relaxed);
  h.held_clock.store(-1, std::memory_order_relaxed);
  // The magic last: a reader that sees it sees a complete header.
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(h.magic, kReplicaStateMagic, sizeof(h.magic));
}

}  // namespace

std::string ReplicaState::PathFor(const std::string& storage,
                                  const std::string& model, uint32_t shard,
                                  uint32_t shards) {
  return storage + "/" + model + "/shard-" + std::to_string(shard) + "-of-" +
         std::to_string(shards) + ".fresh";
}

ReplicaState::ReplicaState(std::string path, Mapping map)
    : path_(std::move(path)), map_(std::move(map)) {
  header_ = reinterpret_cast<ReplicaStateHeader*>(map_.data());
  blocks_ = reinterpret_cast<BlockFreshness*>(map_.data() +
                                              sizeof(ReplicaStateHeader));
}

Result<std::unique_ptr<ReplicaState>> ReplicaState::OpenForWriting(
    const std::string& path, uint64_t spec_hash, uint32_t shard,
    uint32_t shards, uint32_t num_blocks) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(Code::kIoError, "open " + path, errno);
  SHARDPS_RETURN_IF_ERROR(CheckPrivateFile(fd.get(), path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return ErrnoStatus(Code::kIoError, "fstat " + path, errno);
  const uint64_t bytes = FileBytes(num_blocks);
  bool reuse = false;
  if (static_cast<uint64_t>(st.st_size) == bytes) {
    ReplicaStateHeader h;
    reuse = ::pread(fd.get(), &h, sizeof(h), 0) ==
                static_cast<ssize_t>(sizeof(h)) &&
            SameCopy(h, spec_hash, shard, shards, num_blocks);
  }
  if (!reuse && (::ftruncate(fd.get(), 0) != 0 ||
                 ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0))
    return ErrnoStatus(Code::kIoError, "ftruncate " + path, errno);
  auto map = Mapping::Map(fd.get(), bytes, /*writable=*/true,
                          /*populate=*/true);
  if (!map.ok()) return map.status().WithContext(path);
  std::unique_ptr<ReplicaState> state(
      new ReplicaState(path, std::move(map).value()));
  if (!reuse) Initialise(*state->header_, spec_hash, shard, shards, num_blocks);
  state->header_->replica_pid.store(static_cast<int32_t>(::getpid()),
                                    std::memory_order_release);
  return state;
}

Result<std::unique_ptr<ReplicaState>> ReplicaState::OpenReadOnly(
    const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("fstat " + path, errno);
  ReplicaStateHeader h;
  if (static_cast<uint64_t>(st.st_size) < sizeof(h) ||
      ::pread(fd.get(), &h, sizeof(h), 0) != static_cast<ssize_t>(sizeof(h)) ||
      std::memcmp(h.magic, kReplicaStateMagic, sizeof(h.magic)) != 0)
    return Status::Corrupt(path + " is not a host replica's state file");
  if (h.format_version != kReplicaStateFormatVersion)
    return Status::Corrupt(path + " has replica state format " +
                           std::to_string(h.format_version) + ", expected " +
                           std::to_string(kReplicaStateFormatVersion));
  if (static_cast<uint64_t>(st.st_size) != FileBytes(h.num_blocks))
    return Status::Corrupt(path + " is " + std::to_string(st.st_size) +
                           " bytes; its header says " +
                           std::to_string(FileBytes(h.num_blocks)));
  auto map = Mapping::Map(fd.get(), FileBytes(h.num_blocks),
                          /*writable=*/false, /*populate=*/false);
  if (!map.ok()) return map.status().WithContext(path);
  return std::unique_ptr<ReplicaState>(
      new ReplicaState(path, std::move(map).value()));
}

SegmentId ReplicaState::source() const {
  return SegmentId{header_->source_id_hi.load(std::memory_order_acquire),
                   header_->source_id_lo.load(std::memory_order_acquire)};
}

bool ReplicaState::WriterAlive() const {
  // The replica holds its copy's exclusive flock while it runs (a dead
  // one's lock went with it): no pid to be reused, no zombie to mistake.
  const std::string suffix = ".fresh";
  if (path_.size() <= suffix.size()) return false;
  const std::string copy =
      path_.substr(0, path_.size() - suffix.size()) + ".seg";
  UniqueFd fd(::open(copy.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd.get(), LOCK_UN);
    return false;
  }
  return errno == EWOULDBLOCK;
}

Status ReplicaState::WaitHeldClock(
    int64_t clock, std::chrono::steady_clock::time_point deadline) const {
  // Sleep in slices so a replica that died (and so never bumps again) costs
  // at most one slice before the caller's deadline is honoured.
  constexpr std::chrono::milliseconds kSlice{50};
  for (;;) {
    const uint32_t seen = header_->events.load(std::memory_order_acquire);
    if (header_->held_clock.load(std::memory_order_acquire) >= clock)
      return Status::Ok();
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    FutexWait(header_->events, seen,
              std::min<std::chrono::nanoseconds>(deadline - now, kSlice));
  }
  return Status(
      Code::kTimeout,
      "host replica of shard " + std::to_string(header_->shard_index) +
          " holds clock " +
          std::to_string(header_->held_clock.load(std::memory_order_acquire)) +
          ", not yet " + std::to_string(clock) + " (" + path_ + "; replica " +
          (WriterAlive() ? "running: it is behind"
                         : "not running: start `shardps replica`") +
          ")");
}

}  // namespace shardps
