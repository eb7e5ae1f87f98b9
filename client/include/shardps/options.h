// ClientOptions: every knob of shardps::Client, with its default and cost.
#ifndef SHARDPS_OPTIONS_H_
#define SHARDPS_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace shardps {

// Precision of pushed gradients on the wire. The servers widen 16-bit
// gradients back to float32 before applying them.
enum class WireDType {
  kFloat32,   // exact; zero-copy from the caller's buffer
  kFloat16,   // IEEE binary16: half the bytes; ~3 significant digits, range
              // +-65504 (larger values become infinity: scale your loss)
  kBFloat16,  // bfloat16: half the bytes; float32's range, ~2-3 digits
};

struct ClientOptions {
  // Deadline of every request, from the call until all shards answered. A
  // shard that misses it fails the call with kTimeout and its connection is
  // reset (requests still in flight to it fail with kUnavailable), which also
  // releases any gradient buffer ZeroMQ still held. Default 30 s: long enough
  // for a 1 GiB tensor on a slow link, short enough that nothing hangs.
  std::chrono::milliseconds request_timeout{30000};

  // How long Connect waits for every shard to answer Hello.
  std::chrono::milliseconds connect_timeout{10000};

  // Refuse a cluster whose spec hash differs (e.g. SpecHash(my_spec)).
  // Unset: accept whatever the shards agree on.
  std::optional<uint64_t> expect_spec_hash;

  // Tune glibc's malloc (process-wide, once) so the block-sized buffers
  // ZeroMQ allocates for every received frame are recycled rather than
  // returned to the kernel and faulted back in: 10-20x faster large pulls on
  // VMs. It keeps up to 1 GiB of freed memory in the process for reuse. Turn
  // off if your process tunes malloc itself.
  bool tune_malloc = true;

  // Precision of Push/PushPull gradients on the wire. 16-bit types halve
  // the traffic at the cost of one conversion pass (a copy) per push; pulls
  // always return float32.
  WireDType push_dtype = WireDType::kFloat32;

  // Identifies this client to the servers (stats, exactly-once windows).
  // 0 picks a random id. Two live clients must never share one.
  uint64_t client_id = 0;

  // Exactly-once pushes. Each Push/PushPull carries a per-shard sequence
  // number; when a shard does not answer (it restarts, the connection drops,
  // or attempt_timeout passes) the client sends the same push again until
  // request_timeout, and the shard applies it once however many copies
  // arrive, also across a kill -9 and restart. Costs: at most 64 pushes per
  // shard unanswered at a time (more wait in the client), and the shard
  // saves each block before updating it (one copy of the block and its
  // optimizer state; see docs/reliability.md). false: a push is sent once,
  // and an outage fails it at once (at-least-once if you retry it).
  bool exactly_once = true;

  // How long one attempt of a retriable call (exactly-once pushes, pulls,
  // clocks) may go unanswered before it is sent again, within
  // request_timeout. Keep it above your largest transfer's time.
  std::chrono::milliseconds attempt_timeout{10000};

  // This trainer's worker index, 0..workers-1, in a model whose spec sets
  // [consistency] workers (bsp, ssp:S, or async with clocks for `status`).
  // Every worker index must be used by exactly one live client: Connect
  // fails with kBusy while another holds it. -1: not a worker
  // (tools, evaluators): its calls never wait for clocks, and it may not
  // push to a bsp model or call Clock.
  int worker = -1;

  // At most this many blocks per message when a tensor's Push, PushPull or
  // Pull goes to a shard; 0 (default): one message per shard. Messages go
  // out in block order, so a shard receives, applies and (with bsp
  // `apply = "block"`) streams to host replicas the first blocks while the
  // later ones are still on the wire: set it (e.g. 4) when trainers read
  // through host replicas (docs/multihost.md). Each message is a request
  // of its own (exactly-once numbered, retried alone).
  uint32_t blocks_per_message = 0;

  // Host replica (`shardps replica --cluster C --spec S --storage
  // DIR`): the DIR where this host's replica keeps its copies of the shards
  // that are not on this host (DIR/<model>/shard-<i>-of-<n>.seg and .fresh).
  // Set, it lets ModelView::Open(client) read those shards through the
  // copies, and in bsp makes Clock() complete only once the copies hold the
  // clock's model. Empty (default): no replica; a ModelView needs every
  // shard on this host.
  std::string replica_storage;

  // Whether Connect may find shards' segments on this host (the default):
  // local_segments() then names each segment that opens here and is the
  // one its shard serves. false treats every shard as remote
  // (local_segments() all empty), so that a single-host test or benchmark
  // reads through a replica as another host would.
  bool map_local_segments = true;

  // CURVE (docs/security.md): Z85 keys, 40 characters each. To talk to
  // servers started with --curve-secret-key, set this client's key pair
  // (its public key must be in the servers' authorized keys) and the
  // servers' public key. Every connection is then authenticated and
  // encrypted, at the cost of a handshake per connection and encryption of
  // every frame. Empty: plain connections. curve_server_key may stay empty
  // when the cluster file names the servers' key (server_key).
  std::string curve_server_key;
  std::string curve_public_key;
  std::string curve_secret_key;

  // Serves this client's metrics (request counts and latencies by op,
  // retries, timeouts, bytes, plus the process's process_* series) in the
  // Prometheus text format at http://ADDR/metrics: "PORT" for loopback,
  // "HOST:PORT" as written, port 0 picks a free one (Client::metrics_url).
  // Empty (default): no endpoint; Client::MetricsText still works, for a
  // trainer that serves its own. docs/metrics.md lists the series.
  std::string metrics_listen;
};

}  // namespace shardps

#endif  // SHARDPS_OPTIONS_H_
