#include "server/buffer_pool.h"

namespace shardps {

BufferPool::BufferPool(size_t buffer_bytes, size_t max_cached)
    : buffer_bytes_(buffer_bytes), max_cached_(max_cached) {}

zmq::message_t BufferPool::Message(size_t bytes) {
  std::unique_ptr<char[]> buffer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      buffer = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!buffer) buffer = std::make_unique<char[]>(buffer_bytes_);
  // Ownership passes to the message; Release takes it back.
  return zmq::message_t(buffer.release(), bytes, &BufferPool::Release, this);
}

void BufferPool::Release(void* data, void* hint) {
  std::unique_ptr<char[]> buffer(static_cast<char*>(data));
  auto* pool = static_cast<BufferPool*>(hint);
  std::lock_guard<std::mutex> lock(pool->mu_);
  if (pool->free_.size() < pool->max_cached_)
    pool->free_.push_back(std::move(buffer));
}

}  // namespace shardps
