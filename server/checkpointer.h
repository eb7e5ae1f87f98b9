// Checkpointer: a shard server's own periodic checkpoints
// (`serve --checkpoint-dir DIR --checkpoint-every T --checkpoint-keep K`).
//
// Every T, a background thread writes a checkpoint of this shard to
// DIR/shard-I-of-N/<UTC time>/ (WriteShardCheckpoint: new files, fsync,
// rename into place, so it suits write-once mounts), then deletes all but
// the newest K there. One more is written at a clean shutdown, after the
// last update, so it is exact. `shardps restore --from DIR` takes each
// shard's newest.
//
// A client can also ask for one now (the Checkpoint op, `shardps checkpoint
// --remote`): Request queues it for the same thread, and the result comes
// back through TakeFinished when done_fd() is readable, so the server's
// frontend never waits for the disk.
//
// The copy reads the segment like any reader (seqlocks), so pushes go on
// while it runs; it costs one sequential read of the segment per period.
//
// Thread-safety: Start/Stop from the owner; Request, TakeFinished and
// done_fd from any one thread (the frontend).
#ifndef SHARDPS_SERVER_CHECKPOINTER_H_
#define SHARDPS_SERVER_CHECKPOINTER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "common/event_fd.h"
#include "common/mutex.h"
#include "shardps/status.h"

namespace shardps {

struct CheckpointOptions {
  std::string root;  // DIR; empty: no periodic checkpoints
  std::chrono::milliseconds every{0};
  uint32_t keep = 3;
};

// "500ms", "30s", "10m", "2h" or a plain number of seconds.
Result<std::chrono::milliseconds> ParseDuration(const std::string& text);

class Checkpointer {
 public:
  Checkpointer(std::string segment_path, uint32_t shard, uint32_t shards,
               CheckpointOptions options);
  ~Checkpointer();  // Stop(false)
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Creates DIR/shard-I-of-N (kIoError if it cannot) and starts the timer.
  Status Start();
  // Stops the timer; with `final`, writes one last checkpoint first.
  // REQUIRES for an exact final checkpoint: the server stopped updating.
  void Stop(bool final) EXCLUDES(mu_, stamp_mu_);

  // Writes one checkpoint now and prunes; returns its directory.
  Result<std::string> WriteOne() EXCLUDES(stamp_mu_);

  // A checkpoint asked for by a client, identified by `token`.
  void Request(uint64_t token) EXCLUDES(mu_);
  struct Finished {
    uint64_t token;
    Result<std::string> dir;
  };
  // Requests done since the last call; clears done_fd().
  std::vector<Finished> TakeFinished() EXCLUDES(mu_);
  int done_fd() const { return done_event_.fd(); }

  const std::string& shard_dir() const { return shard_dir_; }

  // For /metrics; any thread. The last successful checkpoint's end (Unix
  // ms; 0 none yet) and duration, and checkpoints written and failed.
  struct Record {
    int64_t last_ok_unix_ms = 0;
    double last_duration_s = 0;
    uint64_t written = 0, failed = 0;
  };
  Record record() const {
    return {
        last_ok_unix_ms_.load(std::memory_order_relaxed),
        static_cast<double>(last_duration_us_.load(std::memory_order_relaxed)) *
            1e-6,
        written_.load(std::memory_order_relaxed),
        failures_.load(std::memory_order_relaxed)};
  }

 private:
  void Loop() EXCLUDES(mu_, stamp_mu_);
  void Prune();

  const std::string segment_path_;
  const CheckpointOptions options_;
  const std::string shard_dir_;
  std::thread thread_;
  Mutex mu_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<uint64_t> requests_ GUARDED_BY(mu_);
  std::vector<Finished> finished_ GUARDED_BY(mu_);
  Mutex stamp_mu_;  // WriteOne may run on two threads
  int64_t last_stamp_ms_ GUARDED_BY(stamp_mu_) = 0;  // newest name's
  EventFd done_event_;
  std::atomic<int64_t> last_ok_unix_ms_{0}, last_duration_us_{0};
  std::atomic<uint64_t> written_{0}, failures_{0};
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_CHECKPOINTER_H_
