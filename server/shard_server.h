// ShardServer: one shard of a model, served over ZeroMQ from its segment.
//
// Threads: one frontend thread owns the ROUTER socket; it parses and
// validates every request and answers Hello/Pull/Stats itself. Each block of
// a Push/PushPull is applied by its one writer: the frontend for writer 0's
// blocks, an update-pool thread for the others, which hand finished requests
// back through a CompletionQueue so the frontend can send the replies. A
// request that fails validation is answered with an error and counted; nothing
// a client sends can stop the server.
//
// Thread-safety: Start/Stop/endpoint/open_report from any one thread.
#ifndef SHARDPS_SERVER_SHARD_SERVER_H_
#define SHARDPS_SERVER_SHARD_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "common/segment.h"
#include "server/checkpointer.h"
#include "server/queue_service.h"
#include "server/test_faults.h"
#include "shardps/model_spec.h"
#include "shardps/status.h"

namespace shardps {

struct ServerOptions {
  ModelSpec spec;
  uint32_t shard = 0;
  uint32_t shards = 1;
  // ZeroMQ endpoint to bind; "tcp://127.0.0.1:*" picks a free port.
  std::string listen = "tcp://127.0.0.1:*";
  // Writers applying updates: the frontend plus threads-1 pool threads. More
  // apply large pushes in parallel, each costing a core while busy, and add a
  // thread hand-off to their blocks' requests. Default 1: the frontend does
  // everything, which suits small machines and small requests best.
  uint32_t threads = 1;
  // Overrides <spec.storage>/<model>/shard-I-of-N.seg when non-empty.
  std::string segment_path;
  // Frames larger than this make ZeroMQ drop the connection before the
  // message is buffered (memory protection); smaller but wrong-sized frames
  // get an error reply. 0 = twice the block size plus 64 KiB.
  uint64_t max_frame_bytes = 0;
  // Batch queues to host for remote producers (QueuePush), created beside
  // the segment as <dir>/<name>.queue.
  std::vector<QueueOption> queues;
  // For tests only (see TestFaults): every switch is off by default.
  TestFaults test_faults;
  // Connections served at once; requests on more are refused with
  // kResourceExhausted until one disconnects. Bounds the server's memory
  // together with the per-connection receive limit (kPeerRecvHwm messages
  // of at most max_frame_bytes each).
  uint32_t max_clients = 1024;
  // Reply payload (pulled blocks and rows) the server holds for clients
  // that have not read it yet: per connection and in total. A Pull,
  // PushPull or PullRows whose reply would pass either bound is refused
  // with kBusy and changes nothing. Each bound is raised to the largest
  // single reply this shard can make, so that reply always fits a
  // connection that holds nothing. See docs/reliability.md for the
  // server's memory bound.
  uint64_t max_reply_bytes_per_client = uint64_t{256} << 20;
  uint64_t max_reply_bytes = uint64_t{1} << 30;
  // Periodic checkpoints of this shard (see Checkpointer); off when
  // checkpoint.root is empty.
  CheckpointOptions checkpoint;

  // CURVE (docs/security.md). A non-empty Z85 secret key encrypts every
  // connection and admits only clients whose public key is listed in
  // `authorized_keys` (Z85; must then be non-empty). Costs one handshake per
  // connection plus symmetric encryption of every frame.
  std::string curve_secret_key;
  std::vector<std::string> authorized_keys;
  // Without CURVE, a `listen` endpoint other than loopback/ipc is refused
  // unless this is set (then a warning is printed).
  bool allow_insecure_bind = false;
  // Serves Prometheus metrics at http://ADDR/metrics when set: "PORT" for
  // loopback, "HOST:PORT" as written (ParseMetricsListen; port 0 picks
  // one). Off by default. See docs/metrics.md.
  std::string metrics_listen;
};

class ShardServer {
 public:
  // Opens (or creates) the segment, binds, starts the pool and frontend.
  // Errors: those of Segment::OpenForServing, kIoError for a bind failure,
  // kInvalidArgument for bad CURVE keys or an insecure non-loopback bind.
  static Result<std::unique_ptr<ShardServer>> Start(ServerOptions options);

  // Stops accepting requests, finishes and answers those in flight, stops
  // the pool and marks the segment cleanly shut down. Idempotent.
  void Stop();
  ~ShardServer();

  // Replaces the CURVE authorized keys (Z85). New handshakes are judged by
  // the new list at once; a connection admitted under a key that is no
  // longer listed gets kPermissionDenied from its next request. On
  // kInvalidArgument (CURVE is off, a key is not Z85, the list is empty)
  // the old list stays. Thread-safe.
  Status ReloadAuthorizedKeys(const std::vector<std::string>& keys);

  // The bound endpoint with any wildcard port resolved.
  const std::string& endpoint() const;
  // http://HOST:PORT/metrics, or empty when metrics are off.
  const std::string& metrics_url() const;
  const std::string& segment_path() const;
  const SegmentOpenReport& open_report() const;
  // Where hosted queue `name` lives, for consumers on this host.
  std::string queue_path(const std::string& name) const;

  class Impl;

 private:
  explicit ShardServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_SHARD_SERVER_H_
