// Writing files front to back, once: the one place where write(2)'s short
// writes and EINTR, fsync, and the temp-file-and-rename dance are handled.
//
// Every file shardps writes is written sequentially and never modified
// afterwards (checkpoints, cluster files, key files, .npy arrays), which is
// also what write-once mounts (Alluxio-FUSE, HDFS-FUSE, object stores) allow.
//
// Errors: kIoError "<op> <path>: <strerror>" for every OS failure, even
// ENOENT (a missing directory is an I/O failure when writing, not a missing
// input), except kBusy when an exclusive create finds the file already there.
//
// Thread-safety: none per object; distinct objects are independent.
#ifndef SHARDPS_COMMON_FILE_WRITER_H_
#define SHARDPS_COMMON_FILE_WRITER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/posix_file.h"
#include "shardps/status.h"

namespace shardps {

// Writes all `size` bytes at fd's offset, retrying short writes and EINTR.
// On error (kIoError "write <path>: ...") the file holds some prefix.
Status WriteAll(int fd, const void* data, size_t size, const std::string& path);

// fsyncs the directory `dir`, so that a create or rename in it survives a
// crash. kIoError "fsync <dir>: ...".
Status SyncDirectory(const std::string& dir);

// The directory holding `path` ("." for a bare file name), for SyncDirectory.
std::string DirectoryOf(const std::string& path);

// A new file, appended to front to back.
class FileWriter {
 public:
  enum class Mode {
    kExclusive,  // fail with kBusy when `path` exists (O_EXCL)
    kTruncate,   // replace whatever is there (O_TRUNC)
  };

  // Opens `path` for writing with permissions `perms` (filtered by the
  // umask, as open(2) does).
  static Result<FileWriter> Create(const std::string& path, mode_t perms,
                                   Mode mode);

  FileWriter(FileWriter&&) noexcept = default;
  FileWriter& operator=(FileWriter&&) noexcept = default;

  Status Append(const void* data, size_t size);
  Status Append(std::string_view text) {
    return Append(text.data(), text.size());
  }
  // fsync: the bytes appended so far survive a crash.
  Status Sync();
  // Closes the file, reporting close(2)'s error (some filesystems report a
  // failed write only there). Later calls are invalid. The destructor closes
  // a file not closed yet and ignores the error.
  Status Close();

  int fd() const { return fd_.get(); }  // borrowed, e.g. for fchmod
  const std::string& path() const { return path_; }
  uint64_t bytes() const { return bytes_; }  // appended so far

 private:
  FileWriter(std::string path, UniqueFd fd)
      : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
  uint64_t bytes_ = 0;
};

// Replaces `path` as a whole: appends go to a temp file beside it
// ("<path>.tmp.<pid>.<n>"), and Commit fsyncs it, renames it over `path` and
// fsyncs the directory. A reader sees the old file or the new one, never a
// part; a crash leaves at most a stray temp file, never a short `path`.
class AtomicFileWriter {
 public:
  // Creates the temp file with permissions `perms` (filtered by the umask).
  static Result<AtomicFileWriter> Create(const std::string& path,
                                         mode_t perms = 0644);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  // Removes the temp file unless Commit succeeded.
  ~AtomicFileWriter();

  // After a failed Append, Commit returns that error and `path` stays as it
  // was.
  Status Append(const void* data, size_t size);
  Status Append(std::string_view text) {
    return Append(text.data(), text.size());
  }

  // Publishes the file. On an error before the rename, `path` is unchanged
  // and the temp file is removed. An error from the final directory fsync
  // means `path` already holds the new contents, which may not survive a
  // crash. Call at most once.
  Status Commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return file_.path(); }

 private:
  AtomicFileWriter(std::string path, FileWriter file)
      : path_(std::move(path)), file_(std::move(file)) {}
  std::string path_;
  FileWriter file_;
  Status first_error_;
  bool done_ = false;  // committed or moved from: nothing to remove
};

// AtomicFileWriter in one call: `path` holds exactly `contents` afterwards,
// or is unchanged on error (see Commit for the directory fsync).
Status WriteFileAtomically(const std::string& path, std::string_view contents,
                           mode_t perms = 0644);

}  // namespace shardps

#endif  // SHARDPS_COMMON_FILE_WRITER_H_
