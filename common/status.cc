#include "shardps/status.h"

namespace shardps {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid argument";
    case Code::kNotFound:
      return "not found";
    case Code::kSizeMismatch:
      return "size mismatch";
    case Code::kSpecMismatch:
      return "spec mismatch";
    case Code::kTimeout:
      return "timeout";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kCorrupt:
      return "corrupt";
    case Code::kBusy:
      return "busy";
    case Code::kIoError:
      return "i/o error";
    case Code::kUnimplemented:
      return "unimplemented";
    case Code::kBadMessage:
      return "bad message";
    case Code::kInternal:
      return "internal error";
    case Code::kClosed:
      return "closed";
    case Code::kResourceExhausted:
      return "resource exhausted";
    case Code::kPermissionDenied:
      return "permission denied";
  }
  return "unknown code";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace shardps
