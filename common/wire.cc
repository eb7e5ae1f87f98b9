#include "common/wire.h"

#include <cstring>
#include <string>

namespace shardps {

const uint8_t* HeaderScratch::Assign(const void* data, size_t size) {
  words_.resize((size + sizeof(uint64_t) - 1) / sizeof(uint64_t) + 1);
  std::memcpy(words_.data(), data, size);
  return reinterpret_cast<const uint8_t*>(words_.data());
}

namespace {

Status BadHeader(const char* what, size_t size) {
  return Status(Code::kBadMessage, std::string(what) + " header of " +
                                       std::to_string(size) +
                                       " bytes is not a valid FlatBuffer");
}

template <typename T>
Result<const T*> Parse(const char* what, const void* data, size_t size,
                       HeaderScratch& scratch) {
  if (size < 8 || size > kMaxHeaderBytes)
    return Status(Code::kBadMessage, std::string(what) + " header is " +
                                         std::to_string(size) +
                                         " bytes (want 8.." +
                                         std::to_string(kMaxHeaderBytes) + ")");
  const uint8_t* buf = scratch.Assign(data, size);
  // Depth and table limits keep a hostile header from costing much to check.
  flatbuffers::Verifier verifier(buf, size, /*max_depth=*/16,
                                 /*max_tables=*/4096);
  if (!verifier.VerifyBuffer<T>(nullptr)) return BadHeader(what, size);
  return flatbuffers::GetRoot<T>(buf);
}

}  // namespace

Result<const wire::Request*> ParseRequest(const void* data, size_t size,
                                          HeaderScratch& scratch) {
  auto r = Parse<wire::Request>("request", data, size, scratch);
  if (!r.ok()) return r;
  const wire::Request* req = *r;
  if (req->op() > wire::Op::MAX)
    return Status(Code::kBadMessage,
                  "unknown op " + std::to_string(static_cast<int>(req->op())));
  return req;
}

Result<const wire::Reply*> ParseReply(const void* data, size_t size,
                                      HeaderScratch& scratch) {
  return Parse<wire::Reply>("reply", data, size, scratch);
}

Code CodeFromWire(uint8_t code) {
  if (code > static_cast<uint8_t>(kLastCode)) return Code::kBadMessage;
  return static_cast<Code>(code);
}

const char* OpName(wire::Op op) {
  const char* name = wire::EnumNameOp(op);
  return (name != nullptr && *name != '\0') ? name : "unknown op";
}

}  // namespace shardps
