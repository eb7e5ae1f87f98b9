// ReplyBudget: bounds the reply payload a shard holds for its connections.
//
// A reply's payload buffers stay allocated until ZeroMQ has written them to
// the connection (or dropped them), so a client that sends requests and
// never reads the replies would make the server hold ever more memory. Each
// connection has an Account of the payload bytes it holds; the frontend
// admits a Pull, PushPull or PullRows only if its reply fits both the
// connection's bound and the server's total (else kBusy naming the flag),
// and charges the buffers as it makes them (BufferPool::Message). ZeroMQ's
// I/O thread releases them when it frees the message.
//
// Lifetime: accounts live as long as the budget, so a message freed after
// its connection left still finds its account; a connection that reuses a
// departed one's account inherits whatever that one still holds (a stricter
// bound, never a looser one). The budget must outlive the ZeroMQ context.
// Thread-safety: For/Disconnected/Admit from the frontend thread only;
// Account::Charge/Release and the byte counts from any thread.
#ifndef SHARDPS_SERVER_REPLY_BUDGET_H_
#define SHARDPS_SERVER_REPLY_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "shardps/status.h"

namespace shardps {

class ReplyBudget {
 public:
  class Account {
   public:
    explicit Account(ReplyBudget* budget) : budget_(budget) {}
    // Relaxed: the counts bound memory, they order nothing. The frontend
    // charges and reads; other threads only release, so a stale read can
    // only refuse a reply that would have fit a moment later.
    void Charge(uint64_t bytes) {
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
      budget_->total_bytes_.fetch_add(bytes, std::memory_order_relaxed);
    }
    void Release(uint64_t bytes) {
      bytes_.fetch_sub(bytes, std::memory_order_relaxed);
      budget_->total_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    }
    uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

   private:
    ReplyBudget* const budget_;
    std::atomic<uint64_t> bytes_{0};
  };

  // Bounds in bytes: `per_connection` for one connection, `total` for all.
  ReplyBudget(uint64_t per_connection, uint64_t total);

  // The account of connection `fd` (ZMQ_SRCFD; -1 when unknown, which all
  // such connections share), made on first use. Never null.
  Account* For(int fd);
  // Connection `fd` closed: its account may go to a later connection.
  void Disconnected(int fd);

  // OK when `bytes` more reply payload for `account` stay within both
  // bounds; kBusy naming the serve flag otherwise. Charges nothing.
  Status Admit(const Account& account, uint64_t bytes) const;

  uint64_t per_connection() const { return per_connection_; }
  uint64_t total() const { return total_; }
  uint64_t total_bytes() const {
    return total_bytes_.load(std::memory_order_relaxed);
  }

 private:
  const uint64_t per_connection_;
  const uint64_t total_;
  std::atomic<uint64_t> total_bytes_{0};
  // Frontend only. accounts_ never shrinks, so every Account* stays valid;
  // there are at most as many as connections served at once, plus one.
  std::vector<std::unique_ptr<Account>> accounts_;
  std::vector<Account*> idle_;  // accounts of departed connections
  std::unordered_map<int, Account*> by_fd_;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_REPLY_BUDGET_H_
