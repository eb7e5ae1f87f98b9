// Status and Result<T>: how every expected failure in shardps is reported.
//
// A Status is a code plus a message a user can act on. Functions that can fail
// for reasons outside the caller's control (a dead peer, a bad request, a
// corrupt segment, a bad flag) return a Status or Result<T> instead of
// throwing. Both are [[nodiscard]]: ignoring one is a compile warning.
//
// Thread-safety: values; copy freely between threads.
#ifndef SHARDPS_STATUS_H_
#define SHARDPS_STATUS_H_

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace shardps {

// Stable numeric values: they travel on the wire in every reply.
enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument = 1,     // a bad flag, spec value or request field
  kNotFound = 2,            // unknown tensor, file or shard
  kSizeMismatch = 3,        // buffer or payload size does not match the layout
  kSpecMismatch = 4,        // segment or server built from a different spec
  kTimeout = 5,             // a deadline passed; the operation may still happen
  kUnavailable = 6,         // server gone or not connected; retryable
  kCorrupt = 7,             // segment or file failed its integrity checks
  kBusy = 8,                // resource held by someone else (segment lock)
  kIoError = 9,             // an OS call failed
  kUnimplemented = 10,      // op known to the protocol but not served yet
  kBadMessage = 11,         // malformed wire message
  kInternal = 12,           // a shardps bug; please report it
  kClosed = 13,             // the queue was closed; nothing more will come
  kResourceExhausted = 14,  // a bounded resource is full (table rows)
  kPermissionDenied = 15,   // unsafe file owner or mode; a revoked CURVE key
};

// The highest code; a peer sending a larger one sent a malformed reply.
inline constexpr Code kLastCode = Code::kPermissionDenied;

// Short lower-case name of a code, e.g. "size mismatch".
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  // One named constructor per error code, so call sites read as what went
  // wrong: `return Status::Corrupt(path + " fails its CRC-32C check");`.
  static Status InvalidArgument(std::string message) {
    return Status(Code::kInvalidArgument, std::move(message));
  }
  static Status NotFound(std::string message) {
    return Status(Code::kNotFound, std::move(message));
  }
  static Status SizeMismatch(std::string message) {
    return Status(Code::kSizeMismatch, std::move(message));
  }
  static Status SpecMismatch(std::string message) {
    return Status(Code::kSpecMismatch, std::move(message));
  }
  static Status Timeout(std::string message) {
    return Status(Code::kTimeout, std::move(message));
  }
  static Status Unavailable(std::string message) {
    return Status(Code::kUnavailable, std::move(message));
  }
  static Status Corrupt(std::string message) {
    return Status(Code::kCorrupt, std::move(message));
  }
  static Status Busy(std::string message) {
    return Status(Code::kBusy, std::move(message));
  }
  static Status IoError(std::string message) {
    return Status(Code::kIoError, std::move(message));
  }
  static Status Unimplemented(std::string message) {
    return Status(Code::kUnimplemented, std::move(message));
  }
  static Status BadMessage(std::string message) {
    return Status(Code::kBadMessage, std::move(message));
  }
  static Status Internal(std::string message) {
    return Status(Code::kInternal, std::move(message));
  }
  static Status Closed(std::string message) {
    return Status(Code::kClosed, std::move(message));
  }
  static Status ResourceExhausted(std::string message) {
    return Status(Code::kResourceExhausted, std::move(message));
  }
  static Status PermissionDenied(std::string message) {
    return Status(Code::kPermissionDenied, std::move(message));
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "<code name>: <message>", or "ok".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "a Result holds a value or an error");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace shardps

// Returns early from the enclosing function when `expr` yields a non-OK Status.
#define SHARDPS_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::shardps::Status shardps_status_ = (expr);        \
    if (!shardps_status_.ok()) return shardps_status_; \
  } while (0)

#endif  // SHARDPS_STATUS_H_
