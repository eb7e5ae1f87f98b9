#include "common/mapping.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/posix_file.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

// A file of `bytes` bytes, each (i % 251), and an fd open on it.
UniqueFd MakeFile(const std::string& path, size_t bytes, int flags) {
  std::vector<char> data(bytes);
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i % 251);
  test::WriteBytes(path, data);
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  REQUIRE(fd.valid());
  return fd;
}

TEST_CASE("Mapping shows the file and writes through when writable",
          "[mapping]") {
  test::TempDir dir;
  const std::string path = dir.File("f");
  UniqueFd fd = MakeFile(path, 3 * 4096, O_RDWR);
  auto map = Mapping::Map(fd.get(), 3 * 4096, /*writable=*/true,
                          /*populate=*/true);
  REQUIRE(map.ok());
  REQUIRE(map->size() == 3 * 4096);
  CHECK(map->data()[4097] == static_cast<char>(4097 % 251));
  // The mapping does not need the fd.
  fd.Reset();
  std::memcpy(map->data() + 8000, "shardps", 7);
  Mapping moved = std::move(map).value();
  CHECK(std::memcmp(moved.data() + 8000, "shardps", 7) == 0);
  const std::vector<char> file = test::ReadBytes(path);
  CHECK(std::string(file.data() + 8000, 7) == "shardps");
}

TEST_CASE(
    "Mapping maps read-only, and refuses a writable map of a read-only fd with "
    "a Status",
    "[mapping]") {
  test::TempDir dir;
  UniqueFd fd = MakeFile(dir.File("f"), 4096, O_RDONLY);
  auto map = Mapping::Map(fd.get(), 4096, /*writable=*/false,
                          /*populate=*/false);
  REQUIRE(map.ok());
  CHECK(map->data()[250] == static_cast<char>(250));
  // A read-write mapping of a file opened read-only is the OS's refusal,
  // as a Status (EACCES), not an exception.
  auto rw = Mapping::Map(fd.get(), 4096, /*writable=*/true,
                         /*populate=*/false);
  REQUIRE_FALSE(rw.ok());
  CHECK(rw.status().code() == Code::kIoError);
  CHECK_THAT(rw.status().message(), Contains("mmap: Permission denied"));
}

TEST_CASE("Mapping turns bad requests into a Status", "[mapping]") {
  auto bad_fd = Mapping::Map(-1, 4096, /*writable=*/false, /*populate=*/false);
  REQUIRE_FALSE(bad_fd.ok());
  CHECK(bad_fd.status().code() == Code::kIoError);
  CHECK_THAT(bad_fd.status().message(), Contains("mmap: Bad file descriptor"));

  // Size 0 is refused as mmap refuses it (Boost would map the whole file).
  test::TempDir dir;
  UniqueFd fd = MakeFile(dir.File("f"), 4096, O_RDONLY);
  auto empty = Mapping::Map(fd.get(), 0, /*writable=*/false,
                            /*populate=*/false);
  REQUIRE_FALSE(empty.ok());
  CHECK_THAT(empty.status().message(), Contains("mmap: Invalid argument"));
}

TEST_CASE("TensorMapping stitches file pages into one range", "[mapping]") {
  test::TempDir dir;
  UniqueFd fd = MakeFile(dir.File("f"), 3 * 4096, O_RDONLY);
  TensorMapping m;
  REQUIRE(m.Reserve(2 * 4096).ok());
  // Page 2 of the file first, then page 0.
  REQUIRE(m.MapBlock(0, fd.get(), 2 * 4096, 4096).ok());
  REQUIRE(m.MapBlock(4096, fd.get(), 0, 4096).ok());
  const char* bytes = reinterpret_cast<const char*>(m.data());
  CHECK(bytes[0] == static_cast<char>((2 * 4096) % 251));
  CHECK(bytes[4096] == static_cast<char>(0));
  CHECK(bytes[4096 + 300] == static_cast<char>(300 % 251));
  TensorMapping moved(std::move(m));
  CHECK(reinterpret_cast<const char*>(moved.data()) == bytes);

  Status bad = moved.MapBlock(0, -1, 0, 4096);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.message(), Contains("map block"));
}

}  // namespace
}  // namespace shardps
