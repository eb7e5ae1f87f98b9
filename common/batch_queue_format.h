// The on-memory format of a BatchQueue file (see docs/stream.md).
//
//   [0, 4096)        QueueHeader: immutable part (CRC-32C), then atomics
//   [4096, ...)      slot_count slots, each kSlotHeaderBytes of SlotHeader
//                    followed by slot_bytes of payload (features, then
//                    labels, float32), every slot page-aligned
//
// The ring is Vyukov's bounded MPMC queue over tickets: slot s = t % count
// holds `seq` = t when free for ticket t, t + 1 once ticket t's batch is
// committed, and t + count once it has been consumed (free for t + count).
// Every mutable field is a lock-free atomic, shared between processes.
#ifndef SHARDPS_COMMON_BATCH_QUEUE_FORMAT_H_
#define SHARDPS_COMMON_BATCH_QUEUE_FORMAT_H_

#include <atomic>
#include <cstdint>
#include <type_traits>

#include "shardps/status.h"

namespace shardps {

inline constexpr char kQueueMagic[8] = {'S', 'P', 'S', 'Q', 'U', 'E', 'U', 'E'};
// 2: `producers` (the stream's producer count) and `ended_producers` (their
// end marks), so a consumer learns the end of a finite stream.
inline constexpr uint32_t kQueueFormatVersion = 2;
inline constexpr uint64_t kQueueHeaderBytes = 4096;
inline constexpr uint64_t kSlotHeaderBytes = 256;
inline constexpr uint64_t kQueueMetaBytes = 2048;

struct QueueHeader {
  // ---- immutable, covered by header_crc ----
  char magic[8];
  uint32_t format_version;
  uint32_t slot_count;
  uint64_t slot_bytes;   // payload bytes per slot
  uint64_t slot_stride;  // kSlotHeaderBytes + slot_bytes, page-rounded
  uint64_t file_bytes;
  uint64_t created_unix_ms;
  uint32_t producers;   // producers whose end marks end the stream; 0: none
  uint32_t header_crc;  // CRC-32C of every byte before this field

  // ---- mutable ----
  alignas(64) std::atomic<uint64_t> head;  // next ticket producers claim
  alignas(64) std::atomic<uint64_t> tail;  // next ticket consumers take
  alignas(64) std::atomic<uint32_t> closed;
  // End marks (BatchQueue::MarkEnd) so far; the producer that brings it to
  // `producers` also sets `closed`.
  std::atomic<uint32_t> ended_producers;
  // Futex words: bumped (and woken) when space frees up / a batch commits.
  std::atomic<uint32_t> space_events;
  std::atomic<uint32_t> data_events;
  std::atomic<uint32_t> meta_bytes;  // valid bytes of `meta`, 0 = none
  std::atomic<uint64_t> produced;    // batches committed
  std::atomic<uint64_t> consumed;    // batches released by consumers
  std::atomic<uint64_t> skipped;     // claims of dead producers skipped
  std::atomic<uint64_t> refused;     // pushes refused because closed
  std::atomic<uint64_t> producer_blocked_ns;  // producers waiting for space
  std::atomic<uint64_t> consumer_starved_ns;  // consumers waiting for data
  // Free-form metadata for the consumer (e.g. the normalisation the feed
  // applied), written once by whoever sets it up.
  alignas(64) char meta[kQueueMetaBytes];
};

struct SlotHeader {
  std::atomic<uint64_t> seq;  // see the file comment
  // Who holds the slot: the producer between claim and commit, the
  // consumer between Next and Release; 0 otherwise. A holder that died is
  // detected with kill(pid, 0) and its slot recovered.
  std::atomic<int32_t> writer_pid;
  std::atomic<int32_t> reader_pid;
  std::atomic<uint64_t> held_since_ns;  // CLOCK_MONOTONIC of the claim
  // The batch, written by the producer before commit:
  uint64_t ticket;        // the queue-wide sequence number
  uint64_t producer_id;   // chosen by the producer (e.g. its rank)
  uint64_t producer_seq;  // the producer's own count, for ordering checks
  uint32_t batch;         // features [batch, window, features]
  uint32_t window;
  uint32_t features;
  uint32_t horizon;  // labels [batch, horizon]
};

static_assert(sizeof(QueueHeader) <= kQueueHeaderBytes);
static_assert(sizeof(SlotHeader) <= kSlotHeaderBytes);
static_assert(std::is_standard_layout_v<QueueHeader>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);

// True when a batch [batch, window, features] + [batch, horizon] of float32
// fits `slot_bytes`. Exact in 128 bits: the shape may come from a slot header
// another process wrote (or a damaged file), and the 64-bit product of three
// 32-bit dimensions can wrap around to a small number that seems to fit.
inline bool ShapeFitsSlot(uint32_t batch, uint32_t window, uint32_t features,
                          uint32_t horizon, uint64_t slot_bytes) {
  using Wide = unsigned __int128;
  const Wide floats = Wide{batch} * window * features + Wide{batch} * horizon;
  return floats * sizeof(float) <= slot_bytes;
}

// Checks a queue file image before any offset in it is trusted: magic,
// version, header checksum, slot sizes and that they add up to `size`.
// kCorrupt with the reason if not. Used by BatchQueue::Open; exposed for
// tests and fuzzing. `data` must hold `size` readable bytes.
Status ValidateQueueImage(const char* data, size_t size);

}  // namespace shardps

#endif  // SHARDPS_COMMON_BATCH_QUEUE_FORMAT_H_
