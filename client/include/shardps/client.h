// shardps::Client: push gradients to and pull weights from a sharded model.
//
//   auto client = shardps::Client::Connect("cluster.toml");
//   if (!client.ok()) { ...client.status().ToString()... }
//   std::vector<float> grad(n), weights(n);
//   shardps::Handle push = (*client)->Push("fc1.weight", grad.data(), n);
//   shardps::Handle pull = (*client)->Pull("fc1.weight", weights.data(), n);
//   if (Status s = push.Wait(); !s.ok()) ...
//
// A tensor call is split per shard and sent to all shards at once; its handle
// completes when every shard has answered (or the first error). Calls are
// asynchronous: many may be in flight, from any number of threads.
//
// Threading: one background I/O thread owns the sockets; the methods below
// only enqueue work and may be called from any thread concurrently.
#ifndef SHARDPS_CLIENT_H_
#define SHARDPS_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shardps/batch_queue.h"
#include "shardps/cluster.h"
#include "shardps/layout.h"
#include "shardps/options.h"
#include "shardps/shard_stats.h"
#include "shardps/status.h"

namespace shardps {

namespace client_internal {
class CallState;
class HandleAccess;
}  // namespace client_internal

// How one shard's share of a Push or PushPull ended (Handle::shard_outcomes).
struct ShardOutcome {
  enum class State : uint8_t {
    kApplied,     // the shard acknowledged it: applied exactly once
    kNotApplied,  // never sent, or refused by the shard before any change
    kUnknown,     // no answer (timeout, lost connection, client closed), or
                  // refused after a retry: it may or may not be applied
  };
  uint32_t shard = 0;
  State state = State::kUnknown;
  Status status;  // OK when applied; otherwise what this shard's part got
};

// A waitable result of an asynchronous call. Copyable; all copies share one
// call. Thread-safe. [[nodiscard]]: a dropped handle loses the call's error
// and, for a zero-copy push, the only signal that the buffer is free again.
// Only the client library makes handles of calls.
class [[nodiscard]] Handle {
 public:
  Handle() = default;  // an already-failed handle (kInvalidArgument)

  // Waits until the call is done and returns its status: OK, or the first
  // error any shard reported. Never blocks forever: every call has the
  // client's request deadline.
  Status Wait() const;

  // Like Wait, but gives up after `timeout` with kTimeout while the call goes
  // on; wait again later. A zero timeout polls.
  Status WaitFor(std::chrono::milliseconds timeout) const;

  bool Done() const;

  // Push/PushPull of a tensor, once Done(): how each shard that holds part
  // of the tensor took its share, by shard. A failed push split over
  // several shards may be applied on some and not others; Wait()'s message
  // then names both (retrying the whole push applies it twice where it was
  // applied). Empty before Done() and for other calls.
  std::vector<ShardOutcome> shard_outcomes() const;

 private:
  friend class client_internal::HandleAccess;
  explicit Handle(std::shared_ptr<client_internal::CallState> state)
      : state_(std::move(state)) {}

  std::shared_ptr<client_internal::CallState> state_;
};

// A sparse table of the model (see TableSpec).
struct TableInfo {
  std::string name;
  uint64_t dim = 0;       // floats per row
  uint64_t capacity = 0;  // rows over all shards
};

// What one shard said when probed (Client::Probe).
struct ShardProbe {
  std::string model;
  uint64_t spec_hash = 0;
  uint32_t shard = 0;    // the index it serves
  uint32_t shards = 0;   // of this many
  std::string hostname;  // for people, never for locality
};

class Client {
 public:
  // Connects to every shard and checks with Hello that they serve one model:
  // same spec hash, shard count and indices as listed. Errors: kUnavailable
  // when a shard does not answer within connect_timeout, kSpecMismatch when
  // shards disagree or differ from options.expect_spec_hash or the cluster
  // file's spec_hash, kInvalidArgument for incomplete or malformed CURVE
  // keys (including a cluster file naming a server_key when the options have
  // no client key pair). A client whose key the servers do not accept gets
  // no answer at all: Connect fails after connect_timeout. kBusy when
  // options.worker is held by another live client (its address and since
  // when are in the message; docs/consistency.md).
  static Result<std::unique_ptr<Client>> Connect(const ClusterInfo& cluster,
                                                 ClientOptions options = {});
  static Result<std::unique_ptr<Client>> Connect(
      const std::string& cluster_file, ClientOptions options = {});

  // One Hello round trip to the shard at `endpoint` (tcp:// or ipc://),
  // whichever shard of whichever model it serves: what a health check
  // needs (`shardps health`). Waits at most options.connect_timeout.
  // Uses options' CURVE keys (curve_server_key must be set with a key pair).
  // Errors: kInvalidArgument for a bad endpoint or CURVE keys, kTimeout
  // when the shard does not answer in time, the shard's own error when it
  // answers with one, kBadMessage when its answer describes no model.
  // Blocks the calling thread; thread-safe.
  static Result<ShardProbe> Probe(const std::string& endpoint,
                                  ClientOptions options = {});

  // Fails calls still in flight with kUnavailable and stops the I/O thread.
  // Then gives back this client's exactly-once slot on every shard where
  // every push it sent was answered, waiting at most 1 s (or
  // request_timeout) for the shards; a shard with a push left unanswered
  // keeps the slot until no retry of it can arrive (request_timeout + 10 s
  // after the last push; docs/reliability.md).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ModelLayout& layout() const;
  const std::string& model() const;
  uint64_t spec_hash() const;
  // Per shard, the segment path it reported if the file there opens on this
  // host (read-only, no lock) and carries the identity the shard reported
  // at Connect; else an empty string (another host, a file recreated at
  // that path, or an older server; all empty with
  // ClientOptions::map_local_segments false). What a ModelView needs. Never
  // decided by hostname.
  std::vector<std::string> local_segments() const;

  // Sends `grad` (the whole tensor, `count` floats) to be applied by each
  // shard's optimizer. Zero-copy: REQUIRES `grad` stays alive and unchanged
  // until the handle is done. A wrong `count` or unknown tensor fails the
  // handle at once (kSizeMismatch, kNotFound).
  // With ClientOptions::exactly_once (the default) a shard that restarts or
  // does not answer gets the same push again until it acknowledges it or
  // request_timeout passes, and applies it once: OK means applied exactly
  // once; an error means it may or may not have been (see
  // docs/reliability.md).
  Handle Push(std::string_view tensor, const float* grad, size_t count);

  // Fetches the whole tensor into `out` (`count` floats). Each block is a
  // consistent snapshot; blocks may be from different moments. REQUIRES:
  // `out` stays alive and unread until the handle is done.
  Handle Pull(std::string_view tensor, float* out, size_t count);

  // Push, then return each block as it is right after this push's update.
  Handle PushPull(std::string_view tensor, const float* grad, float* out,
                  size_t count);

  // Sparse tables. Rows of `table` are keyed by any uint64 id and live on
  // shard JumpHash(id, shards); a missing row is created with the table's
  // init. `grads` and `out` hold n rows of dim floats, row-major, in the
  // order of `ids`.
  //
  // PushRows applies each row's optimizer once per call, with the summed
  // gradient of an id given several times. PullRows fills `out`.
  // Buffers: with one shard, ids and grads go zero-copy and must stay alive
  // until the handle is done; with several they are copied per shard (one
  // gather per call). `out` must stay alive until the handle is done.
  // Errors: kNotFound (unknown table), kInvalidArgument (n == 0 or null
  // buffers), kResourceExhausted (a shard's rows are all used: nothing of
  // that shard's part was applied).
  Handle PushRows(std::string_view table, const uint64_t* ids, size_t n,
                  const float* grads);
  Handle PullRows(std::string_view table, const uint64_t* ids, size_t n,
                  float* out);
  const std::vector<TableInfo>& tables() const;

  // Sends one batch to queue `queue` hosted by shard `shard` (`shardps serve
  // --queue`). The handle completes when the batch is in the queue: while
  // the queue is full it waits (backpressure), up to request_timeout.
  // kClosed once the consumer closed the queue; kNotFound for a queue the
  // shard does not host. Zero-copy: `features` and `labels` must stay alive
  // until the handle is done.
  Handle QueuePush(uint32_t shard, std::string_view queue,
                   const BatchShape& shape, const float* features,
                   const float* labels);

  // Ends this worker's current clock on every shard (ClientOptions::worker
  // must be set) and moves it to the next: later Push/Pull calls carry the
  // new clock. The handle completes when the worker may go on:
  //   async  at once;
  //   bsp    when every worker has called Clock for this clock and the
  //          shards have applied the summed (or mean) gradient, so the next
  //          Pull, or a ModelView read, sees exactly that model;
  //          With ClientOptions::replica_storage set and some shard not
  //          on this host, also only once this host's replica copies of
  //          those shards hold that clock's model (their held_clock), so a
  //          ModelView::Open(client) read after Wait() sees exactly it.
  //          A replica that does not catch up by request_timeout fails the
  //          handle with kTimeout saying whether it is running (not: start
  //          `shardps replica` on this host); kNotFound when no replica
  //          ever ran under replica_storage. Either way the shards have the
  //          clock: do not call Clock() again for it.
  //   ssp:S  when no worker is more than S clocks behind the new clock.
  // A straggler longer than the spec's consistency.wait_timeout fails it
  // with kTimeout naming the workers behind. Call it from the thread that
  // issues this worker's pushes, after them: their order decides which
  // clock a push belongs to.
  Handle Clock();
  // Clock() calls so far (resumed from the shards after a restart).
  int64_t clock() const;
  // "async", "bsp" or "ssp:S", as the shards run.
  const std::string& consistency() const;

  // Asks every shard for its counters (blocking, up to request_timeout).
  Result<std::vector<ShardStats>> Stats();

  // Asks every shard to checkpoint itself now into its own --checkpoint-dir
  // (on the shard's host, e.g. a shared durable mount) and returns the
  // directories written, by shard. Blocking, up to request_timeout; a
  // checkpoint still being written then completes anyway. Errors:
  // kInvalidArgument from a shard started without --checkpoint-dir, or the
  // shard's write error. Not retried (it would write another checkpoint).
  Result<std::vector<std::string>> Checkpoint();

  // Where ClientOptions::metrics_listen serves /metrics
  // (http://HOST:PORT/metrics); empty when it is not set.
  const std::string& metrics_url() const;
  // This client's series (shardps_client_*, labelled with the model and
  // the worker) in the Prometheus text exposition format, to serve from a
  // trainer's own endpoint or to log. Thread-safe; never blocks calls.
  std::string MetricsText() const;

 private:
  // ModelView::Open(const Client&) reads which segments are local and the
  // identities the shards reported for them.
  friend class ModelView;
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardps

#endif  // SHARDPS_CLIENT_H_
