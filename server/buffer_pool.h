// BufferPool: reusable send buffers for reply payloads.
//
// A pulled block must be copied out of the segment (a seqlock snapshot)
// before ZeroMQ sends it. Allocating a fresh block-sized buffer per reply
// costs more than the copy: glibc serves large allocations with fresh pages
// that fault in one by one. The pool keeps released buffers for reuse.
// Payloads much smaller than a buffer (or larger) get a buffer of their own
// size instead, so a small reply never holds a block-sized buffer.
//
// Every message may be charged to a ReplyBudget account: its buffer's bytes
// (Footprint) are charged when it is made and released when ZeroMQ frees it.
//
// Lifetime: messages from Message() return their memory to the pool from
// ZeroMQ's I/O thread, so the pool (and the accounts they are charged to)
// must outlive the ZeroMQ context that sends them.
// Thread-safety: Message() and the release path are thread-safe.
#ifndef SHARDPS_SERVER_BUFFER_POOL_H_
#define SHARDPS_SERVER_BUFFER_POOL_H_

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <vector>
#include <zmq.hpp>

#include "common/mutex.h"
#include "server/reply_budget.h"

namespace shardps {

class BufferPool {
 public:
  // Buffers are `buffer_bytes` long; idle ones are kept up to
  // `max_cached_bytes` in total (at least one).
  BufferPool(size_t buffer_bytes, size_t max_cached_bytes);

  // A message of `bytes` (any size) whose contents are unspecified until
  // the caller fills them, charged to `account` (none when null) until
  // ZeroMQ frees it. Throws std::bad_alloc when memory is exhausted, like
  // any allocation.
  zmq::message_t Message(size_t bytes, ReplyBudget::Account* account)
      EXCLUDES(mu_);

  // The bytes a Message(bytes) holds (and charges): a pooled buffer's
  // length, or `bytes` for a buffer of its own.
  size_t Footprint(size_t bytes) const {
    return Pooled(bytes) ? buffer_bytes_ : bytes;
  }

 private:
  // Written before each buffer's payload, so the release path knows what to
  // give back without a lookup. Aligned as malloc aligns (max_align_t) and
  // a whole number of that alignment long, so both the prefix and the
  // payload after it keep malloc's alignment. (It was alignas(64), which
  // malloc does not give: UBSan reported the misaligned prefix.)
  struct alignas(std::max_align_t) Prefix {
    BufferPool* pool;
    ReplyBudget::Account* account;
    size_t charged;
    bool pooled;
  };
  // malloc'd, not new[]'d: a fresh buffer is overwritten before it is sent,
  // so zero-filling it first would only fault its pages in twice.
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<char, FreeDeleter>;  // starts at the Prefix

  bool Pooled(size_t bytes) const {
    return bytes <= buffer_bytes_ && bytes > buffer_bytes_ / 4;
  }
  static void Release(void* data, void* hint);

  const size_t buffer_bytes_;
  const size_t max_cached_;
  Mutex mu_;
  std::vector<Buffer> free_ GUARDED_BY(mu_);
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_BUFFER_POOL_H_
