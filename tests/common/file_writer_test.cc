#include "common/file_writer.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;
using test::TempDir;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

// Names in `dir`, so a test can see that no temp file was left behind.
std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Caps the size of any file this process writes for the scope of a test:
// writes beyond it fail with EFBIG (SIGXFSZ is ignored meanwhile).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lowered) == 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = SIG_DFL;
};

TEST_CASE("atomic file writer replaces the file and leaves no temp file",
          "[file_writer]") {
  TempDir dir;
  const std::string path = dir.File("out.txt");
  WriteText(path, "old contents");
  REQUIRE(WriteFileAtomically(path, "new").ok());
  CHECK(ReadText(path) == "new");
  CHECK(Names(dir.path()) == std::vector<std::string>{"out.txt"});
}

TEST_CASE("atomic file writer creates the file with the given mode",
          "[file_writer]") {
  TempDir dir;
  const std::string path = dir.File("private");
  const mode_t old_umask = ::umask(022);
  const Status written = WriteFileAtomically(path, "x", 0600);
  ::umask(old_umask);
  REQUIRE(written.ok());
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("atomic file writer keeps the old file when a write fails",
          "[file_writer]") {
  TempDir dir;
  const std::string path = dir.File("out.txt");
  WriteText(path, "old contents");
  Status status;
  {
    Result<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
    REQUIRE(writer.ok());
    const std::string big(4096, 'x');
    {
      FileSizeLimit limit(100);
      status = writer->Append(big);
    }
    CHECK(status.code() == Code::kIoError);
    CHECK_THAT(status.message(), Contains("write " + path + ".tmp."));
    CHECK_THAT(status.message(), Contains("File too large"));
    // Commit refuses to publish a file a write failed on.
    CHECK(writer->Commit().code() == Code::kIoError);
    CHECK(ReadText(path) == "old contents");
  }
  CHECK(ReadText(path) == "old contents");
  CHECK(Names(dir.path()) == std::vector<std::string>{"out.txt"});
}

TEST_CASE("atomic file writer removes its temp file when the rename fails",
          "[file_writer]") {
  TempDir dir;
  // A non-empty directory where the file should go: rename(2) refuses it.
  const std::string path = dir.File("taken");
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  WriteText(path + "/inside", "kept");
  const Status status = WriteFileAtomically(path, "new");
  CHECK(status.code() == Code::kIoError);
  CHECK_THAT(status.message(), Contains("rename "));
  CHECK(Names(dir.path()) == std::vector<std::string>{"taken"});
  CHECK(ReadText(path + "/inside") == "kept");
}

TEST_CASE("atomic file writer dropped without Commit leaves the target alone",
          "[file_writer]") {
  TempDir dir;
  const std::string path = dir.File("out.txt");
  {
    Result<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
    REQUIRE(writer.ok());
    REQUIRE(writer->Append("half").ok());
    CHECK(Names(dir.path()).size() == 1);  // the temp file
  }
  CHECK(Names(dir.path()).empty());
}

TEST_CASE("atomic file writers of one path use distinct temp files",
          "[file_writer]") {
  TempDir dir;
  const std::string path = dir.File("out.txt");
  Result<AtomicFileWriter> a = AtomicFileWriter::Create(path);
  Result<AtomicFileWriter> b = AtomicFileWriter::Create(path);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->temp_path() != b->temp_path());
  REQUIRE(a->Append("a").ok());
  REQUIRE(b->Append("b").ok());
  REQUIRE(a->Commit().ok());
  REQUIRE(b->Commit().ok());
  CHECK(ReadText(path) == "b");
  CHECK(Names(dir.path()) == std::vector<std::string>{"out.txt"});
}

TEST_CASE("atomic file writer reports a missing directory as an I/O error",
          "[file_writer]") {
  TempDir dir;
  const std::string path = dir.File("no/such/dir/out.txt");
  const Status status = WriteFileAtomically(path, "x");
  CHECK(status.code() == Code::kIoError);
  CHECK_THAT(status.message(), Contains(path));
  CHECK_THAT(status.message(), Contains("No such file or directory"));
}

TEST_CASE("file writer refuses to overwrite in exclusive mode",
          "[file_writer]") {
  TempDir dir;
  const std::string path = dir.File("key");
  WriteText(path, "existing");
  Result<FileWriter> file =
      FileWriter::Create(path, 0600, FileWriter::Mode::kExclusive);
  CHECK(file.status().code() == Code::kBusy);
  CHECK(ReadText(path) == "existing");

  Result<FileWriter> replaced =
      FileWriter::Create(path, 0600, FileWriter::Mode::kTruncate);
  REQUIRE(replaced.ok());
  REQUIRE(replaced->Append("new").ok());
  CHECK(replaced->bytes() == 3);
  REQUIRE(replaced->Sync().ok());
  REQUIRE(replaced->Close().ok());
  CHECK(ReadText(path) == "new");
}

TEST_CASE("WriteAll reports a full device with the path", "[file_writer]") {
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  const char byte = 0;
  const Status status = WriteAll(fd, &byte, 1, "/dev/full");
  ::close(fd);
  CHECK(status.code() == Code::kIoError);
  CHECK(status.message() == "write /dev/full: No space left on device");
}

TEST_CASE("DirectoryOf names the directory to fsync after a rename",
          "[file_writer]") {
  CHECK(DirectoryOf("a/b/c.toml") == "a/b/");
  CHECK(DirectoryOf("/c.toml") == "/");
  CHECK(DirectoryOf("c.toml") == ".");
}

}  // namespace
}  // namespace shardps
