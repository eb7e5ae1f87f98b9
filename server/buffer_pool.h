// BufferPool: reusable send buffers for reply payloads.
//
// A pulled block must be copied out of the segment (a seqlock snapshot)
// before ZeroMQ sends it. Allocating a fresh block-sized buffer per reply
// costs more than the copy: glibc serves large allocations with fresh pages
// that fault in one by one. The pool keeps released buffers for reuse.
//
// Lifetime: messages from Message() return their memory to the pool from
// ZeroMQ's I/O thread, so the pool must outlive the ZeroMQ context that
// sends them.
// Thread-safety: Message() and the release path are thread-safe.
#ifndef SHARDPS_SERVER_BUFFER_POOL_H_
#define SHARDPS_SERVER_BUFFER_POOL_H_

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>
#include <zmq.hpp>

namespace shardps {

class BufferPool {
 public:
  // Buffers are `buffer_bytes` long; idle ones are kept up to
  // `max_cached_bytes` in total (at least one).
  BufferPool(size_t buffer_bytes, size_t max_cached_bytes);

  // A message of `bytes` (REQUIRES: <= buffer_bytes) backed by a pooled
  // buffer; its contents are unspecified until the caller fills them.
  // Throws std::bad_alloc when memory is exhausted, like any allocation.
  zmq::message_t Message(size_t bytes);

 private:
  // malloc'd, not new[]'d: a fresh buffer is overwritten before it is sent,
  // so zero-filling it first would only fault its pages in twice.
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<char, FreeDeleter>;

  static void Release(void* data, void* hint);

  const size_t buffer_bytes_;
  const size_t max_cached_;
  std::mutex mu_;
  std::vector<Buffer> free_;  // guarded by mu_
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_BUFFER_POOL_H_
