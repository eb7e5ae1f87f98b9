// The Hello reply (wire::HelloInfo inside a wire::Reply): what one shard
// says about itself when a client connects. Its encoder, used by the server,
// and its decoder, used by the client, sit side by side so the two cannot
// drift apart.
//
// Thread-safety: pure functions; each caller brings its own builder.
#ifndef SHARDPS_COMMON_HELLO_CODEC_H_
#define SHARDPS_COMMON_HELLO_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/segment_id.h"
#include "common/wire.h"
#include "shardps/status.h"

namespace shardps {

// One shard's answer to Hello.
struct ShardHello {
  struct Tensor {
    std::string name;
    std::vector<uint64_t> shape;
    std::string optimizer;  // decoded: the model's optimizer if not sent
    float clip_norm = 0;    // > 0: pushes must carry the gradient's norm
  };
  struct Table {
    std::string name;
    uint64_t dim = 0;       // floats per row
    uint64_t capacity = 0;  // rows over all shards
    std::string optimizer;  // decoded: the model's optimizer if not sent
  };

  std::string model;
  uint64_t spec_hash = 0;
  uint32_t shard = 0;
  uint32_t shards = 0;
  uint64_t block_floats = 0;
  std::string optimizer;
  std::vector<Tensor> tensors;  // every tensor of the model, in spec order
  std::string segment;          // absolute path of the served segment
  std::string hostname;         // for people, never for locality
  SegmentId segment_id;         // empty: not sent (an older server)
  std::string consistency = "async";  // decoded: "async" if not sent
  uint32_t workers = 0;
  std::vector<int64_t> clocks;  // per worker
  std::vector<Table> tables;    // every sparse table, in spec order
};

// Clears `builder` and finishes in it a Reply to request `request_id`
// carrying `hello`.
void EncodeHelloReply(uint64_t request_id, const ShardHello& hello,
                      flatbuffers::FlatBufferBuilder* builder);

// The Hello of a verified Reply. kBadMessage when it carries no layout (no
// hello, model or tensor list, or a zero block size or shard count), a
// tensor or table without its name (or shape, or with dim 0), or a clock
// list whose length is not the worker count.
Result<ShardHello> DecodeHello(const wire::Reply& reply);

}  // namespace shardps

#endif  // SHARDPS_COMMON_HELLO_CODEC_H_
