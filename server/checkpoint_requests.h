// CheckpointRequests: clients' Checkpoint requests waiting for the
// checkpointer thread (see Checkpointer) to write the checkpoint.
//
// Each waiting request holds its client's identity until the checkpoint is
// written (seconds), so their number is bounded: more get kBusy.
//
// Thread-safety: the frontend thread only.
#ifndef SHARDPS_SERVER_CHECKPOINT_REQUESTS_H_
#define SHARDPS_SERVER_CHECKPOINT_REQUESTS_H_

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <zmq.hpp>

#include "shardps/status.h"

namespace shardps {

class CheckpointRequests {
 public:
  struct Waiting {
    zmq::message_t identity;  // the client's, to send the reply to
    uint64_t request_id;
  };

  // Remembers a request (a copy of `identity`) and returns the token to
  // give Checkpointer::Request; kBusy when too many already wait.
  Result<uint64_t> Add(zmq::message_t& identity, uint64_t request_id);

  // The request `token` was given for, removed; nullopt for a token this
  // object does not know (periodic checkpoints have none).
  std::optional<Waiting> Take(uint64_t token);

 private:
  std::unordered_map<uint64_t, Waiting> waiting_;  // by token
  uint64_t next_token_ = 1;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_CHECKPOINT_REQUESTS_H_
