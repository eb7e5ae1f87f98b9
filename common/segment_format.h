// The on-memory format of a shard segment: <storage>/<model>/shard-I-of-N.seg.
//
// Layout (all offsets from the start of the file):
//   [0, 4096)            SegmentHeader: an immutable part covered by
//                        header_crc, then mutable counters (atomics)
//   [directory_offset)   TensorEntry[num_tensors] (every tensor of the model,
//                        so a reader learns the whole model from any shard),
//                        then BlockEntry[num_blocks] (this shard's blocks),
//                        then TableEntry[num_tables] (every sparse table);
//                        immutable, covered by directory_crc
//   [versions_offset)    BlockVersion[num_blocks]: one seqlock per block, each
//                        on its own cache line so pool threads updating
//                        neighbouring blocks do not share lines
//   [table_counters_offset) TableCounters[num_tables]: rows in use, refusals
//   [clients_offset)     ClientSlot[dedupe_slots]: which client owns which
//                        exactly-once window column, and its windows for
//                        row pushes and queue pushes
//   [dedupe_offset)      DedupeWindow[num_blocks][dedupe_slots]: per block
//                        and client, the push sequence numbers applied
//   [data_offset)        block data, each block page-aligned and a whole
//                        number of pages long (2 MiB-aligned start when the
//                        data is large, so huge pages can back it), each
//                        followed by its optimizer state slots, then (bsp
//                        models) its gradient accumulator, all the same size;
//                        then per table: its row index (RowSlot[index_slots],
//                        open addressing), its rows (capacity x dim floats,
//                        in order of creation), then its optimizer state
//                        slots, each as large as the rows
//
// Shared between processes: every mutable field is a lock-free std::atomic
// (static_asserted below); everything else is written once at creation.
// Integers are little-endian (x86-64/aarch64 only).
#ifndef SHARDPS_COMMON_SEGMENT_FORMAT_H_
#define SHARDPS_COMMON_SEGMENT_FORMAT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/segment_id.h"

namespace shardps {

inline constexpr char kSegmentMagic[8] = {'S', 'H', 'A', 'R', 'D', 'P', 'S', 0};
// 2: optimizer state beside each block's weights.
// 3: bsp accumulators, per-block clocks, the shard's applied clock, sparse
//    tables.
// 4: exactly-once push windows (client slots, per-block dedupe windows).
// 5: a random 128-bit identity per segment (SegmentHeader::identity), so a
//    journal, checkpoint or client can tell it from a segment recreated at
//    the same path in the same millisecond; ClientSlot carries its client's
//    retry horizon (32 bytes).
// 6: ClientSlot carries its client's exactly-once windows for row pushes
//    and queue pushes (96 bytes).
inline constexpr uint32_t kSegmentFormatVersion = 6;
inline constexpr uint32_t kMaxStateSlots = 4;
inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kPageBytes = 4096;
inline constexpr uint64_t kHugePageBytes = 2 << 20;
inline constexpr uint64_t kHugeAlignThreshold = 64ull << 20;
inline constexpr size_t kNameBytes = 64;  // names are <= 63 chars + NUL
inline constexpr size_t kMaxWorkers = 64;
// Clients that can push exactly-once to one shard at a time (see
// ClientSlot). A slot is given back when its client closes, or when its
// client can no longer retry (see kRetryHorizonMarginMs).
inline constexpr uint32_t kDedupeSlots = 128;
// How far behind a client's newest push a retry may be and still be
// recognised; the client never has more pushes than this unacknowledged per
// shard.
inline constexpr uint64_t kDedupeWindow = 64;
// The longest retry horizon a client may claim for its slot (its
// request_timeout; 0 or more claims this): no client pins a slot longer.
inline constexpr int64_t kMaxRetryHorizonMs = 10 * 60 * 1000;
// A slot whose client's last push arrived more than its retry horizon plus
// this margin ago can go to another client: every retry was sent before
// the horizon ended, and the margin covers its time on the way.
inline constexpr int64_t kRetryHorizonMarginMs = 10 * 1000;

struct SegmentHeader {
  // ---- immutable, covered by header_crc ----
  char magic[8];
  uint32_t format_version;
  uint32_t header_bytes;
  char model[kNameBytes];
  char optimizer[16];
  uint64_t spec_hash;
  uint32_t shard_index;
  uint32_t shard_count;
  uint64_t block_floats;
  uint32_t num_tensors;
  uint32_t num_blocks;    // blocks on this shard
  uint32_t num_tables;    // sparse tables of the model (each has rows here)
  uint32_t dedupe_slots;  // ClientSlots, and DedupeWindows per block
  uint64_t table_counters_offset;
  uint64_t clients_offset;
  uint64_t dedupe_offset;
  uint64_t directory_offset;
  uint64_t directory_bytes;
  uint64_t versions_offset;
  uint64_t data_offset;
  uint64_t data_bytes;
  uint64_t file_bytes;
  uint64_t created_unix_ms;  // for people; identity tells segments apart
  // Drawn from the kernel's CSPRNG once, at creation; never changes. Two
  // segments never share it, whatever their path, shard or creation time.
  SegmentId identity;
  uint32_t directory_crc;
  uint32_t header_crc;  // CRC-32C of every byte before this field

  // ---- mutable, shared between processes ----
  alignas(64) std::atomic<uint64_t> updates_applied;  // block updates, ever
  std::atomic<uint64_t> opens;           // times a server opened it
  std::atomic<uint64_t> unclean_opens;   // opens after a crash
  std::atomic<int32_t> owner_pid;        // serving process, 0 if none
  std::atomic<uint32_t> clean_shutdown;  // 1 when the last server exited well
  std::atomic<double> lr;                // learning rate in force
  // Clocks: worker w has finished (called Clock for) worker_clocks[w]
  // clocks. Written by the serving frontend only.
  alignas(64) std::atomic<int64_t> worker_clocks[kMaxWorkers];
  // bsp: clocks whose summed gradients every block of this shard has had
  // applied (the minimum of the blocks' BlockVersion::clock).
  std::atomic<int64_t> applied_clock;
};

struct TensorEntry {
  char name[kNameBytes];
  uint32_t rank;
  uint32_t num_blocks;  // blocks of the whole tensor, on all shards
  uint64_t shape[8];
  uint64_t num_floats;
  uint64_t first_global_block;
  uint32_t first_local;   // index of its first BlockEntry on this shard
  uint32_t local_blocks;  // how many of its blocks this shard holds
  char optimizer[16];     // the kind that updates it, e.g. "adam"
  uint32_t state_slots;   // optimizer state arrays per block (0..4)
  uint32_t accum_slots;   // 1 in bsp models (the gradient accumulator), or 0
};

struct BlockEntry {
  uint32_t tensor;       // index into the TensorEntry array
  uint32_t block;        // block index within the tensor
  uint64_t num_floats;   // valid floats (the last block may be short)
  uint64_t data_offset;  // page-aligned file offset of the weights
  uint64_t data_bytes;   // num_floats * 4 rounded up to whole pages
  // Optimizer state slot k (e.g. Adam's m, v) is data_bytes long at
  // state_offset + k * data_bytes; state_offset = data_offset + data_bytes.
  // A bsp accumulator follows the state: state_offset + state_slots *
  // data_bytes.
  uint64_t state_offset;
};

struct TableEntry {
  char name[kNameBytes];
  char optimizer[16];
  uint64_t dim;           // floats per row
  uint64_t capacity;      // rows this shard can hold
  uint64_t index_slots;   // RowSlots: a power of two >= 2 * capacity
  uint64_t index_offset;  // page-aligned
  uint64_t rows_offset;   // page-aligned; row r at rows_offset + r * dim * 4
  uint64_t rows_bytes;    // capacity * dim * 4 rounded up to pages; state
                          // slot k at rows_offset + (k + 1) * rows_bytes
  uint32_t state_slots;   // optimizer state arrays (0..4)
  uint32_t reserved;
};

// One slot of a table's row index: linear probing from Mix64(id). A slot is
// claimed by writing `id` and then publishing `row_plus_one` (release), so a
// reader that sees row_plus_one != 0 (acquire) also sees the id and the
// row's initial values. Slots are never freed.
struct RowSlot {
  uint64_t id;
  std::atomic<uint32_t> row_plus_one;  // 0: empty
  uint32_t updates;  // optimizer steps this row has had (Adam's t)
};

struct alignas(64) TableCounters {
  std::atomic<uint64_t> rows;           // rows in use on this shard
  std::atomic<uint64_t> full_refusals;  // requests refused: shard full
};

// Which of one client's pushes a block has had applied, by the per-shard
// sequence number the client gives every push (1, 2, ...): bit k of `bits`
// is seq `high - k`. Written by the block's writer only, inside the same
// journaled update as the block, so weights and window change together.
// A window whose client_id is not its slot's client is stale (the slot was
// given to another client) and counts as empty.
struct DedupeWindow {
  uint64_t client_id;
  uint64_t high;  // highest seq applied; 0: none
  uint64_t bits;
  uint64_t reserved;
};

// One client of the exactly-once protocol on this shard. Written by the
// serving frontend only (claims, last_seen, horizon, row and queue
// windows), read by `inspect`.
struct ClientSlot {
  std::atomic<uint64_t> client_id;    // 0: free
  std::atomic<int64_t> last_seen_ms;  // unix ms (server clock) of its last push
  // How long after first sending a push the client may retry it (its
  // request_timeout), ms, at most kMaxRetryHorizonMs.
  std::atomic<int64_t> retry_horizon_ms;
  uint64_t reserved;
  // The client's PushRows applied on this shard, whatever the table: the
  // frontend applies row pushes one at a time, and a seq names one push.
  // Changed only inside a row-journaled push (server/row_journal.h).
  DedupeWindow rows;
  // The client's QueuePush batches committed to this shard's queues,
  // whatever the queue; recorded right after the batch is committed.
  DedupeWindow queue;
};

// Seqlock: even when stable, odd while its one writer is inside. Readers copy
// the block and retry if the version moved; the version also tells a
// ModelView how many updates a block has had (version / 2).
struct alignas(64) BlockVersion {
  std::atomic<uint64_t> seq;
  // bsp: how many clocks' accumulated gradients this block has had applied.
  // Lets a server restarted mid-apply finish the apply without repeating it
  // on the blocks that already had it.
  std::atomic<int64_t> clock;
};

static_assert(sizeof(SegmentHeader) <= kHeaderBytes);
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<int64_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<double>::is_always_lock_free);
static_assert(sizeof(BlockVersion) == 64);
static_assert(sizeof(RowSlot) == 16);
static_assert(sizeof(TableCounters) == 64);
static_assert(sizeof(ClientSlot) == 96);
static_assert(sizeof(DedupeWindow) == 32);
static_assert(kDedupeWindow <= 64, "one uint64 of bits per window");
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(TensorEntry) % 8 == 0 && sizeof(BlockEntry) % 8 == 0 &&
              sizeof(TableEntry) % 8 == 0);

}  // namespace shardps

#endif  // SHARDPS_COMMON_SEGMENT_FORMAT_H_
