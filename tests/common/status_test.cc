#include "shardps/status.h"

#include <catch2/catch.hpp>
#include <cerrno>
#include <iterator>
#include <string>

#include "common/posix_file.h"

namespace shardps {
namespace {

TEST_CASE("status named constructors carry their code and message",
          "[status]") {
  const struct {
    Status status;
    Code code;
  } cases[] = {
      {Status::InvalidArgument("m"), Code::kInvalidArgument},
      {Status::NotFound("m"), Code::kNotFound},
      {Status::SizeMismatch("m"), Code::kSizeMismatch},
      {Status::SpecMismatch("m"), Code::kSpecMismatch},
      {Status::Timeout("m"), Code::kTimeout},
      {Status::Unavailable("m"), Code::kUnavailable},
      {Status::Corrupt("m"), Code::kCorrupt},
      {Status::Busy("m"), Code::kBusy},
      {Status::IoError("m"), Code::kIoError},
      {Status::Unimplemented("m"), Code::kUnimplemented},
      {Status::BadMessage("m"), Code::kBadMessage},
      {Status::Internal("m"), Code::kInternal},
      {Status::Closed("m"), Code::kClosed},
      {Status::ResourceExhausted("m"), Code::kResourceExhausted},
      {Status::PermissionDenied("m"), Code::kPermissionDenied},
  };
  // One case per error code: a new code needs its constructor too.
  CHECK(std::size(cases) == static_cast<size_t>(kLastCode));
  for (const auto& c : cases) {
    INFO(CodeName(c.code));
    CHECK(c.status.code() == c.code);
    CHECK(c.status.message() == "m");
    CHECK_FALSE(c.status.ok());
  }
}

TEST_CASE("errno status picks the code from errno unless one is given",
          "[status]") {
  CHECK(ErrnoStatus("open f", ENOENT).code() == Code::kNotFound);
  CHECK(ErrnoStatus("flock f", EWOULDBLOCK).code() == Code::kBusy);
  CHECK(ErrnoStatus("read f", EIO).code() == Code::kIoError);
  const Status fixed = ErrnoStatus(Code::kIoError, "create f", ENOENT);
  CHECK(fixed.code() == Code::kIoError);
  CHECK(fixed.message() == "create f: No such file or directory");
}

}  // namespace
}  // namespace shardps
