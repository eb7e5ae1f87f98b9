#include "cli/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/file_writer.h"
#include "common/posix_file.h"

// Array data is copied between memory and disk as raw bytes, and .npy files
// from numpy are little-endian IEEE floats.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "npy.cc assumes a little-endian host");
static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4,
              "npy.cc assumes IEEE 754 binary32 floats");
static_assert(std::numeric_limits<double>::is_iec559 && sizeof(double) == 8,
              "npy.cc assumes IEEE 754 binary64 doubles");

namespace shardps {
namespace {

constexpr char kMagic[] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kMagicSize = sizeof(kMagic);
constexpr size_t kVersionSize = 2;
// numpy aligns the data to 64 bytes so that a memory-mapped array is
// aligned for any SIMD width; we do the same.
constexpr size_t kDataAlignment = 64;
// Large transfers go in pieces: Linux moves at most ~2 GiB per call anyway.
constexpr size_t kIoChunk = size_t{1} << 24;
// A damaged header could nest brackets arbitrarily; the parser is recursive.
constexpr int kMaxNesting = 16;
constexpr size_t kMaxShownChars = 40;
constexpr size_t kContextChars = 12;

// A .npy file this reader does not handle (another dtype, Fortran order):
// the caller's input to fix, not damage.
Status Unsupported(const std::string& what) {
  return Status::InvalidArgument(what);
}

// Bytes from a damaged file may be anything; messages show them escaped and
// cut short.
std::string Printable(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMaxShownChars; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte < 0x7f) {
      out += static_cast<char>(byte);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", byte);
      out += buf;
    }
  }
  if (text.size() > kMaxShownChars) out += "...";
  return out;
}

// A zero dimension makes the product zero even when the others would
// overflow, as in numpy.
std::optional<uint64_t> ElementCount(const std::vector<uint64_t>& shape) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  uint64_t count = 1;
  for (uint64_t dim : shape) {
    if (count > std::numeric_limits<uint64_t>::max() / dim) {
      return std::nullopt;
    }
    count *= dim;
  }
  return count;
}

// Python tuple syntax, as numpy writes it: "()", "(3,)", "(3, 4)".
std::string FormatShape(const std::vector<uint64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ',';
  out += ')';
  return out;
}

// ---- Reading the header: a Python dict literal ----

// The subset of Python literals that can appear in a .npy header.
struct PyValue {
  enum class Kind { kString, kInt, kBool, kNone, kTuple, kList, kDict };
  Kind kind = Kind::kNone;
  std::string text;               // kString
  bool negative = false;          // kInt: sign
  uint64_t magnitude = 0;         // kInt: absolute value
  bool flag = false;              // kBool
  std::vector<std::string> keys;  // kDict: keys, parallel to items
  std::vector<PyValue> items;     // kTuple, kList, kDict values
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         IsDigit(c);
}

// Recursive descent over the header text. Every path either consumes input
// or fails, and nesting is bounded, so any byte string terminates quickly.
class LiteralParser {
 public:
  explicit LiteralParser(std::string_view text) : text_(text) {}

  // Parses one value followed by nothing but whitespace (numpy pads the
  // header with spaces and a final newline).
  Result<PyValue> ParseAll() {
    Result<PyValue> value = ParseValue(0);
    if (!value.ok()) return value;
    SkipSpace();
    if (!AtEnd()) return Error("unexpected text after the dict");
    return value;
  }

 private:
  Status Error(const std::string& what) const {
    // Showing a little text before the offset points at the culprit.
    const size_t from = pos_ - std::min<size_t>(pos_, kContextChars);
    return Status::Corrupt("bad header: " + what + " at offset " +
                           std::to_string(pos_) + " near \"" +
                           Printable(text_.substr(from)) + "\"");
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  bool Consume(char c) {
    if (AtEnd() || Peek() != c) return false;
    ++pos_;
    return true;
  }

  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' ||
                        Peek() == '\r')) {
      ++pos_;
    }
  }

  Result<PyValue> ParseValue(int depth) {
    if (depth > kMaxNesting) return Error("nested too deeply");
    SkipSpace();
    if (AtEnd()) return Error("unexpected end");
    const char c = Peek();
    if (c == '{') return ParseDict(depth);
    if (c == '(') return ParseTuple(depth);
    if (c == '[') return ParseList(depth);
    if (c == '\'' || c == '"') return ParseString();
    if (IsDigit(c) || c == '-' || c == '+') return ParseInt();
    if (IsNameChar(c)) return ParseName();
    return Error("unexpected '" + Printable(std::string_view(&c, 1)) + "'");
  }

  // Parses values separated by commas up to `close`, after the opener.
  // Reports whether any comma was seen, which is what makes "(3,)" a tuple
  // but "(3)" just 3.
  Status ParseItems(char close, int depth, std::vector<PyValue>* items,
                    bool* saw_comma) {
    *saw_comma = false;
    for (;;) {
      SkipSpace();
      if (Consume(close)) return Status::Ok();
      Result<PyValue> item = ParseValue(depth + 1);
      if (!item.ok()) return item.status();
      items->push_back(std::move(*item));
      SkipSpace();
      if (Consume(',')) {
        *saw_comma = true;
        continue;
      }
      if (Consume(close)) return Status::Ok();
      return Error(std::string("expected ',' or '") + close + "'");
    }
  }

  Result<PyValue> ParseTuple(int depth) {
    ++pos_;  // '('
    PyValue value;
    value.kind = PyValue::Kind::kTuple;
    bool saw_comma = false;
    SHARDPS_RETURN_IF_ERROR(ParseItems(')', depth, &value.items, &saw_comma));
    if (value.items.size() == 1 && !saw_comma) {
      return std::move(value.items[0]);  // parentheses only group
    }
    return value;
  }

  Result<PyValue> ParseList(int depth) {
    ++pos_;  // '['
    PyValue value;
    value.kind = PyValue::Kind::kList;
    bool saw_comma = false;
    SHARDPS_RETURN_IF_ERROR(ParseItems(']', depth, &value.items, &saw_comma));
    return value;
  }

  Result<PyValue> ParseDict(int depth) {
    ++pos_;  // '{'
    PyValue dict;
    dict.kind = PyValue::Kind::kDict;
    for (;;) {
      SkipSpace();
      if (Consume('}')) return dict;
      Result<PyValue> key = ParseValue(depth + 1);
      if (!key.ok()) return key.status();
      if (key->kind != PyValue::Kind::kString) {
        return Error("dict key is not a string");
      }
      SkipSpace();
      if (!Consume(':')) return Error("expected ':'");
      Result<PyValue> item = ParseValue(depth + 1);
      if (!item.ok()) return item.status();
      dict.keys.push_back(std::move(key->text));
      dict.items.push_back(std::move(*item));
      SkipSpace();
      if (Consume(',')) continue;
      if (Consume('}')) return dict;
      return Error("expected ',' or '}'");
    }
  }

  Result<PyValue> ParseString() {
    const char quote = text_[pos_++];
    PyValue value;
    value.kind = PyValue::Kind::kString;
    for (;;) {
      if (AtEnd()) return Error("unterminated string");
      const char c = text_[pos_++];
      if (c == quote) return value;
      if (c == '\n') return Error("newline in string");
      if (c != '\\') {
        value.text += c;
        continue;
      }
      if (AtEnd()) return Error("unterminated string");
      const char escaped = text_[pos_++];
      switch (escaped) {
        case '\\':
        case '\'':
        case '"':
          value.text += escaped;
          break;
        case 'n':
          value.text += '\n';
          break;
        case 't':
          value.text += '\t';
          break;
        default:
          return Error("unsupported escape in string");
      }
    }
  }

  // Integers, with the trailing 'L' Python 2 numpy wrote for longs.
  Result<PyValue> ParseInt() {
    PyValue value;
    value.kind = PyValue::Kind::kInt;
    if (Peek() == '-' || Peek() == '+') value.negative = text_[pos_++] == '-';
    if (AtEnd() || !IsDigit(Peek())) return Error("expected a digit");
    while (!AtEnd() && IsDigit(Peek())) {
      const uint64_t digit = static_cast<uint64_t>(text_[pos_++] - '0');
      if (value.magnitude >
          (std::numeric_limits<uint64_t>::max() - digit) / 10) {
        return Error("integer too large");
      }
      value.magnitude = value.magnitude * 10 + digit;
    }
    if (!Consume('L')) Consume('l');
    if (!AtEnd() && (IsNameChar(Peek()) || Peek() == '.')) {
      return Error("not an integer");
    }
    return value;
  }

  Result<PyValue> ParseName() {
    const size_t start = pos_;
    while (!AtEnd() && IsNameChar(Peek())) ++pos_;
    const std::string_view name = text_.substr(start, pos_ - start);
    // u'...' and b'...' prefixes come from Python 2 era writers.
    if ((name == "u" || name == "b") && !AtEnd() &&
        (Peek() == '\'' || Peek() == '"')) {
      return ParseString();
    }
    PyValue value;
    if (name == "True" || name == "False") {
      value.kind = PyValue::Kind::kBool;
      value.flag = name == "True";
      return value;
    }
    if (name == "None") return value;
    return Error("unknown name '" + Printable(name) + "'");
  }

  std::string_view text_;
  size_t pos_ = 0;
};

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<uint64_t> shape;
};

Result<std::vector<uint64_t>> ShapeFromValue(const PyValue& value) {
  const Status bad =
      Status::Corrupt("'shape' must be a tuple of integers >= 0");
  if (value.kind != PyValue::Kind::kTuple) return bad;
  std::vector<uint64_t> shape;
  for (const PyValue& dim : value.items) {
    if (dim.kind != PyValue::Kind::kInt ||
        (dim.negative && dim.magnitude != 0)) {
      return bad;
    }
    shape.push_back(dim.magnitude);
  }
  return shape;
}

// numpy's reader demands exactly these three keys; so do we, since a header
// with others was not written for a reader that ignores them.
Result<Header> ParseHeader(std::string_view text) {
  Result<PyValue> dict = LiteralParser(text).ParseAll();
  if (!dict.ok()) return dict.status();
  if (dict->kind != PyValue::Kind::kDict) {
    return Status::Corrupt("bad header: not a dict");
  }
  const PyValue* descr = nullptr;
  const PyValue* fortran_order = nullptr;
  const PyValue* shape = nullptr;
  for (size_t i = 0; i < dict->keys.size(); ++i) {
    const std::string& key = dict->keys[i];
    const PyValue** slot = key == "descr"           ? &descr
                           : key == "fortran_order" ? &fortran_order
                           : key == "shape"         ? &shape
                                                    : nullptr;
    if (slot == nullptr) {
      return Status::Corrupt("header has unexpected key '" + Printable(key) +
                             "'");
    }
    if (*slot != nullptr)
      return Status::Corrupt("header repeats key '" + key + "'");
    *slot = &dict->items[i];
  }
  if (descr == nullptr) return Status::Corrupt("header lacks 'descr'");
  if (fortran_order == nullptr)
    return Status::Corrupt("header lacks 'fortran_order'");
  if (shape == nullptr) return Status::Corrupt("header lacks 'shape'");

  Header header;
  // A non-string descr describes a structured dtype: valid, not supported.
  if (descr->kind != PyValue::Kind::kString) {
    return Unsupported("unsupported structured dtype (want '<f4')");
  }
  header.descr = descr->text;
  if (fortran_order->kind != PyValue::Kind::kBool) {
    return Status::Corrupt("'fortran_order' must be True or False");
  }
  header.fortran_order = fortran_order->flag;
  Result<std::vector<uint64_t>> dims = ShapeFromValue(*shape);
  if (!dims.ok()) return dims.status();
  header.shape = std::move(*dims);
  return header;
}

// ---- File I/O ----

// Reads exactly `size` bytes at `offset`. The caller has checked the file
// size, so hitting the end means the file shrank under us.
Status ReadAt(int fd, uint64_t offset, void* buf, size_t size) {
  char* out = static_cast<char*>(buf);
  while (size > 0) {
    const ssize_t n =
        ::pread(fd, out, std::min(size, kIoChunk), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(Code::kIoError, "read", errno);
    if (n == 0) return Status::Corrupt("file shrank while being read");
    out += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Narrows float64 data to float in bounded pieces, so a big file never needs
// a second full-size buffer.
Status ReadDoublesAsFloats(int fd, uint64_t offset, float* out,
                           uint64_t count) {
  std::vector<double> buf(std::min<uint64_t>(count, kIoChunk / sizeof(double)));
  while (count > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(count, buf.size()));
    SHARDPS_RETURN_IF_ERROR(ReadAt(fd, offset, buf.data(), n * sizeof(double)));
    std::transform(buf.begin(), buf.begin() + n, out,
                   [](double v) { return static_cast<float>(v); });
    out += n;
    offset += n * sizeof(double);
    count -= n;
  }
  return Status::Ok();
}

// Everything before the header text: magic, version and header length.
struct Preamble {
  size_t size = 0;  // 10 for version 1.0, 12 for 2.0 and 3.0
  uint64_t header_len = 0;
};

Result<Preamble> ReadPreamble(int fd, uint64_t file_size) {
  unsigned char bytes[kMagicSize + kVersionSize + 4];
  const size_t have =
      static_cast<size_t>(std::min<uint64_t>(file_size, sizeof(bytes)));
  SHARDPS_RETURN_IF_ERROR(ReadAt(fd, 0, bytes, have));
  if (have < kMagicSize || std::memcmp(bytes, kMagic, kMagicSize) != 0) {
    return Unsupported("not a .npy file (bad magic)");
  }
  if (have < kMagicSize + kVersionSize)
    return Status::Corrupt("truncated preamble");
  const int major = bytes[kMagicSize];
  const int minor = bytes[kMagicSize + 1];
  // 1.0 has a 2-byte header length; 2.0 widened it to 4 bytes; 3.0 only
  // lets the header be UTF-8, which the parser passes through as bytes.
  size_t len_bytes = 0;
  if (major == 1 && minor == 0) len_bytes = 2;
  if ((major == 2 || major == 3) && minor == 0) len_bytes = 4;
  if (len_bytes == 0) {
    return Unsupported("unsupported .npy version " + std::to_string(major) +
                       "." + std::to_string(minor) + " (want 1.0, 2.0, 3.0)");
  }
  Preamble preamble;
  preamble.size = kMagicSize + kVersionSize + len_bytes;
  if (have < preamble.size) return Status::Corrupt("truncated preamble");
  for (size_t i = 0; i < len_bytes; ++i) {
    preamble.header_len |= uint64_t{bytes[kMagicSize + kVersionSize + i]}
                           << (8 * i);
  }
  if (preamble.header_len > file_size - preamble.size) {
    const uint64_t rest = file_size - preamble.size;
    return Status::Corrupt(
        "header claims " + std::to_string(preamble.header_len) +
        " bytes, file has " + std::to_string(rest) + " after the preamble");
  }
  return preamble;
}

Result<size_t> ItemSize(const std::string& descr) {
  if (descr == "<f4") return size_t{4};
  if (descr == "<f8") return size_t{8};
  return Unsupported("unsupported dtype '" + Printable(descr) +
                     "' (want '<f4')");
}

// Reads an opened file; errors do not name the path yet.
Result<NpyArray> ReadOpenNpy(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(Code::kIoError, "fstat", errno);
  if (!S_ISREG(st.st_mode)) return Unsupported("not a regular file");
  const auto file_size = static_cast<uint64_t>(st.st_size);

  Result<Preamble> preamble = ReadPreamble(fd, file_size);
  if (!preamble.ok()) return preamble.status();
  std::string text(preamble->header_len, '\0');
  SHARDPS_RETURN_IF_ERROR(ReadAt(fd, preamble->size, text.data(), text.size()));
  Result<Header> header = ParseHeader(text);
  if (!header.ok()) return header.status();

  Result<size_t> item_size = ItemSize(header->descr);
  if (!item_size.ok()) return item_size.status();
  if (header->fortran_order) {
    return Unsupported("fortran_order True is not supported (want C order)");
  }
  const std::optional<uint64_t> count = ElementCount(header->shape);
  if (!count || *count > std::numeric_limits<uint64_t>::max() / *item_size) {
    return Status::Corrupt("shape " + Printable(FormatShape(header->shape)) +
                           " has too many elements");
  }
  // Trailing bytes are rejected as well as missing ones: either way the
  // header and the data disagree, so neither can be trusted.
  const uint64_t data_offset = preamble->size + preamble->header_len;
  const uint64_t have = file_size - data_offset;
  const uint64_t need = *count * *item_size;
  if (have != need) {
    return Status::Corrupt("file holds " + std::to_string(have) +
                           " bytes of data, shape needs " +
                           std::to_string(need));
  }

  NpyArray array;
  array.shape = std::move(header->shape);
  array.data.resize(static_cast<size_t>(*count));
  if (*item_size == sizeof(float)) {
    SHARDPS_RETURN_IF_ERROR(
        ReadAt(fd, data_offset, array.data.data(), static_cast<size_t>(need)));
  } else {
    SHARDPS_RETURN_IF_ERROR(
        ReadDoublesAsFloats(fd, data_offset, array.data.data(), *count));
  }
  return array;
}

// ---- Writing ----

// Magic, version 1.0, header length and the header dict, padded with spaces
// and a final '\n' so the data starts on a kDataAlignment boundary.
std::string BuildPrefix(const std::vector<uint64_t>& shape) {
  const std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " +
      FormatShape(shape) + ", }";
  const size_t preamble_size = kMagicSize + kVersionSize + 2;
  const size_t unpadded = preamble_size + dict.size() + 1;
  const size_t total =
      (unpadded + kDataAlignment - 1) / kDataAlignment * kDataAlignment;
  const size_t header_len = total - preamble_size;  // < 65536 by kMaxNpyRank

  std::string out(kMagic, kMagicSize);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header_len & 0xff);
  out += static_cast<char>(header_len >> 8);
  out += dict;
  out.append(total - unpadded, ' ');
  out += '\n';
  return out;
}

}  // namespace

Status WriteNpy(const std::string& path, const std::vector<uint64_t>& shape,
                const float* data, uint64_t count) {
  if (shape.size() > kMaxNpyRank) {
    return Status(Code::kInvalidArgument,
                  path + ": shape has " + std::to_string(shape.size()) +
                      " dimensions, at most " + std::to_string(kMaxNpyRank) +
                      " are allowed");
  }
  const std::optional<uint64_t> want = ElementCount(shape);
  if (!want || *want > std::numeric_limits<size_t>::max() / sizeof(float)) {
    return Status(
        Code::kInvalidArgument,
        path + ": shape " + FormatShape(shape) + " has too many elements");
  }
  if (*want != count) {
    return Status(Code::kInvalidArgument,
                  path + ": shape " + FormatShape(shape) + " needs " +
                      std::to_string(*want) + " floats, got " +
                      std::to_string(count));
  }
  if (data == nullptr && count > 0) {
    return Status(Code::kInvalidArgument, path + ": data is null");
  }

  Result<AtomicFileWriter> out = AtomicFileWriter::Create(path);
  if (!out.ok()) return out.status();
  SHARDPS_RETURN_IF_ERROR(out->Append(BuildPrefix(shape)));
  SHARDPS_RETURN_IF_ERROR(
      out->Append(data, static_cast<size_t>(count) * sizeof(float)));
  return out->Commit();
}

Result<NpyArray> ReadNpy(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return Status(Code::kNotFound, path + ": no such file");
    }
    return ErrnoStatus(Code::kIoError, path, errno);
  }
  Result<NpyArray> array = ReadOpenNpy(fd.get());
  if (!array.ok()) return array.status().WithContext(path);
  return array;
}

}  // namespace shardps
