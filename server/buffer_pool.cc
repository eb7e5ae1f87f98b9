#include "server/buffer_pool.h"

#include <algorithm>
#include <new>

namespace shardps {

BufferPool::BufferPool(size_t buffer_bytes, size_t max_cached_bytes)
    : buffer_bytes_(buffer_bytes),
      max_cached_(std::max<size_t>(1, max_cached_bytes / buffer_bytes)) {}

zmq::message_t BufferPool::Message(size_t bytes,
                                   ReplyBudget::Account* account) {
  const bool pooled = Pooled(bytes);
  Buffer buffer;
  if (pooled) {
    MutexLock lock(mu_);
    if (!free_.empty()) {
      buffer = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!buffer) {
    const size_t length = pooled ? buffer_bytes_ : bytes;
    buffer.reset(static_cast<char*>(std::malloc(sizeof(Prefix) + length)));
    if (!buffer) throw std::bad_alloc();
  }
  const size_t charged = Footprint(bytes);
  new (buffer.get()) Prefix{this, account, charged, pooled};
  if (account != nullptr) account->Charge(charged);
  // Ownership passes to the message; Release takes it back.
  return zmq::message_t(buffer.release() + sizeof(Prefix), bytes,
                        &BufferPool::Release, nullptr);
}

void BufferPool::Release(void* data, void* /*hint*/) {
  Buffer buffer(static_cast<char*>(data) - sizeof(Prefix));
  const Prefix prefix = *reinterpret_cast<const Prefix*>(buffer.get());
  if (prefix.account != nullptr) prefix.account->Release(prefix.charged);
  if (!prefix.pooled) return;
  BufferPool* pool = prefix.pool;
  MutexLock lock(pool->mu_);
  if (pool->free_.size() < pool->max_cached_)
    pool->free_.push_back(std::move(buffer));
}

}  // namespace shardps
