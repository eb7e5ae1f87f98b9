// NumPy .npy files holding float32 tensors, for checkpoint export and import.
//
// A .npy file is a magic string, a version, a Python dict literal describing
// dtype, memory order and shape, then the raw C-order array data. numpy loads
// what WriteNpy writes with numpy.load(path), and numpy.save output of a
// float32 (or float64) C-order array reads back with ReadNpy.
//
// Only little-endian hosts are supported (checked at compile time), so data
// goes to and from disk without byte swapping.
//
// Thread-safety: functions of their arguments and the named file only.
#ifndef SHARDPS_CLI_NPY_H_
#define SHARDPS_CLI_NPY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shardps/status.h"

namespace shardps {

struct NpyArray {
  std::vector<uint64_t> shape;  // empty for a 0-d (scalar) array
  std::vector<float> data;      // C order; size is the product of shape
};

// numpy refuses arrays of more dimensions (its limit is 32 before 2.0).
inline constexpr size_t kMaxNpyRank = 64;

// Writes a version 1.0 file with descr '<f4'. `count` must equal the product
// of `shape` (1 for an empty shape) and the rank be at most kMaxNpyRank. The
// array lands under `path` atomically: it is written to "<path>.tmp.<pid>",
// fsynced and renamed, so a reader never sees half a file.
// Errors: kInvalidArgument for a bad shape or count, kIoError for the file.
Status WriteNpy(const std::string& path, const std::vector<uint64_t>& shape,
                const float* data, uint64_t count);

// Reads a version 1.0, 2.0 or 3.0 file with descr '<f4', or '<f8' narrowed
// to float, and fortran_order False. Errors name the path: kNotFound for a
// missing file, kInvalidArgument for something that is not a .npy file or
// holds an unsupported array, kCorrupt for a damaged one, kIoError for the OS.
Result<NpyArray> ReadNpy(const std::string& path);

}  // namespace shardps

#endif  // SHARDPS_CLI_NPY_H_
