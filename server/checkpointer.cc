#include "server/checkpointer.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "common/checkpoint.h"
#include "common/posix_file.h"

namespace shardps {

namespace {

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Sorts by time as text: 20261125T101500.123Z.
std::string UtcStamp(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%04d%02d%02dT%02d%02d%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(Code::kIoError, "mkdir " + dir + ": " + ec.message());
  return Status::Ok();
}

// A `.partial-<pid>` left by a writer that died.
bool AbandonedPartial(const std::string& name) {
  const size_t at = name.find(".partial-");
  if (at == std::string::npos) return false;
  const long pid = std::atol(name.c_str() + at + 9);
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const std::string unit = end != nullptr ? end : "";
  double ms = -1;
  if (unit == "ms") ms = v;
  if (unit == "s" || unit.empty()) ms = v * 1e3;
  if (unit == "m") ms = v * 60e3;
  if (unit == "h") ms = v * 3600e3;
  if (text.empty() || end == text.c_str() || ms < 0 || ms > 1e12)
    return Status(
        Code::kInvalidArgument,
        "'" + text + "' is not a duration: use e.g. 500ms, 30s, 10m or 2h");
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

Checkpointer::Checkpointer(std::string segment_path, uint32_t shard,
                           uint32_t shards, CheckpointOptions options)
    : segment_path_(std::move(segment_path)),
      options_(std::move(options)),
      shard_dir_(options_.root + "/shard-" + std::to_string(shard) + "-of-" +
                 std::to_string(shards)) {}

Checkpointer::~Checkpointer() { Stop(false); }

Status Checkpointer::Start() {
  if (options_.every.count() <= 0)
    return Status(Code::kInvalidArgument,
                  "--checkpoint-every must be a positive duration");
  if (options_.keep == 0)
    return Status(Code::kInvalidArgument, "--checkpoint-keep must be >= 1");
  SHARDPS_RETURN_IF_ERROR(MakeDirs(shard_dir_));
  auto done_event = EventFd::Create();
  if (!done_event.ok()) return done_event.status();
  done_event_ = std::move(done_event).value();
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void Checkpointer::Stop(bool final) {
  if (thread_.joinable()) {
    {
      MutexLock lock(mu_);
      stopping_ = true;
    }
    cv_.NotifyOne();
    thread_.join();
    if (final) {
      Result<std::string> dir = WriteOne();
      if (!dir.ok())
        std::fprintf(stderr, "shardps serve: final checkpoint failed: %s\n",
                     dir.status().ToString().c_str());
    }
  }
}

void Checkpointer::Request(uint64_t token) {
  {
    MutexLock lock(mu_);
    requests_.push_back(token);
  }
  cv_.NotifyOne();
}

std::vector<Checkpointer::Finished> Checkpointer::TakeFinished() {
  done_event_.Clear();
  MutexLock lock(mu_);
  std::vector<Finished> out;
  out.swap(finished_);
  return out;
}

void Checkpointer::Loop() {
  for (;;) {
    std::vector<uint64_t> asked;
    {
      MutexLock lock(mu_);
      const auto period_end = std::chrono::steady_clock::now() + options_.every;
      while (!stopping_ && requests_.empty()) {
        // Period over: a periodic checkpoint.
        if (!cv_.WaitUntil(mu_, period_end)) break;
      }
      if (stopping_) return;
      asked.swap(requests_);
    }
    // One checkpoint answers every request that arrived before it started.
    Result<std::string> dir = WriteOne();
    if (!dir.ok())
      // The server goes on serving; the next period tries again.
      std::fprintf(stderr, "shardps serve: checkpoint failed: %s\n",
                   dir.status().ToString().c_str());
    MutexLock lock(mu_);
    for (uint64_t token : asked) finished_.push_back({token, dir});
    if (!asked.empty()) done_event_.Signal();
  }
}

Result<std::string> Checkpointer::WriteOne() {
  const auto start = std::chrono::steady_clock::now();
  int64_t stamp_ms;
  {
    // Each checkpoint's name sorts after the one this process wrote last,
    // even in the same millisecond (a request, or the final one, right
    // after a periodic one) or after the clock was stepped back: a name
    // taken already fails the write (kBusy), and one that sorts before the
    // others is pruned first and never restored.
    MutexLock lock(stamp_mu_);
    stamp_ms = std::max(UnixMs(), last_stamp_ms_ + 1);
    last_stamp_ms_ = stamp_ms;
  }
  auto done = WriteShardCheckpoint(segment_path_,
                                   shard_dir_ + "/" + UtcStamp(stamp_ms));
  if (!done.ok()) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    return done.status();
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  last_ok_unix_ms_.store(UnixMs(), std::memory_order_relaxed);
  last_duration_us_.store(static_cast<int64_t>(secs * 1e6),
                          std::memory_order_relaxed);
  written_.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "shardps serve: checkpoint %s (%llu bytes, %.2f s)\n",
               done->dir.c_str(), static_cast<unsigned long long>(done->bytes),
               secs);
  Prune();
  return done->dir;
}

void Checkpointer::Prune() {
  std::vector<std::string> done;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(shard_dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (AbandonedPartial(name)) {
      std::filesystem::remove_all(e.path(), ec);
    } else if (name.find(".partial-") == std::string::npos) {
      done.push_back(name);
    }
  }
  std::sort(done.begin(), done.end());
  for (size_t i = 0; i + options_.keep < done.size(); ++i) {
    std::filesystem::remove_all(shard_dir_ + "/" + done[i], ec);
    if (ec)
      std::fprintf(stderr,
                   "shardps serve: cannot remove old checkpoint %s: %s\n",
                   done[i].c_str(), ec.message().c_str());
  }
}

}  // namespace shardps
