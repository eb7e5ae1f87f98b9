#include "examples/fashion_mnist/idx_file.h"

#include <zlib.h>

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

}  // namespace

shardps::Result<IdxArray> ReadIdx(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f)
    return Status(Code::kNotFound,
                  path + ": cannot open (install dataset-fashion-mnist)");
  uint8_t magic[4];
  if (!ReadExactly(f.get(), magic, 4) || magic[0] != 0 || magic[1] != 0 ||
      magic[2] != 0x08 || magic[3] == 0 || magic[3] > 4)
    return Status(Code::kCorrupt, path + ": not an IDX file of bytes");
  IdxArray a;
  uint64_t total = 1;
  for (int d = 0; d < magic[3]; ++d) {
    uint8_t dim[4];
    if (!ReadExactly(f.get(), dim, 4))
      return Status(Code::kCorrupt, path + ": truncated header");
    a.dims.push_back(BigEndian(dim));
    total *= a.dims.back();
  }
  if (total == 0 || total > (1ull << 32))
    return Status(Code::kCorrupt, path + ": implausible dimensions");
  a.bytes.resize(total);
  if (!ReadExactly(f.get(), a.bytes.data(), total))
    return Status(Code::kCorrupt, path + ": truncated data (expected " +
                                      std::to_string(total) + " bytes)");
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
