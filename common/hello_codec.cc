#include "common/hello_codec.h"

#include <utility>

namespace shardps {

void EncodeHelloReply(uint64_t request_id, const ShardHello& hello,
                      flatbuffers::FlatBufferBuilder* builder) {
  builder->Clear();
  std::vector<flatbuffers::Offset<wire::TensorInfo>> tensors;
  for (const ShardHello::Tensor& t : hello.tensors)
    tensors.push_back(wire::CreateTensorInfo(
        *builder, builder->CreateString(t.name), builder->CreateVector(t.shape),
        builder->CreateString(t.optimizer), t.clip_norm));
  std::vector<flatbuffers::Offset<wire::SparseTableInfo>> tables;
  for (const ShardHello::Table& t : hello.tables)
    tables.push_back(wire::CreateSparseTableInfo(
        *builder, builder->CreateString(t.name), t.dim, t.capacity,
        builder->CreateString(t.optimizer)));
  auto encoded = wire::CreateHelloInfo(
      *builder, builder->CreateString(hello.model), hello.spec_hash,
      hello.shard, hello.shards, hello.block_floats,
      builder->CreateString(hello.optimizer), builder->CreateVector(tensors),
      builder->CreateString(hello.segment),
      builder->CreateString(hello.hostname),
      builder->CreateString(hello.consistency), hello.workers,
      builder->CreateVector(hello.clocks), builder->CreateVector(tables),
      hello.segment_id.hi, hello.segment_id.lo);
  wire::ReplyBuilder reply(*builder);
  reply.add_request_id(request_id);
  reply.add_hello(encoded);
  builder->Finish(reply.Finish());
}

Result<ShardHello> DecodeHello(const wire::Reply& reply) {
  const wire::HelloInfo* h = reply.hello();
  if (h == nullptr || h->model() == nullptr || h->tensors() == nullptr ||
      h->block_floats() == 0 || h->shards() == 0)
    return Status(Code::kBadMessage, "Hello reply without a layout");
  ShardHello out;
  out.model = h->model()->str();
  out.spec_hash = h->spec_hash();
  out.shard = h->shard();
  out.shards = h->shards();
  out.block_floats = h->block_floats();
  out.optimizer = h->optimizer() ? h->optimizer()->str() : "";
  out.segment = h->segment() ? h->segment()->str() : "";
  out.hostname = h->hostname() ? h->hostname()->str() : "";
  out.segment_id = SegmentId{h->segment_id_hi(), h->segment_id_lo()};
  out.consistency = h->consistency() ? h->consistency()->str() : "async";
  out.workers = h->workers();
  if (h->clocks() != nullptr)
    out.clocks.assign(h->clocks()->begin(), h->clocks()->end());
  if (h->tables() != nullptr) {
    for (const wire::SparseTableInfo* t : *h->tables()) {
      if (t == nullptr || t->name() == nullptr || t->dim() == 0)
        return Status(Code::kBadMessage, "Hello reply with a malformed table");
      out.tables.push_back(
          {t->name()->str(), t->dim(), t->capacity(),
           t->optimizer() ? t->optimizer()->str() : out.optimizer});
    }
  }
  if (out.clocks.size() != out.workers)
    return Status(Code::kBadMessage,
                  "Hello reply with " + std::to_string(out.clocks.size()) +
                      " clocks for " + std::to_string(out.workers) +
                      " workers");
  for (const wire::TensorInfo* t : *h->tensors()) {
    if (t == nullptr || t->name() == nullptr || t->shape() == nullptr)
      return Status(Code::kBadMessage, "Hello reply with a malformed tensor");
    ShardHello::Tensor tensor;
    tensor.name = t->name()->str();
    tensor.shape.assign(t->shape()->begin(), t->shape()->end());
    tensor.optimizer = t->optimizer() ? t->optimizer()->str() : out.optimizer;
    tensor.clip_norm = t->clip_norm();
    out.tensors.push_back(std::move(tensor));
  }
  return out;
}

}  // namespace shardps
