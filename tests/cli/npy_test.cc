#include "cli/npy.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "tests/test_util.h"

namespace shardps {
namespace {

using test::TempDir;

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

template <typename T>
std::string AsBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(T));
}

std::string FloatBytes(size_t count) {
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) values[i] = 0.5f * static_cast<float>(i);
  return AsBytes(values);
}

// Builds a .npy file by hand, so tests can produce what WriteNpy never would.
std::string RawNpy(int major, const std::string& dict, const std::string& data,
                   bool pad = true) {
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t preamble = 8 + len_bytes;
  std::string header = dict;
  if (pad) {
    while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
  }
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < len_bytes; ++i) {
    out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  }
  return out + header + data;
}

std::string Dict(const std::string& descr, const std::string& fortran,
                 const std::string& shape) {
  return "{'descr': " + descr + ", 'fortran_order': " + fortran +
         ", 'shape': " + shape + ", }";
}

uint64_t Product(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

void CheckRoundTrip(const TempDir& dir, const std::vector<uint64_t>& shape) {
  const uint64_t count = Product(shape);
  std::vector<float> data(count);
  for (uint64_t i = 0; i < count; ++i) {
    data[i] = static_cast<float>(i) * 1.25f - 3.0f;
  }
  const std::string path = dir.File("a.npy");
  REQUIRE(WriteNpy(path, shape, data.data(), count).ok());
  Result<NpyArray> read = ReadNpy(path);
  REQUIRE(read.ok());
  CHECK(read->shape == shape);
  CHECK(read->data == data);
}

// Writes `bytes`, reads them back and returns the error ReadNpy must give.
Status ReadError(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.File("x.npy");
  WriteBytes(path, bytes);
  Result<NpyArray> read = ReadNpy(path);
  REQUIRE_FALSE(read.ok());
  return read.status();
}

void CheckReadError(const TempDir& dir, const std::string& bytes, Code code,
                    const std::string& message) {
  const Status status = ReadError(dir, bytes);
  CHECK(status.code() == code);
  CHECK(status.message() == dir.File("x.npy") + ": " + message);
}

// Reads whatever is at `path`: any Status is fine, but a success must be
// self-consistent.
void CheckReadsSafely(const std::string& path) {
  Result<NpyArray> read = ReadNpy(path);
  if (read.ok()) {
    CHECK(read->data.size() == Product(read->shape));
  } else {
    CHECK_FALSE(read.status().message().empty());
  }
}

}  // namespace

TEST_CASE("npy round-trips a 2-d array", "[npy]") {
  TempDir dir;
  CheckRoundTrip(dir, {3, 4});
}

TEST_CASE("npy round-trips 0-d, 1-d, 3-d and empty arrays", "[npy]") {
  TempDir dir;
  SECTION("0-d") { CheckRoundTrip(dir, {}); }
  SECTION("1-d") { CheckRoundTrip(dir, {7}); }
  SECTION("3-d") { CheckRoundTrip(dir, {2, 3, 5}); }
  SECTION("empty 1-d") { CheckRoundTrip(dir, {0}); }
  SECTION("empty 2-d") { CheckRoundTrip(dir, {4, 0}); }
}

TEST_CASE("npy writes a padded version 1.0 header", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("a.npy");
  const std::vector<float> data(12, 1.0f);
  REQUIRE(WriteNpy(path, {3, 4}, data.data(), data.size()).ok());
  const std::string bytes = ReadBytes(path);

  REQUIRE(bytes.size() > 10);
  CHECK(bytes.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
  const size_t header_len = static_cast<unsigned char>(bytes[8]) |
                            static_cast<unsigned char>(bytes[9]) << 8;
  const size_t data_offset = 10 + header_len;
  CHECK(data_offset % 64 == 0);
  CHECK(bytes.size() == data_offset + data.size() * sizeof(float));
  CHECK(bytes[data_offset - 1] == '\n');
  const std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
  CHECK(bytes.compare(10, dict.size(), dict) == 0);
  CHECK(bytes.find_first_not_of(' ', 10 + dict.size()) == data_offset - 1);

  SECTION("1-d and 0-d shapes use Python tuple syntax") {
    REQUIRE(WriteNpy(path, {12}, data.data(), 12).ok());
    CHECK(ReadBytes(path).find("'shape': (12,), }") != std::string::npos);
    REQUIRE(WriteNpy(path, {}, data.data(), 1).ok());
    CHECK(ReadBytes(path).find("'shape': (), }") != std::string::npos);
  }
}

TEST_CASE("npy writer leaves no temp file and replaces the old file", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("a.npy");
  const std::vector<float> data = {1, 2, 3};
  REQUIRE(WriteNpy(path, {3}, data.data(), 3).ok());
  REQUIRE(WriteNpy(path, {1}, data.data(), 1).ok());
  Result<NpyArray> read = ReadNpy(path);
  REQUIRE(read.ok());
  CHECK(read->data == std::vector<float>{1});
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(path).parent_path())) {
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("npy writer rejects a count that does not match the shape", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("a.npy");
  const std::vector<float> data(12);
  const Status status = WriteNpy(path, {3, 4}, data.data(), 11);
  CHECK(status.code() == Code::kInvalidArgument);
  CHECK(status.message() == path + ": shape (3, 4) needs 12 floats, got 11");
  CHECK_FALSE(std::filesystem::exists(path));

  const Status rank =
      WriteNpy(path, std::vector<uint64_t>(65, 1), data.data(), 1);
  CHECK(rank.code() == Code::kInvalidArgument);

  const Status huge = WriteNpy(path, {1ULL << 40, 1ULL << 40}, data.data(), 1);
  CHECK(huge.code() == Code::kInvalidArgument);

  const Status null = WriteNpy(path, {2}, nullptr, 2);
  CHECK(null.code() == Code::kInvalidArgument);
}

TEST_CASE("npy writer reports an unwritable path", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("missing/a.npy");
  const float value = 1;
  const Status status = WriteNpy(path, {}, &value, 1);
  CHECK(status.code() == Code::kIoError);
  INFO(status.message());
  CHECK(status.message().find(path) != std::string::npos);
  CHECK(status.message().find("No such file or directory") !=
        std::string::npos);
}

TEST_CASE("npy reads versions 2.0 and 3.0", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("v.npy");
  for (int major : {2, 3}) {
    INFO("version " << major);
    WriteBytes(path,
               RawNpy(major, Dict("'<f4'", "False", "(2, 2)"), FloatBytes(4)));
    Result<NpyArray> read = ReadNpy(path);
    REQUIRE(read.ok());
    CHECK(read->shape == std::vector<uint64_t>{2, 2});
    CHECK(read->data == std::vector<float>{0, 0.5f, 1, 1.5f});
  }
}

TEST_CASE("npy reads float64 data as float", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("d.npy");
  const std::vector<double> values = {0.25, -1e10, 3.0};
  WriteBytes(path, RawNpy(1, Dict("'<f8'", "False", "(3,)"), AsBytes(values)));
  Result<NpyArray> read = ReadNpy(path);
  REQUIRE(read.ok());
  CHECK(read->data == std::vector<float>{0.25f, -1e10f, 3.0f});
}

TEST_CASE("npy reads headers spelled differently", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("h.npy");
  const char* dicts[] = {
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,)}",
      "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}",
      "{'descr':'<f4','fortran_order':False,'shape':(2L,),}",
      "{u'descr': u'<f4', 'fortran_order': False, 'shape': ( 2 , ) }",
  };
  for (const char* dict : dicts) {
    INFO(dict);
    WriteBytes(path, RawNpy(1, dict, FloatBytes(2), /*pad=*/false));
    Result<NpyArray> read = ReadNpy(path);
    REQUIRE(read.ok());
    CHECK(read->shape == std::vector<uint64_t>{2});
  }
}

TEST_CASE("npy reader reports a missing file", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("absent.npy");
  Result<NpyArray> read = ReadNpy(path);
  REQUIRE_FALSE(read.ok());
  CHECK(read.status().code() == Code::kNotFound);
  CHECK(read.status().message() == path + ": no such file");
}

TEST_CASE("npy reader reports a file that is not .npy", "[npy]") {
  TempDir dir;
  CheckReadError(dir, "", Code::kInvalidArgument,
                 "not a .npy file (bad magic)");
  CheckReadError(dir, "PK\x03\x04 a zip file", Code::kInvalidArgument,
                 "not a .npy file (bad magic)");
  CheckReadError(dir, "\x93NUMPY\x04", Code::kCorrupt, "truncated preamble");

  Result<NpyArray> read = ReadNpy("/tmp");
  REQUIRE_FALSE(read.ok());
  CHECK(read.status().message() == "/tmp: not a regular file");
}

TEST_CASE("npy reader reports an unsupported version", "[npy]") {
  TempDir dir;
  std::string bytes = RawNpy(1, Dict("'<f4'", "False", "(1,)"), FloatBytes(1));
  bytes[6] = 4;
  CheckReadError(dir, bytes, Code::kInvalidArgument,
                 "unsupported .npy version 4.0 (want 1.0, 2.0, 3.0)");
  bytes[6] = 1;
  bytes[7] = 1;
  CheckReadError(dir, bytes, Code::kInvalidArgument,
                 "unsupported .npy version 1.1 (want 1.0, 2.0, 3.0)");
}

TEST_CASE("npy reader reports an unsupported dtype", "[npy]") {
  TempDir dir;
  CheckReadError(dir, RawNpy(1, Dict("'<i4'", "False", "(1,)"), FloatBytes(1)),
                 Code::kInvalidArgument,
                 "unsupported dtype '<i4' (want '<f4')");
  CheckReadError(dir, RawNpy(1, Dict("'>f4'", "False", "(1,)"), FloatBytes(1)),
                 Code::kInvalidArgument,
                 "unsupported dtype '>f4' (want '<f4')");
  CheckReadError(
      dir,
      RawNpy(1, Dict("[('a', '<f4'), ('b', '<f4')]", "False", "(1,)"),
             FloatBytes(2)),
      Code::kInvalidArgument, "unsupported structured dtype (want '<f4')");
}

TEST_CASE("npy reader reports fortran order", "[npy]") {
  TempDir dir;
  CheckReadError(dir, RawNpy(1, Dict("'<f4'", "True", "(2, 2)"), FloatBytes(4)),
                 Code::kInvalidArgument,
                 "fortran_order True is not supported (want C order)");
  CheckReadError(dir, RawNpy(1, Dict("'<f4'", "1", "(2, 2)"), FloatBytes(4)),
                 Code::kCorrupt, "'fortran_order' must be True or False");
}

TEST_CASE("npy reader reports data that does not match the shape", "[npy]") {
  TempDir dir;
  CheckReadError(
      dir, RawNpy(1, Dict("'<f4'", "False", "(100,)"), std::string(100, '\0')),
      Code::kCorrupt, "file holds 100 bytes of data, shape needs 400");
  CheckReadError(dir, RawNpy(1, Dict("'<f4'", "False", "(2,)"), FloatBytes(3)),
                 Code::kCorrupt, "file holds 12 bytes of data, shape needs 8");
  CheckReadError(
      dir, RawNpy(1, Dict("'<f4'", "False", "(4294967296, 4294967296)"), ""),
      Code::kCorrupt, "shape (4294967296, 4294967296) has too many elements");
}

TEST_CASE("npy reader reports a header longer than the file", "[npy]") {
  TempDir dir;
  std::string bytes = RawNpy(1, Dict("'<f4'", "False", "()"), "");
  bytes.resize(40);
  CheckReadError(dir, bytes, Code::kCorrupt,
                 "header claims 118 bytes, file has 30 after the preamble");
}

TEST_CASE("npy reader reports bad header keys", "[npy]") {
  TempDir dir;
  const std::string data = FloatBytes(1);
  CheckReadError(dir, RawNpy(1, "{'descr': '<f4', 'shape': (1,)}", data),
                 Code::kCorrupt, "header lacks 'fortran_order'");
  CheckReadError(dir,
                 RawNpy(1,
                        "{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (1,), 'extra': 1}",
                        data),
                 Code::kCorrupt, "header has unexpected key 'extra'");
  CheckReadError(dir,
                 RawNpy(1,
                        "{'descr': '<f4', 'descr': '<f4', "
                        "'fortran_order': False, 'shape': (1,)}",
                        data),
                 Code::kCorrupt, "header repeats key 'descr'");
}

TEST_CASE("npy reader reports a bad shape", "[npy]") {
  TempDir dir;
  const std::string want = "'shape' must be a tuple of integers >= 0";
  const std::string data = FloatBytes(3);
  for (const char* shape : {"(3)", "[3]", "(-3,)", "('3',)", "(3, None)"}) {
    INFO(shape);
    CheckReadError(dir, RawNpy(1, Dict("'<f4'", "False", shape), data),
                   Code::kCorrupt, want);
  }
}

TEST_CASE("npy reader reports a malformed header dict", "[npy]") {
  TempDir dir;
  const std::string data = FloatBytes(1);
  for (const char* dict : {
           "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
           "{'descr' '<f4'}",
           "{'descr': '<f4}",
           "{3: 4}",
           "{'shape': (1.5,)}",
           "{'shape': (99999999999999999999,)}",
           "{'descr': numpy.float32}",
           "{} trailing",
           "'just a string'",
           "((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))",
           "",
       }) {
    INFO(dict);
    const Status status = ReadError(dir, RawNpy(1, dict, data));
    CHECK(status.code() == Code::kCorrupt);
    CHECK(status.message().find("header") != std::string::npos);
  }
}

TEST_CASE("npy reader rejects every truncation of a valid file", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("t.npy");
  const std::vector<float> data(6, 2.0f);
  REQUIRE(WriteNpy(path, {2, 3}, data.data(), data.size()).ok());
  const std::string whole = ReadBytes(path);
  for (size_t size = 0; size < whole.size(); ++size) {
    INFO("size " << size);
    WriteBytes(path, whole.substr(0, size));
    Result<NpyArray> read = ReadNpy(path);
    CHECK_FALSE(read.ok());
  }
}

TEST_CASE("npy reader survives random bytes", "[npy]") {
  TempDir dir;
  const std::string path = dir.File("r.npy");
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    // Half keep a valid magic and version so the header parser is reached.
    if (i % 2 == 0 && bytes.size() >= 10) {
      std::memcpy(&bytes[0], "\x93NUMPY", 6);
      bytes[6] = static_cast<char>(1 + rng() % 3);
      bytes[7] = 0;
    }
    WriteBytes(path, bytes);
    CheckReadsSafely(path);
  }
}

TEST_CASE("npy reader survives 2000 random mutations of a valid file",
          "[npy]") {
  TempDir dir;
  const std::string path = dir.File("m.npy");
  const std::vector<float> data(10, 1.0f);
  REQUIRE(WriteNpy(path, {2, 5}, data.data(), data.size()).ok());
  const std::string valid = ReadBytes(path);
  const std::string alphabet = "{}()[]',:\" 0123456789-LTrueFalsNn\\\n\x93";

  std::mt19937 rng(42);
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      // Mostly hit the header, where the parsing happens.
      const size_t limit = rng() % 4 == 0 ? bytes.size() + 1 : 80;
      const size_t pos = rng() % std::min(limit, bytes.size() + 1);
      const char c = rng() % 2 == 0 ? alphabet[rng() % alphabet.size()]
                                    : static_cast<char>(rng());
      switch (rng() % 4) {
        case 0:
          if (pos < bytes.size()) bytes[pos] = c;
          break;
        case 1:
          bytes.insert(pos, 1, c);
          break;
        case 2:
          if (pos < bytes.size()) bytes.erase(pos, 1);
          break;
        default:
          bytes.resize(pos);
      }
    }
    WriteBytes(path, bytes);
    Result<NpyArray> read = ReadNpy(path);
    if (read.ok()) {
      ++accepted;
      CHECK(read->data.size() == Product(read->shape));
    }
  }
  // Most mutations must be caught; a few (e.g. in padding) are harmless.
  CHECK(accepted < 1000);
}

}  // namespace shardps
