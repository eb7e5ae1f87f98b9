#include "server/reply_budget.h"

#include <string>

namespace shardps {

ReplyBudget::ReplyBudget(uint64_t per_connection, uint64_t total)
    : per_connection_(per_connection), total_(total) {}

ReplyBudget::Account* ReplyBudget::For(int fd) {
  auto it = by_fd_.find(fd);
  if (it != by_fd_.end()) return it->second;
  Account* account;
  if (!idle_.empty()) {
    account = idle_.back();
    idle_.pop_back();
  } else {
    accounts_.push_back(std::make_unique<Account>(this));
    account = accounts_.back().get();
  }
  by_fd_.emplace(fd, account);
  return account;
}

void ReplyBudget::Disconnected(int fd) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end() || fd < 0) return;
  idle_.push_back(it->second);
  by_fd_.erase(it);
}

Status ReplyBudget::Admit(const Account& account, uint64_t bytes) const {
  const uint64_t held = account.bytes();
  if (held + bytes > per_connection_)
    return Status(Code::kBusy,
                  "this connection already holds " + std::to_string(held) +
                      " bytes of replies it has not read; a reply of " +
                      std::to_string(bytes) + " more would pass " +
                      std::to_string(per_connection_) +
                      " (serve --max-reply-bytes-per-client): read the "
                      "replies, then retry");
  const uint64_t all = total_bytes();
  if (all + bytes > total_)
    return Status(Code::kBusy,
                  "this shard already holds " + std::to_string(all) +
                      " bytes of replies its clients have not read; a reply "
                      "of " +
                      std::to_string(bytes) + " more would pass " +
                      std::to_string(total_) +
                      " (serve --max-reply-bytes): retry later");
  return Status::Ok();
}

}  // namespace shardps
