// The Fashion-MNIST example's IDX reader: what it returns for good files and
// the error it gives for each way a file can be missing or malformed.
#include "examples/fashion_mnist/idx_file.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace fashion_mnist {
namespace {

using shardps::Code;
using shardps::test::TempDir;

// An IDX header of unsigned bytes with these dimensions (big-endian).
std::vector<uint8_t> Header(const std::vector<uint32_t>& dims) {
  std::vector<uint8_t> h = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      h.push_back(static_cast<uint8_t>(d >> shift));
  return h;
}

std::vector<uint8_t> Concat(std::vector<uint8_t> a,
                            const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void WriteGz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  const int wrote =
      bytes.empty()
          ? 0
          : gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  REQUIRE(wrote == static_cast<int>(bytes.size()));
}

// Bytes that deflate cannot shrink much, so damage lands in the data.
std::vector<uint8_t> Noise(size_t n) {
  std::vector<uint8_t> v(n);
  uint32_t x = 12345;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

TEST_CASE("ReadIdx returns the dimensions and bytes of a good file",
          "[idx_file]") {
  TempDir dir;
  const std::vector<uint8_t> data = {1, 2, 3, 4, 5, 6};
  WriteGz(dir.File("a.gz"), Concat(Header({2, 3}), data));
  auto a = ReadIdx(dir.File("a.gz"));
  REQUIRE(a.ok());
  CHECK(a->dims == std::vector<uint32_t>{2, 3});
  CHECK(a->bytes == data);
}

TEST_CASE(
    "ReadIdx says kNotFound and names the package when the file is "
    "missing",
    "[idx_file]") {
  TempDir dir;
  auto a = ReadIdx(dir.File("absent.gz"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == Code::kNotFound);
  CHECK(a.status().ToString().find("dataset-fashion-mnist") !=
        std::string::npos);
}

TEST_CASE("ReadIdx refuses a file that is not IDX", "[idx_file]") {
  TempDir dir;
  SECTION("wrong magic") {
    WriteGz(dir.File("a.gz"), {'h', 'e', 'l', 'l', 'o', '\n', 0, 0});
  }
  SECTION("not bytes") {  // 0x0D is float32
    WriteGz(dir.File("a.gz"), {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0});
  }
  SECTION("empty") { WriteGz(dir.File("a.gz"), {}); }
  auto a = ReadIdx(dir.File("a.gz"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == Code::kCorrupt);
}

TEST_CASE("ReadIdx refuses zero or oversized dimensions before allocating",
          "[idx_file]") {
  TempDir dir;
  SECTION("a zero dimension") { WriteGz(dir.File("a.gz"), Header({3, 0})); }
  SECTION("over 4 GiB in all") {
    WriteGz(dir.File("a.gz"), Header({65536, 65536, 2}));
  }
  SECTION("a product that wraps around 64 bits") {
    // 769546 * 494770 * 48448661 = 2^64 + 4: unchecked, it reads as an
    // array of 4 bytes whose dims promise far more.
    WriteGz(dir.File("a.gz"),
            Concat(Header({769546, 494770, 48448661}), {1, 2, 3, 4}));
  }
  auto a = ReadIdx(dir.File("a.gz"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == Code::kCorrupt);
  CHECK(a.status().ToString().find("dimensions") != std::string::npos);
}

TEST_CASE("ReadIdx refuses a file shorter or longer than its header says",
          "[idx_file]") {
  TempDir dir;
  SECTION("truncated header") {
    WriteGz(dir.File("a.gz"), {0, 0, 0x08, 2, 0, 0, 0, 2});
  }
  SECTION("truncated data") {
    WriteGz(dir.File("a.gz"), Concat(Header({4, 4}), Noise(15)));
  }
  SECTION("trailing bytes") {
    WriteGz(dir.File("a.gz"), Concat(Header({4, 4}), Noise(17)));
  }
  auto a = ReadIdx(dir.File("a.gz"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == Code::kCorrupt);
}

TEST_CASE("ReadIdx reports a damaged gzip stream as kCorrupt", "[idx_file]") {
  TempDir dir;
  const std::string path = dir.File("a.gz");
  WriteGz(path, Concat(Header({100, 100}), Noise(10000)));
  std::vector<char> gz = shardps::test::ReadBytes(path);
  REQUIRE(gz.size() > 5000);
  gz[gz.size() / 2] = static_cast<char>(gz[gz.size() / 2] ^ 0x5A);
  shardps::test::WriteBytes(path, gz);
  auto a = ReadIdx(path);
  REQUIRE_FALSE(a.ok());
  CHECK(a.status().code() == Code::kCorrupt);
}

TEST_CASE("LoadSplit scales pixels to 0..1 and keeps at most the limit",
          "[idx_file]") {
  TempDir dir;
  WriteGz(dir.File("img.gz"),
          Concat(Header({3, 2, 2}), {0, 255, 51, 102, 1, 1, 1, 1, 2, 2, 2, 2}));
  WriteGz(dir.File("lab.gz"), Concat(Header({3}), {7, 0, 9}));
  auto s = LoadSplit(dir.File("img.gz"), dir.File("lab.gz"), 2);
  REQUIRE(s.ok());
  CHECK(s->count == 2);
  CHECK(s->pixels == 4);
  REQUIRE(s->images.size() == 8);
  CHECK(s->images[0] == 0.0f);
  CHECK(s->images[1] == 1.0f);
  CHECK(s->images[2] == Approx(0.2f));
  CHECK(s->labels == std::vector<uint8_t>{7, 0});
}

TEST_CASE("LoadSplit refuses mismatched files and labels above 9",
          "[idx_file]") {
  TempDir dir;
  WriteGz(dir.File("img.gz"), Concat(Header({2, 1, 1}), {0, 0}));
  SECTION("different counts") {
    WriteGz(dir.File("lab.gz"), Concat(Header({3}), {0, 1, 2}));
  }
  SECTION("labels that are images") {
    WriteGz(dir.File("lab.gz"), Concat(Header({2, 1, 1}), {0, 1}));
  }
  SECTION("a label above 9") {
    WriteGz(dir.File("lab.gz"), Concat(Header({2}), {3, 10}));
  }
  auto s = LoadSplit(dir.File("img.gz"), dir.File("lab.gz"), 0);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == Code::kCorrupt);
}

}  // namespace
}  // namespace fashion_mnist
