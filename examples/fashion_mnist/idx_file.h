// Reading the IDX files of MNIST-style datasets (gzip-compressed, as Debian's
// dataset-fashion-mnist ships them).
//
// IDX: a big-endian header (0, 0, type 0x08 = unsigned byte, rank), one
// big-endian uint32 per dimension, then the bytes.
#ifndef SHARDPS_EXAMPLES_FASHION_MNIST_IDX_FILE_H_
#define SHARDPS_EXAMPLES_FASHION_MNIST_IDX_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace fashion_mnist {

struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> bytes;  // product(dims) values
};

// Reads a .gz IDX file of unsigned bytes (an uncompressed one works too:
// zlib passes it through). kNotFound when the file is missing (install
// dataset-fashion-mnist), kIoError when it cannot be opened otherwise,
// kCorrupt when it is not IDX, its dimensions are zero or exceed 4 GiB in
// all, it is truncated or longer than its header says, or the gzip stream is
// damaged (CRC included). Any thread; no shared state.
shardps::Result<IdxArray> ReadIdx(const std::string& path);

// Images as floats in [0, 1], one row of rows*cols per image, and labels,
// from the two files of a split; at most `limit` examples (0 = all).
// ReadIdx's errors, or kCorrupt when the files are not images [n, rows,
// cols] and labels [n] of the same n, or a label is above 9.
struct Split {
  std::vector<float> images;  // count x pixels
  std::vector<uint8_t> labels;
  size_t count = 0;
  size_t pixels = 0;
};
shardps::Result<Split> LoadSplit(const std::string& images_path,
                                 const std::string& labels_path, size_t limit);

}  // namespace fashion_mnist

#endif  // SHARDPS_EXAMPLES_FASHION_MNIST_IDX_FILE_H_
