#include "common/file_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <utility>

namespace shardps {

namespace {

// Tells temp files of one process apart (two threads saving the same path).
// Relaxed: only the uniqueness of the value matters; no other memory is
// published through it.
std::atomic<uint64_t> next_temp_file{0};

// How many taken temp names to step over: a stale one is left only by a
// crashed writer whose pid we reuse, so a few tries are plenty.
constexpr int kTempNameTries = 16;

}  // namespace

Status WriteAll(int fd, const void* data, size_t size,
                const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux moves at most ~2 GiB per call; the loop takes the rest.
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(Code::kIoError, "write " + path, errno);
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status SyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0)
    return ErrnoStatus(Code::kIoError, "fsync " + dir, errno);
  return Status::Ok();
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return path.substr(0, slash + 1);  // "/" stays "/"
}

Result<FileWriter> FileWriter::Create(const std::string& path, mode_t perms,
                                      Mode mode) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC |
                    (mode == Mode::kExclusive ? O_EXCL : O_TRUNC);
  UniqueFd fd(::open(path.c_str(), flags, perms));
  if (!fd.valid()) {
    const Code code = errno == EEXIST ? Code::kBusy : Code::kIoError;
    return ErrnoStatus(code, "create " + path, errno);
  }
  return FileWriter(path, std::move(fd));
}

Status FileWriter::Append(const void* data, size_t size) {
  Status s = WriteAll(fd_.get(), data, size, path_);
  // Counted only when whole: after an error the caller abandons the file.
  if (s.ok()) bytes_ += size;
  return s;
}

Status FileWriter::Sync() {
  if (::fsync(fd_.get()) != 0)
    return ErrnoStatus(Code::kIoError, "fsync " + path_, errno);
  return Status::Ok();
}

Status FileWriter::Close() {
  // close(2) releases the descriptor even when it fails; never retry it.
  if (::close(fd_.Release()) != 0)
    return ErrnoStatus(Code::kIoError, "close " + path_, errno);
  return Status::Ok();
}

Result<AtomicFileWriter> AtomicFileWriter::Create(const std::string& path,
                                                  mode_t perms) {
  const std::string prefix = path + ".tmp." + std::to_string(::getpid()) + ".";
  for (int attempt = 0;; ++attempt) {
    const std::string tmp = prefix + std::to_string(next_temp_file.fetch_add(
                                         1, std::memory_order_relaxed));
    Result<FileWriter> file =
        FileWriter::Create(tmp, perms, FileWriter::Mode::kExclusive);
    if (file.ok()) return AtomicFileWriter(path, std::move(file).value());
    // Exclusive, so that a name another writer holds is never truncated.
    if (file.status().code() != Code::kBusy || attempt + 1 == kTempNameTries)
      return file.status();
  }
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      file_(std::move(other.file_)),
      first_error_(std::move(other.first_error_)),
      done_(std::exchange(other.done_, true)) {}

AtomicFileWriter::~AtomicFileWriter() {
  // The descriptor, if still open, is closed by file_'s destructor.
  if (!done_) ::unlink(file_.path().c_str());
}

Status AtomicFileWriter::Append(const void* data, size_t size) {
  if (!first_error_.ok()) return first_error_;
  first_error_ = file_.Append(data, size);
  return first_error_;
}

Status AtomicFileWriter::Commit() {
  Status s = first_error_;
  // Without the fsync a crash soon after the rename could leave an empty or
  // short file under the final name on some filesystems.
  if (s.ok()) s = file_.Sync();
  if (s.ok()) s = file_.Close();
  if (s.ok() && ::rename(file_.path().c_str(), path_.c_str()) != 0)
    s = ErrnoStatus(Code::kIoError, "rename " + file_.path() + " to " + path_,
                    errno);
  if (!s.ok()) return s;  // the destructor removes the temp file
  done_ = true;
  // The rename itself is durable only once the directory is.
  return SyncDirectory(DirectoryOf(path_));
}

Status WriteFileAtomically(const std::string& path, std::string_view contents,
                           mode_t perms) {
  Result<AtomicFileWriter> writer = AtomicFileWriter::Create(path, perms);
  if (!writer.ok()) return writer.status();
  SHARDPS_RETURN_IF_ERROR(writer->Append(contents));
  return writer->Commit();
}

}  // namespace shardps
