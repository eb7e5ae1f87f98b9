#include "examples/fashion_mnist/idx_file.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace fashion_mnist {

using shardps::Code;
using shardps::Status;

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

uint32_t BigEndian(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 |
         uint32_t(p[3]);
}

bool ReadExactly(gzFile_s* f, void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const int chunk = static_cast<int>(std::min<size_t>(n, 1 << 30));
    const int got = gzread(f, p, static_cast<unsigned>(chunk));
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

// kCorrupt for a read that came up short: zlib's own words when the gzip
// stream itself is damaged (bad CRC, bad deflate data), else "truncated".
Status ShortRead(gzFile_s* f, const std::string& path, const char* what) {
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  if (err != Z_OK && err != Z_STREAM_END && msg != nullptr && *msg != '\0')
    return Status(Code::kCorrupt, path + ": " + what + ": " + msg);
  return Status(Code::kCorrupt, path + ": " + what + ": truncated");
}

}  // namespace

shardps::Result<IdxArray> ReadIdx(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) {
    const int err = errno;  // before anything else can overwrite it
    return Status(err == ENOENT ? Code::kNotFound : Code::kIoError,
                  path + ": cannot open: " + std::strerror(err) +
                      " (scripts/install-deps.sh installs "
                      "dataset-fashion-mnist)");
  }
  uint8_t magic[4];
  if (!ReadExactly(f.get(), magic, 4) || magic[0] != 0 || magic[1] != 0 ||
      magic[2] != 0x08 || magic[3] == 0 || magic[3] > 4)
    return Status(Code::kCorrupt, path + ": not an IDX file of bytes");
  IdxArray a;
  // Checked before every multiply: a crafted header whose product wraps
  // around 64 bits would otherwise pass as a small array whose dims promise
  // more bytes than were read, and callers index by dims.
  constexpr uint64_t kMaxBytes = uint64_t{1} << 32;
  uint64_t total = 1;
  for (int d = 0; d < magic[3]; ++d) {
    uint8_t dim[4];
    if (!ReadExactly(f.get(), dim, 4))
      return ShortRead(f.get(), path, "header");
    a.dims.push_back(BigEndian(dim));
    if (a.dims.back() == 0 || a.dims.back() > kMaxBytes / total)
      return Status(Code::kCorrupt, path + ": implausible dimensions");
    total *= a.dims.back();
  }
  a.bytes.resize(total);
  if (!ReadExactly(f.get(), a.bytes.data(), total))
    return ShortRead(f.get(), path,
                     ("data of " + std::to_string(total) + " bytes").c_str());
  // Read on to the end: only there does zlib compare the gzip trailer's CRC,
  // so a flipped bit in the data is caught here rather than trained on.
  uint8_t extra;
  const int more = gzread(f.get(), &extra, 1);
  if (more < 0) return ShortRead(f.get(), path, "end of stream");
  if (more > 0)
    return Status(Code::kCorrupt, path + ": bytes after the " +
                                      std::to_string(total) +
                                      " its header promises");
  return a;
}

shardps::Result<Split> LoadSplit(const std::string& images_path,
                                 const std::string& labels_path, size_t limit) {
  auto images = ReadIdx(images_path);
  if (!images.ok()) return images.status();
  auto labels = ReadIdx(labels_path);
  if (!labels.ok()) return labels.status();
  if (images->dims.size() != 3 || labels->dims.size() != 1 ||
      images->dims[0] != labels->dims[0])
    return Status(Code::kCorrupt, images_path + " and " + labels_path +
                                      " do not describe the same examples");
  Split s;
  s.count = images->dims[0];
  if (limit > 0 && limit < s.count) s.count = limit;
  s.pixels = size_t{images->dims[1]} * images->dims[2];
  s.images.resize(s.count * s.pixels);
  for (size_t i = 0; i < s.images.size(); ++i)
    s.images[i] = images->bytes[i] / 255.0f;
  s.labels.assign(labels->bytes.begin(), labels->bytes.begin() + s.count);
  for (uint8_t l : s.labels)
    if (l > 9) return Status(Code::kCorrupt, labels_path + ": label above 9");
  return s;
}

}  // namespace fashion_mnist
