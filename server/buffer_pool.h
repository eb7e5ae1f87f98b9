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
#include <memory>
#include <mutex>
#include <vector>

#include <zmq.hpp>

namespace shardps {

class BufferPool {
 public:
  // Buffers are `buffer_bytes` long; at most `max_cached` idle ones are kept.
  BufferPool(size_t buffer_bytes, size_t max_cached);

  // A message of `bytes` (REQUIRES: <= buffer_bytes) backed by a pooled
  // buffer; its contents are unspecified until the caller fills them.
  zmq::message_t Message(size_t bytes);

 private:
  static void Release(void* data, void* hint);

  const size_t buffer_bytes_;
  const size_t max_cached_;
  std::mutex mu_;
  std::vector<std::unique_ptr<char[]>> free_;  // guarded by mu_
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_BUFFER_POOL_H_
