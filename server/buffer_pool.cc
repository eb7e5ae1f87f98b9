#include "server/buffer_pool.h"

#include <algorithm>
#include <new>

namespace shardps {

BufferPool::BufferPool(size_t buffer_bytes, size_t max_cached_bytes)
    : buffer_bytes_(buffer_bytes),
      max_cached_(std::max<size_t>(1, max_cached_bytes / buffer_bytes)) {}

zmq::message_t BufferPool::Message(size_t bytes) {
  Buffer buffer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      buffer = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!buffer) {
    buffer.reset(static_cast<char*>(std::malloc(buffer_bytes_)));
    if (!buffer) throw std::bad_alloc();
  }
  // Ownership passes to the message; Release takes it back.
  return zmq::message_t(buffer.release(), bytes, &BufferPool::Release, this);
}

void BufferPool::Release(void* data, void* hint) {
  Buffer buffer(static_cast<char*>(data));
  auto* pool = static_cast<BufferPool*>(hint);
  std::lock_guard<std::mutex> lock(pool->mu_);
  if (pool->free_.size() < pool->max_cached_)
    pool->free_.push_back(std::move(buffer));
}

}  // namespace shardps
