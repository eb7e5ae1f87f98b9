#include "shardps/batch_queue.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>

#include "common/batch_queue_format.h"
#include "common/checksum.h"
#include "common/futex.h"
#include "common/mapping.h"
#include "common/posix_file.h"

// Memory order. Every atomic here lives in the shared file and is used by
// other processes; none needs seq_cst, because no decision rests on two
// processes' stores seen in the same order (the one store-then-load pattern,
// sleeping on a futex word, is ordered by the futex call itself: the kernel
// compares the word under its own barrier). What each order is for:
//  * Slot `seq`, the ring's hand-over: a release (the CAS of Commit,
//    Release and the recoveries, or the store that hands a skipped slot
//    back) publishes everything the holder did with the slot before it: the
//    producer's payload and slot header writes, or the consumer's reads of
//    them, which must end before the next producer writes. Whoever acquires
//    that value of `seq` then sees them.
//    So every load of `seq` is acquire, and every change of it a release
//    (but its first values, stored before Create links the file in).
//  * head/tail: a CAS takes a ticket (acq_rel; a failed CAS is acquire).
//    Their plain loads, like the pid loads a recovery starts with, are
//    acquire though relaxed would do: each value is checked again by a CAS,
//    and the slot's contents are ordered by `seq`, never by them.
//  * writer_pid/reader_pid: the holder stores its pid with release after
//    its claim, a would-be recoverer loads it with acquire; the CAS to -1
//    lets one recoverer alone rewrite a dead holder's slot (atomicity, not
//    order, does that). The stores of 0 on Commit/Release/skip are relaxed,
//    published by the `seq` release that follows them; the one that ends a
//    recovery comes after `seq` and is a release of its own.
//  * closed: release in Close, acquire in Claim/Next; with MarkEnd's acq_rel
//    on ended_producers it carries every ended producer's claims to the
//    consumer that sees it (see Next).
//  * space_events/data_events: Bump's release increment pairs with the
//    waiter's acquire load, so a waiter that sees a bump also sees the state
//    change it announced.
//  * meta_bytes: release after writing `meta`, acquire before reading it.
//  * Counters (produced, consumed, skipped, refused, the blocked/starved
//    times) and held_since_ns are statistics: relaxed, nothing is read
//    through them.

namespace shardps {

namespace {

using Clock = std::chrono::steady_clock;

// A skipped ticket (dead or oversized producer) is committed with this
// producer id, which real batches may not use, and an empty shape.
constexpr uint64_t kSkippedProducer = ~uint64_t{0};

// Waits never sleep longer than this at a time, so a dead holder or a
// missed wake-up costs at most one slice.
constexpr std::chrono::milliseconds kWaitSlice{20};

// A claim whose writer pid is still unset after this long belongs to a
// producer that died between taking the ticket and recording its pid.
constexpr std::chrono::seconds kUnsetPidGrace{2};

constexpr uint64_t kMaxSlots = 1 << 16;
constexpr uint64_t kMaxSlotBytes = 1ull << 32;

uint64_t RoundUp(uint64_t x, uint64_t to) { return (x + to - 1) / to * to; }

uint32_t QueueCrc(const QueueHeader& h) {
  return Crc32c(&h, offsetof(QueueHeader, header_crc));
}

void WaitOn(std::atomic<uint32_t>& word, uint32_t seen,
            Clock::time_point deadline) {
  FutexWait(word, seen,
            std::min<Clock::duration>(deadline - Clock::now(), kWaitSlice));
}

void Bump(std::atomic<uint32_t>& word) { FutexBump(word); }

// True when `pid` has exited: no such process, or a zombie its parent has
// not reaped yet (which still answers kill(pid, 0)).
bool ProcessGone(int32_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  auto read = ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
  if (!read.ok()) return false;
  const std::string& stat = *read;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() &&
         (stat[paren + 2] == 'Z' || stat[paren + 2] == 'X');
}

Status ValidateQueue(const QueueHeader& h, uint64_t size) {
  if (std::memcmp(h.magic, kQueueMagic, sizeof(h.magic)) != 0)
    return Status(Code::kCorrupt, "not a shardps batch queue (bad magic)");
  if (h.format_version != kQueueFormatVersion)
    return Status(Code::kCorrupt,
                  "unsupported queue format version " +
                      std::to_string(h.format_version) + " (this build reads " +
                      std::to_string(kQueueFormatVersion) +
                      "; remove the file and create the queue again)");
  if (h.header_crc != QueueCrc(h))
    return Status(Code::kCorrupt, "queue header checksum mismatch");
  if (h.slot_count < 2 || h.slot_count > kMaxSlots || h.slot_bytes == 0 ||
      h.slot_bytes > kMaxSlotBytes ||
      h.slot_stride != RoundUp(kSlotHeaderBytes + h.slot_bytes, 4096) ||
      h.file_bytes != size ||
      h.file_bytes !=
          kQueueHeaderBytes + uint64_t{h.slot_count} * h.slot_stride)
    return Status(Code::kCorrupt, "queue header has inconsistent sizes");
  return Status::Ok();
}

}  // namespace

Status ValidateQueueImage(const char* data, size_t size) {
  if (size < kQueueHeaderBytes)
    return Status(Code::kCorrupt, "not a shardps batch queue (" +
                                      std::to_string(size) + " bytes)");
  return ValidateQueue(*reinterpret_cast<const QueueHeader*>(data), size);
}

// Everything a BatchQueue holds, and every operation on the shared ring;
// the public methods forward here.
class BatchQueue::Impl {
 public:
  Impl(std::string path, Mapping map)
      : path_(std::move(path)),
        map_(std::move(map)),
        base_(map_.data()),
        header_(reinterpret_cast<QueueHeader*>(base_)) {}

  Result<SlotWriter> Claim(std::chrono::milliseconds timeout);
  Status Commit(const SlotWriter& w, const BatchShape& shape,
                uint64_t producer_id, uint64_t producer_seq);
  Status Push(const BatchShape& shape, const float* features,
              const float* labels, std::chrono::milliseconds timeout,
              uint64_t producer_id, uint64_t producer_seq);
  Status MarkEnd();
  Result<Batch> Next(std::chrono::milliseconds timeout);
  void Release(const Batch& batch);
  void Close();
  bool closed() const;
  Status SetMeta(std::string_view text);
  std::string Meta() const;
  QueueStats Stats() const;

  SlotHeader& slot(uint32_t i) const;
  float* payload(uint32_t i) const;
  // When this object first saw a claim with no pid recorded (see
  // HolderGone); per object, so each observer times the grace itself.
  struct StallWatch {
    uint64_t ticket = ~uint64_t{0};
    uint64_t since = 0;
  };
  bool HolderGone(int32_t pid, uint64_t ticket, StallWatch* watch);
  // Frees `ticket`'s slot if its holder (writer or reader) died; true if it
  // did, or if the slot changed meanwhile (look again).
  bool RecoverDeadWriter(uint64_t ticket);
  bool RecoverDeadReader(uint64_t ticket);

  const std::string path_;
  const Mapping map_;  // the whole file, read-write, shared
  char* const base_;
  QueueHeader* const header_;
  // Guarded by nothing: a BatchQueue object belongs to one thread (see the
  // header's thread-safety note).
  StallWatch writer_watch_, reader_watch_;
};

BatchQueue::BatchQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BatchQueue::~BatchQueue() = default;

Result<std::unique_ptr<BatchQueue>> BatchQueue::Create(const std::string& path,
                                                       uint32_t slots,
                                                       uint64_t slot_bytes,
                                                       uint32_t producers) {
  // One slot cannot work: "committed for ticket t" and "free for ticket
  // t + 1" would be the same sequence number.
  if (slots < 2 || slots > kMaxSlots)
    return Status(Code::kInvalidArgument,
                  "queue slots must be 2.." + std::to_string(kMaxSlots));
  if (slot_bytes == 0 || slot_bytes > kMaxSlotBytes)
    return Status(Code::kInvalidArgument, "queue slot bytes must be 1..4 GiB");
  const uint64_t stride = RoundUp(kSlotHeaderBytes + slot_bytes, 4096);
  const uint64_t bytes = kQueueHeaderBytes + uint64_t{slots} * stride;
  // Built under a temporary name and linked into place, so an opener never
  // sees a half-initialised queue.
  const std::string tmp = path + ".creating." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus("create " + tmp, errno);
  if (::posix_fallocate(fd.get(), 0, static_cast<off_t>(bytes)) != 0) {
    ::unlink(tmp.c_str());
    return Status(Code::kIoError, "cannot allocate " + std::to_string(bytes) +
                                      " bytes for " + path);
  }
  auto map = Mapping::Map(fd.get(), bytes, /*writable=*/true,
                          /*populate=*/true);
  if (!map.ok()) {
    ::unlink(tmp.c_str());
    return map.status().WithContext(tmp);
  }
  auto* h = new (map->data()) QueueHeader();
  std::memcpy(h->magic, kQueueMagic, sizeof(h->magic));
  h->format_version = kQueueFormatVersion;
  h->slot_count = slots;
  h->slot_bytes = slot_bytes;
  h->slot_stride = stride;
  h->file_bytes = bytes;
  h->producers = producers;
  h->created_unix_ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  h->header_crc = QueueCrc(*h);
  auto impl = std::make_unique<Impl>(path, std::move(map).value());
  for (uint32_t i = 0; i < slots; ++i) {
    SlotHeader* s = new (&impl->slot(i)) SlotHeader();
    // Relaxed: the file is still private (not linked into place yet), and
    // link() happens before any other process can open and map it.
    s->seq.store(i, std::memory_order_relaxed);
  }
  auto queue = std::unique_ptr<BatchQueue>(new BatchQueue(std::move(impl)));
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    if (err == EEXIST)
      return Status(Code::kBusy, path +
                                     " already exists (remove it, or open "
                                     "it as a producer)");
    return ErrnoStatus("link " + path, err);
  }
  ::unlink(tmp.c_str());
  return queue;
}

Result<std::unique_ptr<BatchQueue>> BatchQueue::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < kQueueHeaderBytes)
    return Status(Code::kCorrupt, path + ": not a shardps batch queue (" +
                                      std::to_string(size) + " bytes)");
  auto map = Mapping::Map(fd.get(), size, /*writable=*/true,
                          /*populate=*/false);
  if (!map.ok()) return map.status().WithContext(path);
  Status valid = ValidateQueueImage(map->data(), size);
  if (!valid.ok()) return valid.WithContext(path);
  return std::unique_ptr<BatchQueue>(
      new BatchQueue(std::make_unique<Impl>(path, std::move(map).value())));
}

const std::string& BatchQueue::path() const { return impl_->path_; }
uint64_t BatchQueue::slot_bytes() const { return impl_->header_->slot_bytes; }
uint32_t BatchQueue::slots() const { return impl_->header_->slot_count; }
uint32_t BatchQueue::producers() const { return impl_->header_->producers; }

Result<SlotWriter> BatchQueue::Claim(std::chrono::milliseconds timeout) {
  return impl_->Claim(timeout);
}

Status BatchQueue::Commit(const SlotWriter& slot, const BatchShape& shape,
                          uint64_t producer_id, uint64_t producer_seq) {
  return impl_->Commit(slot, shape, producer_id, producer_seq);
}

Status BatchQueue::Push(const BatchShape& shape, const float* features,
                        const float* labels, std::chrono::milliseconds timeout,
                        uint64_t producer_id, uint64_t producer_seq) {
  return impl_->Push(shape, features, labels, timeout, producer_id,
                     producer_seq);
}

Status BatchQueue::MarkEnd() { return impl_->MarkEnd(); }

Result<Batch> BatchQueue::Next(std::chrono::milliseconds timeout) {
  return impl_->Next(timeout);
}

void BatchQueue::Release(const Batch& batch) { impl_->Release(batch); }
void BatchQueue::Close() { impl_->Close(); }
bool BatchQueue::closed() const { return impl_->closed(); }
Status BatchQueue::SetMeta(std::string_view text) {
  return impl_->SetMeta(text);
}
std::string BatchQueue::Meta() const { return impl_->Meta(); }
QueueStats BatchQueue::Stats() const { return impl_->Stats(); }

SlotHeader& BatchQueue::Impl::slot(uint32_t i) const {
  return *reinterpret_cast<SlotHeader*>(base_ + kQueueHeaderBytes +
                                        uint64_t{i} * header_->slot_stride);
}

float* BatchQueue::Impl::payload(uint32_t i) const {
  return reinterpret_cast<float*>(base_ + kQueueHeaderBytes +
                                  uint64_t{i} * header_->slot_stride +
                                  kSlotHeaderBytes);
}

Result<SlotWriter> BatchQueue::Impl::Claim(std::chrono::milliseconds timeout) {
  QueueHeader& h = *header_;
  const uint64_t n = h.slot_count;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (h.closed.load(std::memory_order_acquire)) {
      h.refused.fetch_add(1, std::memory_order_relaxed);
      return Status(Code::kClosed, path_ + " is closed");
    }
    const uint32_t events = h.space_events.load(std::memory_order_acquire);
    const uint64_t pos = h.head.load(std::memory_order_acquire);
    SlotHeader& s = slot(static_cast<uint32_t>(pos % n));
    const uint64_t seq = s.seq.load(std::memory_order_acquire);
    if (seq == pos) {
      uint64_t expected = pos;
      if (h.head.compare_exchange_weak(expected, pos + 1,
                                       std::memory_order_acq_rel)) {
        s.held_since_ns.store(MonotonicNs(), std::memory_order_relaxed);
        s.writer_pid.store(::getpid(), std::memory_order_release);
        SlotWriter w;
        w.slot_ = static_cast<uint32_t>(pos % n);
        w.ticket_ = pos;
        w.data_ = payload(w.slot_);
        w.capacity_ = h.slot_bytes;
        return w;
      }
      continue;
    }
    if (seq > pos) {  // another producer took it; look again
      if (Clock::now() >= deadline)
        return Status(Code::kTimeout, path_ + ": no free slot within " +
                                          std::to_string(timeout.count()) +
                                          " ms");
      continue;
    }
    // Full: the slot still holds ticket pos - n's batch.
    if (RecoverDeadReader(pos - n)) continue;
    if (Clock::now() >= deadline)
      return Status(Code::kTimeout, path_ + " stayed full for " +
                                        std::to_string(timeout.count()) +
                                        " ms");
    const uint64_t t0 = MonotonicNs();
    WaitOn(h.space_events, events, deadline);
    h.producer_blocked_ns.fetch_add(MonotonicNs() - t0,
                                    std::memory_order_relaxed);
  }
}

Status BatchQueue::Impl::Commit(const SlotWriter& w, const BatchShape& shape,
                                uint64_t producer_id, uint64_t producer_seq) {
  SlotHeader& s = slot(w.slot_);
  const bool fits = ShapeFitsSlot(shape.batch, shape.window, shape.features,
                                  shape.horizon, header_->slot_bytes);
  // A batch that does not fit is committed as skipped: the ticket must
  // still pass through the ring, or consumers would wait on it forever.
  s.ticket = w.ticket_;
  s.producer_id = fits ? producer_id : kSkippedProducer;
  s.producer_seq = producer_seq;
  s.batch = fits ? shape.batch : 0;
  s.window = fits ? shape.window : 0;
  s.features = fits ? shape.features : 0;
  s.horizon = fits ? shape.horizon : 0;
  // Relaxed: published, with the slot fields above, by the CAS of `seq`.
  s.writer_pid.store(0, std::memory_order_relaxed);
  // A compare-and-swap, not a store: if a consumer took this claim for a
  // dead producer's (we stalled for seconds), the ring has moved on and this
  // batch is dropped rather than written over someone else's ticket.
  uint64_t expected = w.ticket_;
  if (!s.seq.compare_exchange_strong(expected, w.ticket_ + 1,
                                     std::memory_order_acq_rel))
    return Status(Code::kTimeout,
                  "this producer stalled so long between claim and commit "
                  "that its slot was recovered as dead; batch dropped");
  if (fits) header_->produced.fetch_add(1, std::memory_order_relaxed);
  Bump(header_->data_events);
  if (!fits)
    return Status(Code::kSizeMismatch, "batch of " +
                                           std::to_string(shape.bytes()) +
                                           " bytes does not fit a slot of " +
                                           std::to_string(header_->slot_bytes));
  return Status::Ok();
}

Status BatchQueue::Impl::Push(const BatchShape& shape, const float* features,
                              const float* labels,
                              std::chrono::milliseconds timeout,
                              uint64_t producer_id, uint64_t producer_seq) {
  if (!ShapeFitsSlot(shape.batch, shape.window, shape.features, shape.horizon,
                     header_->slot_bytes))
    return Status(Code::kSizeMismatch,
                  "batch of " + std::to_string(shape.bytes()) +
                      " bytes does not fit a slot of " +
                      std::to_string(header_->slot_bytes) + " bytes");
  auto w = Claim(timeout);
  if (!w.ok()) return w.status();
  std::memcpy(w->data(), features, shape.feature_floats() * sizeof(float));
  std::memcpy(w->data() + shape.feature_floats(), labels,
              shape.label_floats() * sizeof(float));
  return Commit(*w, shape, producer_id, producer_seq);
}

bool BatchQueue::Impl::HolderGone(int32_t pid, uint64_t ticket,
                                  StallWatch* watch) {
  if (pid > 0) return ProcessGone(pid);
  // No pid recorded yet: the holder either has not reached that store or
  // died just before it. Only a claim that stays so for the whole grace
  // period, as timed by this observer, counts as dead.
  const uint64_t now = MonotonicNs();
  if (watch->ticket != ticket || watch->since == 0) {
    watch->ticket = ticket;
    watch->since = now;
    return false;
  }
  return now - watch->since >
         uint64_t(std::chrono::nanoseconds(kUnsetPidGrace).count());
}

bool BatchQueue::Impl::RecoverDeadWriter(uint64_t ticket) {
  QueueHeader& h = *header_;
  SlotHeader& s = slot(static_cast<uint32_t>(ticket % h.slot_count));
  if (s.seq.load(std::memory_order_acquire) != ticket) return false;
  if (h.head.load(std::memory_order_acquire) <= ticket) return false;
  int32_t pid = s.writer_pid.load(std::memory_order_acquire);
  if (pid < 0 || !HolderGone(pid, ticket, &writer_watch_)) return false;
  // Take the recovery (pid -> -1) so one consumer alone rewrites the slot,
  // and only then describe it as skipped and pass the ticket on.
  if (!s.writer_pid.compare_exchange_strong(pid, -1, std::memory_order_acq_rel))
    return true;  // someone else is recovering it, or it changed: look again
  s.producer_id = kSkippedProducer;
  s.batch = s.window = s.features = s.horizon = 0;
  s.ticket = ticket;
  uint64_t expected = ticket;
  if (s.seq.compare_exchange_strong(expected, ticket + 1,
                                    std::memory_order_acq_rel))
    h.skipped.fetch_add(1, std::memory_order_relaxed);
  s.writer_pid.store(0, std::memory_order_release);
  Bump(h.data_events);
  return true;
}

bool BatchQueue::Impl::RecoverDeadReader(uint64_t ticket) {
  QueueHeader& h = *header_;
  SlotHeader& s = slot(static_cast<uint32_t>(ticket % h.slot_count));
  if (s.seq.load(std::memory_order_acquire) != ticket + 1) return false;
  if (h.tail.load(std::memory_order_acquire) <= ticket) return false;
  int32_t pid = s.reader_pid.load(std::memory_order_acquire);
  if (pid < 0 || !HolderGone(pid, ticket, &reader_watch_)) return false;
  if (!s.reader_pid.compare_exchange_strong(pid, -1, std::memory_order_acq_rel))
    return true;
  uint64_t expected = ticket + 1;
  if (s.seq.compare_exchange_strong(expected, ticket + h.slot_count,
                                    std::memory_order_acq_rel))
    h.consumed.fetch_add(1, std::memory_order_relaxed);
  s.reader_pid.store(0, std::memory_order_release);
  Bump(h.space_events);
  return true;
}

Result<Batch> BatchQueue::Impl::Next(std::chrono::milliseconds timeout) {
  QueueHeader& h = *header_;
  const uint64_t n = h.slot_count;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const uint32_t events = h.data_events.load(std::memory_order_acquire);
    const uint64_t pos = h.tail.load(std::memory_order_acquire);
    const auto index = static_cast<uint32_t>(pos % n);
    SlotHeader& s = slot(index);
    const uint64_t seq = s.seq.load(std::memory_order_acquire);
    if (seq == pos + 1) {
      uint64_t expected = pos;
      if (!h.tail.compare_exchange_weak(expected, pos + 1,
                                        std::memory_order_acq_rel))
        continue;
      if (s.producer_id == kSkippedProducer) {
        // A dead or oversized producer's ticket: hand the slot back.
        s.seq.store(pos + n, std::memory_order_release);
        Bump(h.space_events);
        continue;
      }
      s.held_since_ns.store(MonotonicNs(), std::memory_order_relaxed);
      s.reader_pid.store(::getpid(), std::memory_order_release);
      const BatchShape shape{s.batch, s.window, s.features, s.horizon};
      if (shape.window > (1u << 24) || shape.features > (1u << 24) ||
          !ShapeFitsSlot(shape.batch, shape.window, shape.features,
                         shape.horizon, h.slot_bytes)) {
        // A shape that does not fit its slot (a buggy writer or a damaged
        // file) is never handed out: skip it like a dead producer's.
        s.reader_pid.store(0, std::memory_order_relaxed);  // see Release
        s.seq.store(pos + n, std::memory_order_release);
        h.skipped.fetch_add(1, std::memory_order_relaxed);
        Bump(h.space_events);
        continue;
      }
      Batch b;
      b.shape_ = BatchShape{s.batch, s.window, s.features, s.horizon};
      b.features_ = payload(index);
      b.labels_ = payload(index) + b.shape_.feature_floats();
      b.ticket_ = pos;
      b.producer_id_ = s.producer_id;
      b.producer_seq_ = s.producer_seq;
      b.slot_ = index;
      return b;
    }
    if (seq > pos + 1) {  // another consumer took it
      if (Clock::now() >= deadline)
        return Status(Code::kTimeout, "no batch in " + path_ + " within " +
                                          std::to_string(timeout.count()) +
                                          " ms");
      continue;
    }
    // Not committed: claimed by a producer still writing (or dead), or not
    // produced at all.
    if (RecoverDeadWriter(pos)) continue;
    // `closed` is set (release) after every claim of the closing producer,
    // so once it is seen, head counts every ticket that will ever exist.
    if (h.closed.load(std::memory_order_acquire) &&
        h.head.load(std::memory_order_acquire) <= pos) {
      // Relaxed: only chooses the message; `closed` ordered the rest.
      const uint32_t ended = h.ended_producers.load(std::memory_order_relaxed);
      return Status(Code::kClosed,
                    path_ + (h.producers > 0 && ended >= h.producers
                                 ? ": all " + std::to_string(h.producers) +
                                       " producer(s) ended and the queue "
                                       "is drained"
                                 : " is closed and drained"));
    }
    if (Clock::now() >= deadline)
      return Status(Code::kTimeout, "no batch in " + path_ + " within " +
                                        std::to_string(timeout.count()) +
                                        " ms");
    const uint64_t t0 = MonotonicNs();
    WaitOn(h.data_events, events, deadline);
    h.consumer_starved_ns.fetch_add(MonotonicNs() - t0,
                                    std::memory_order_relaxed);
  }
}

void BatchQueue::Impl::Release(const Batch& batch) {
  SlotHeader& s = slot(batch.slot_);
  // Relaxed: published by the release of `seq` below.
  s.reader_pid.store(0, std::memory_order_relaxed);
  // Compare-and-swap: a producer may have recovered the slot already if
  // this consumer stalled for seconds before recording its pid.
  uint64_t expected = batch.ticket_ + 1;
  if (s.seq.compare_exchange_strong(expected,
                                    batch.ticket_ + header_->slot_count,
                                    std::memory_order_acq_rel))
    header_->consumed.fetch_add(1, std::memory_order_relaxed);
  Bump(header_->space_events);
}

void BatchQueue::Impl::Close() {
  header_->closed.store(1, std::memory_order_release);
  Bump(header_->space_events);
  Bump(header_->data_events);
}

Status BatchQueue::Impl::MarkEnd() {
  QueueHeader& h = *header_;
  if (h.producers == 0)
    return Status(Code::kInvalidArgument,
                  path_ +
                      " was created without a producer count, so its stream "
                      "ends only when it is closed (create it with "
                      "`--producers N`, or close it)");
  // acq_rel: this producer's commits happen before its mark, and the mark
  // that completes the count sees every other producer's.
  const uint32_t before =
      h.ended_producers.fetch_add(1, std::memory_order_acq_rel);
  if (before >= h.producers) {
    // Relaxed: undoes an extra mark; the count was complete and the queue
    // closed already, so nothing waits for this value.
    h.ended_producers.fetch_sub(1, std::memory_order_relaxed);
    return Status(Code::kInvalidArgument,
                  path_ + ": all " + std::to_string(h.producers) +
                      " producer(s) already marked their end");
  }
  if (before + 1 == h.producers) Close();
  return Status::Ok();
}

bool BatchQueue::Impl::closed() const {
  return header_->closed.load(std::memory_order_acquire) != 0;
}

Status BatchQueue::Impl::SetMeta(std::string_view text) {
  if (text.size() > kQueueMetaBytes)
    return Status(Code::kInvalidArgument, "queue metadata is limited to " +
                                              std::to_string(kQueueMetaBytes) +
                                              " bytes");
  std::memcpy(header_->meta, text.data(), text.size());
  header_->meta_bytes.store(static_cast<uint32_t>(text.size()),
                            std::memory_order_release);
  return Status::Ok();
}

std::string BatchQueue::Impl::Meta() const {
  const uint32_t n =
      std::min<uint32_t>(header_->meta_bytes.load(std::memory_order_acquire),
                         static_cast<uint32_t>(kQueueMetaBytes));
  return std::string(header_->meta, n);
}

QueueStats BatchQueue::Impl::Stats() const {
  // Relaxed throughout: a snapshot for display, each figure on its own (see
  // the memory-order note at the top); `queued` may be off by the claims in
  // flight.
  const QueueHeader& h = *header_;
  QueueStats s;
  s.slots = h.slot_count;
  s.slot_bytes = h.slot_bytes;
  s.produced = h.produced.load(std::memory_order_relaxed);
  s.consumed = h.consumed.load(std::memory_order_relaxed);
  s.skipped = h.skipped.load(std::memory_order_relaxed);
  s.refused = h.refused.load(std::memory_order_relaxed);
  const uint64_t head = h.head.load(std::memory_order_relaxed);
  const uint64_t tail = h.tail.load(std::memory_order_relaxed);
  s.queued = head > tail ? head - tail : 0;
  const uint64_t blocked_ns =
      h.producer_blocked_ns.load(std::memory_order_relaxed);
  const uint64_t starved_ns =
      h.consumer_starved_ns.load(std::memory_order_relaxed);
  s.producer_blocked_s = static_cast<double>(blocked_ns) / 1e9;
  s.consumer_starved_s = static_cast<double>(starved_ns) / 1e9;
  s.closed = h.closed.load(std::memory_order_relaxed) != 0;
  s.producers = h.producers;
  s.ended_producers = h.ended_producers.load(std::memory_order_relaxed);
  return s;
}

}  // namespace shardps
