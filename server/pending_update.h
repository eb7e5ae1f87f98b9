// PendingUpdate: one Push or PushPull request while the pool applies it.
//
// Ownership: the frontend creates it, releases it to the pool as a raw
// pointer for the duration of the apply, and takes it back (as a unique_ptr)
// from the CompletionQueue. The request's frames live here, so the pool reads
// each gradient straight from the received ZeroMQ buffer.
#ifndef SHARDPS_SERVER_PENDING_UPDATE_H_
#define SHARDPS_SERVER_PENDING_UPDATE_H_

#include <atomic>
#include <cstdint>
#include <vector>
#include <zmq.hpp>

#include "protocol_generated.h"

namespace shardps {

struct PendingUpdate {
  zmq::message_t identity;             // the client's ROUTER identity
  std::vector<zmq::message_t> frames;  // [header, payload...] as received
  std::vector<uint32_t> blocks;        // tensor block index per payload frame
  std::vector<uint32_t> local;         // the same blocks' indices on the shard
  std::vector<zmq::message_t> out;     // PushPull: updated blocks to return
  uint64_t request_id = 0;
  uint64_t received_ns = 0;  // MetricNowNs at arrival (ShardMetrics)
  wire::Op op = wire::Op::Push;
  wire::DType dtype = wire::DType::F32;  // of the gradient frames
  // Multiplies the gradient (clip_norm); 1 = as sent.
  float grad_scale = 1;
  // Exactly-once (seq != 0): see BlockTask.
  uint64_t client = 0;
  uint32_t slot = 0;
  uint64_t seq = 0;
  // A bsp apply of `clock`'s accumulated gradients: internal, no reply.
  bool bsp_apply = false;
  // The clock applied (bsp_apply), or the push's clock.
  int64_t clock = -1;
  // Blocks still being applied; the pool thread that brings it to zero hands
  // the request back. acq_rel so the frontend sees every block's writes.
  std::atomic<uint32_t> remaining{0};
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_PENDING_UPDATE_H_
