#include "server/queue_service.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/dedupe_window.h"
#include "common/posix_file.h"

namespace shardps {

namespace {

// How long a push may wait for space before its producer gets kTimeout.
constexpr std::chrono::seconds kMaxWait{60};
constexpr size_t kMaxWaiting = 1024;
// The placer waits for space in slices this long, so that it notices Stop
// within one. Space itself is noticed at once: the consumer's Release wakes
// BatchQueue::Claim through the queue's futex.
constexpr std::chrono::milliseconds kStopSlice{50};

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
          c == '-'))
      return false;
  return true;
}

}  // namespace

Result<QueueOption> QueueOption::Parse(const std::string& text) {
  const size_t a = text.find(':');
  const size_t b = a == std::string::npos ? a : text.find(':', a + 1);
  QueueOption o;
  if (b != std::string::npos) {
    o.name = text.substr(0, a);
    try {
      size_t used = 0;
      const unsigned long slots =
          std::stoul(text.substr(a + 1, b - a - 1), &used);
      if (used != b - a - 1) throw std::invalid_argument("slots");
      const std::string bytes_text = text.substr(b + 1);
      const unsigned long long bytes = std::stoull(bytes_text, &used);
      if (used != bytes_text.size()) throw std::invalid_argument("bytes");
      o.slots = static_cast<uint32_t>(slots);
      o.slot_bytes = bytes;
    } catch (const std::exception&) {
      o.slots = 0;
    }
  }
  if (!ValidName(o.name) || o.slots == 0 || o.slots > 65536 ||
      o.slot_bytes == 0)
    return Status(Code::kInvalidArgument,
                  "--queue expects NAME:SLOTS:SLOT_BYTES (name "
                  "[A-Za-z0-9_.-], 1..65536 slots, bytes > 0), got '" +
                      text + "'");
  return o;
}

// An existing queue file is refused like a segment when another user owns it
// or others may write it. Checked on its own descriptor just before
// BatchQueue::Open; swapping the file in between needs write access to the
// directory, which the server created 0700.
static Status CheckPrivateQueue(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  return CheckPrivateFile(fd.get(), path);
}

Result<std::unique_ptr<QueueService>> QueueService::Open(
    const std::string& dir, const std::vector<QueueOption>& options) {
  auto service = std::make_unique<QueueService>();
  auto done_event = EventFd::Create();
  if (!done_event.ok()) return done_event.status();
  service->done_event_ = std::move(done_event).value();
  for (const QueueOption& o : options) {
    const std::string path = dir + "/" + o.name + ".queue";
    struct stat st;
    const bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists) SHARDPS_RETURN_IF_ERROR(CheckPrivateQueue(path));
    auto q = exists ? BatchQueue::Open(path)
                    : BatchQueue::Create(path, o.slots, o.slot_bytes);
    if (!q.ok()) return q.status();
    if ((*q)->slots() != o.slots || (*q)->slot_bytes() != o.slot_bytes)
      return Status(Code::kInvalidArgument,
                    path + " exists with " + std::to_string((*q)->slots()) +
                        " slots of " + std::to_string((*q)->slot_bytes()) +
                        " bytes, not as --queue asks; remove it first");
    // The placer thread's own object on the same file.
    auto placer = BatchQueue::Open(path);
    if (!placer.ok()) return placer.status();
    const BatchQueue* frontend = q->get();
    if (!service->queues_.emplace(o.name, std::move(q).value()).second)
      return Status(Code::kInvalidArgument,
                    "queue '" + o.name + "' given twice");
    service->placer_queues_.emplace(frontend, std::move(placer).value());
  }
  return service;
}

QueueService::~QueueService() { Stop(); }

std::vector<HostedQueueStats> QueueService::Stats() const {
  std::vector<HostedQueueStats> out;
  out.reserve(queues_.size());
  for (const auto& [name, queue] : queues_) {
    const QueueStats q = queue->Stats();
    HostedQueueStats h;
    h.name = name;
    h.slots = q.slots;
    h.queued = q.queued;
    h.produced = q.produced;
    h.consumed = q.consumed;
    h.producer_blocked_s = q.producer_blocked_s;
    h.consumer_starved_s = q.consumer_starved_s;
    h.closed = q.closed;
    out.push_back(std::move(h));
  }
  return out;
}

void QueueService::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  work_.NotifyAll();
  if (placer_.joinable()) placer_.join();
}

Status QueueService::TryPlace(Waiting& w, BatchQueue& queue,
                              std::chrono::milliseconds timeout) {
  auto slot = queue.Claim(timeout);
  if (!slot.ok()) return slot.status();
  return Fill(w, queue, *slot);
}

Status QueueService::Fill(Waiting& w, BatchQueue& queue,
                          const SlotWriter& slot) {
  std::memcpy(slot.data(), w.frames[2].data(), w.frames[2].size());
  std::memcpy(slot.data() + w.shape.feature_floats(), w.frames[3].data(),
              w.frames[3].size());
  Status committed = queue.Commit(slot, w.shape, w.producer_id);
  // A kill -9 between the commit and this line (no system call, a few
  // instructions) is the one way a retry can enqueue the batch again.
  if (committed.ok() && w.once.seq != 0)
    DedupeRecord(*w.once.window, w.once.client, w.once.seq);
  return committed;
}

Status QueueService::Place(Waiting& w, BatchQueue& queue) {
  for (;;) {
    if (stopping_) return Status(Code::kUnavailable, "the server is stopping");
    const auto now = std::chrono::steady_clock::now();
    if (now >= w.deadline)
      return Status(Code::kTimeout, "queue stayed full for 60 s");
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          w.deadline - now) +
                      std::chrono::milliseconds(1);
    // The wait for space is outside mu_, so the frontend keeps serving.
    // It reads no field the frontend may change meanwhile: a copy taking
    // over the reply changes frames[0] and request_id only, and `w` stays
    // put (the frontend only appends to waiting_).
    // Explicit Unlock/Lock, not a scoped guard: the caller's MutexLock owns
    // mu_, and the analysis checks that every path holds it again here.
    mu_.Unlock();
    auto space = queue.Claim(std::min(left, kStopSlice));
    mu_.Lock();
    if (!space.ok() && space.status().code() == Code::kTimeout) continue;
    if (!space.ok()) return space.status();  // kClosed
    // The slot is ours (every claim is committed, even when stopping);
    // filled under mu_, which guards the queue window Fill records in.
    return Fill(w, queue, *space);
  }
}

void QueueService::RunPlacer() {
  MutexLock lock(mu_);
  for (;;) {
    while (!stopping_ && waiting_.empty()) work_.Wait(mu_);
    if (stopping_) return;  // waiting pushes are dropped unanswered
    Waiting& w = waiting_.front();
    w.result = Place(w, *placer_queues_.at(w.queue));
    if (stopping_ && w.result.code() == Code::kUnavailable) return;
    done_.push_back(std::move(w));
    waiting_.pop_front();
    done_event_.Signal();
  }
}

void QueueService::Finish(const Reply& reply) {
  // Cleared before the swap: a push finished after it signals again.
  done_event_.Clear();
  std::deque<Waiting> done;
  {
    MutexLock lock(mu_);
    done.swap(done_);
  }
  for (Waiting& w : done) reply(&w.frames[0], w.request_id, w.result, w.once);
}

void QueueService::Push(const wire::Request& req,
                        std::vector<zmq::message_t>& frames,
                        const QueueOnce& once, const Reply& reply) {
  const uint64_t id = req.request_id();
  auto fail = [&](Code code, const std::string& message) {
    reply(&frames[0], id, Status(code, message), once);
  };
  if (req.tensor() == nullptr)
    return fail(Code::kInvalidArgument, "QueuePush names no queue");
  auto it = queues_.find(req.tensor()->string_view());
  if (it == queues_.end())
    return fail(Code::kNotFound,
                "this server hosts no queue '" + req.tensor()->str() + "'");
  const auto* dims = req.blocks();
  if (dims == nullptr || dims->size() != 4)
    return fail(Code::kInvalidArgument,
                "QueuePush needs the shape [batch, window, features, horizon]");
  Waiting w{it->second.get(),
            BatchShape{dims->Get(0), dims->Get(1), dims->Get(2), dims->Get(3)},
            {},
            id,
            req.client_id(),
            std::chrono::steady_clock::now() + kMaxWait,
            once,
            Status::Ok()};
  if (frames.size() != 4)
    return fail(Code::kInvalidArgument,
                "QueuePush needs two payload frames (features, labels)");
  if (req.dtype() != wire::DType::F32)
    return fail(Code::kInvalidArgument, "QueuePush carries float32 only");
  // Bytes checked by division first, so a crafted shape cannot overflow.
  const uint64_t f = w.shape.feature_floats(), l = w.shape.label_floats();
  if (w.shape.window > (1u << 20) || w.shape.features > (1u << 20) ||
      w.shape.batch > (1u << 20) || w.shape.horizon > (1u << 20) ||
      frames[2].size() != f * sizeof(float) ||
      frames[3].size() != l * sizeof(float) ||
      w.shape.bytes() > w.queue->slot_bytes())
    return fail(Code::kSizeMismatch,
                "QueuePush frames do not match the shape, or the batch does "
                "not fit a slot of " +
                    std::to_string(w.queue->slot_bytes()) + " bytes");
  Enqueue(std::move(w), frames, reply);
}

void QueueService::Enqueue(Waiting w, std::vector<zmq::message_t>& frames,
                           const Reply& reply) {
  Admission admitted;
  {
    MutexLock lock(mu_);
    admitted = AdmitLocked(w, frames);
  }
  // Replies go out after mu_ is released: the placer need not wait for them.
  if (admitted.queued) {
    work_.NotifyOne();
  } else {
    reply(admitted.identity, w.request_id, admitted.status, w.once);
  }
}

QueueService::Admission QueueService::AdmitLocked(
    Waiting& w, std::vector<zmq::message_t>& frames) {
  const QueueOnce& once = w.once;
  if (once.seq != 0) {
    if (DedupeSeen(*once.window, once.client, once.seq)) {
      ++duplicates_;  // enqueued before; its reply was lost
      return {false, &frames[0], Status::Ok()};
    }
    for (Waiting& earlier : waiting_) {
      if (earlier.once.seq != once.seq || earlier.once.client != once.client)
        continue;
      // A copy of a push still waiting for space: the copy's connection
      // gets the one reply (the first may be gone), and this copy finishes
      // here, unanswered.
      ++duplicates_;
      earlier.frames[0] = std::move(frames[0]);
      earlier.request_id = w.request_id;
      return {false, nullptr, Status::Ok()};
    }
  }
  w.frames = std::move(frames);
  if (waiting_.empty()) {
    // The placer is idle: nothing contends for mu_ during this copy.
    Status s = TryPlace(w, *w.queue, std::chrono::milliseconds(0));
    if (s.code() != Code::kTimeout) return {false, &w.frames[0], s};
  }
  if (waiting_.size() >= kMaxWaiting)
    return {
        false, &w.frames[0],
        Status(Code::kBusy, "too many pushes already wait for queue space")};
  waiting_.push_back(std::move(w));  // behind earlier ones: order is kept
  if (!placer_.joinable()) placer_ = std::thread([this] { RunPlacer(); });
  return {true, nullptr, Status::Ok()};
}

}  // namespace shardps
