#include "server/request_validator.h"

#include "common/wire.h"

namespace shardps {

RequestValidator::RequestValidator(const Segment& segment)
    : segment_(segment), named_(segment.num_blocks(), 0) {
  for (uint32_t i = 0; i < segment.num_tensors(); ++i)
    tensors_.emplace(segment.tensor(i).name, i);
}

Status RequestValidator::CheckModel(const flatbuffers::String* model) const {
  const char* mine = segment_.header().model;
  if (model == nullptr || model->string_view() != mine)
    return Status(Code::kSpecMismatch,
                  "request for model '" +
                      (model ? model->str() : std::string()) +
                      "', this server holds model '" + mine + "'");
  return Status::Ok();
}

Result<uint32_t> RequestValidator::FindTensor(
    const flatbuffers::String* name) const {
  if (name == nullptr)
    return Status(Code::kInvalidArgument, "request names no tensor");
  auto it = tensors_.find(name->str());
  if (it == tensors_.end())
    return Status(Code::kNotFound, "unknown tensor '" + name->str() +
                                       "' in model '" +
                                       segment_.header().model + "'");
  return it->second;
}

Status RequestValidator::ValidateDense(const wire::Request& req,
                                       const std::vector<size_t>& payload_sizes,
                                       std::vector<uint32_t>* local) {
  local->clear();
  Status s = CheckBlocks(req, payload_sizes, local);
  // Clears the marks this request set, whether it passed or not.
  for (uint32_t l : *local) named_[l] = 0;
  if (!s.ok()) local->clear();
  return s;
}

Status RequestValidator::CheckBlocks(const wire::Request& req,
                                     const std::vector<size_t>& payload_sizes,
                                     std::vector<uint32_t>* local) {
  SHARDPS_RETURN_IF_ERROR(CheckModel(req.model()));
  auto tensor = FindTensor(req.tensor());
  if (!tensor.ok()) return tensor.status();
  const TensorEntry& t = segment_.tensor(*tensor);
  if (req.dtype() > wire::DType::MAX)
    return Status(
        Code::kInvalidArgument,
        "unknown dtype " + std::to_string(static_cast<int>(req.dtype())));
  if (req.op() == wire::Op::Pull && req.dtype() != wire::DType::F32)
    return Status(Code::kUnimplemented,
                  std::string("pull replies are F32; asked for ") +
                      wire::EnumNameDType(req.dtype()));
  const uint64_t element_bytes = GradientElementBytes(req.dtype());
  const auto* blocks = req.blocks();
  if (blocks == nullptr || blocks->size() == 0)
    return Status(
        Code::kInvalidArgument,
        std::string(OpName(req.op())) + " of '" + t.name + "' names no blocks");
  if (blocks->size() > kMaxBlocksPerRequest)
    return Status(Code::kInvalidArgument,
                  std::to_string(blocks->size()) +
                      " blocks in one request (max " +
                      std::to_string(kMaxBlocksPerRequest) + ")");
  const bool has_payload = req.op() != wire::Op::Pull;
  const size_t want_frames = has_payload ? blocks->size() : 0;
  if (payload_sizes.size() != want_frames)
    return Status(Code::kBadMessage, std::to_string(payload_sizes.size()) +
                                         " payload frames for " +
                                         std::to_string(want_frames) +
                                         " expected");
  for (size_t i = 0; i < blocks->size(); ++i) {
    const uint32_t b = blocks->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (b >= t.num_blocks)
      return Status(Code::kInvalidArgument,
                    "block " + std::to_string(b) + " of '" + t.name +
                        "' is out of range (it has " +
                        std::to_string(t.num_blocks) + " blocks)");
    const int64_t l = segment_.LocalBlock(*tensor, b);
    if (l < 0)
      return Status(Code::kInvalidArgument,
                    "block " + std::to_string(b) + " of '" + t.name +
                        "' does not live on shard " +
                        std::to_string(segment_.header().shard_index));
    if (named_[l] != 0)
      return Status(Code::kInvalidArgument,
                    std::string(OpName(req.op())) + " names block " +
                        std::to_string(b) + " of '" + t.name +
                        "' twice; name each block once");
    const uint64_t bytes = segment_.block(l).num_floats * element_bytes;
    if (has_payload && payload_sizes[i] != bytes)
      return Status(Code::kSizeMismatch,
                    "block " + std::to_string(b) + " of '" + t.name +
                        "' takes " + std::to_string(bytes) + " bytes of " +
                        wire::EnumNameDType(req.dtype()) +
                        ", payload frame has " +
                        std::to_string(payload_sizes[i]));
    named_[l] = 1;
    local->push_back(static_cast<uint32_t>(l));
  }
  return Status::Ok();
}

}  // namespace shardps
