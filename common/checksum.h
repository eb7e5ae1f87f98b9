// CRC-32C (Castagnoli) for segment headers, directories and files.
// Thread-safety: pure functions.
#ifndef SHARDPS_COMMON_CHECKSUM_H_
#define SHARDPS_COMMON_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

namespace shardps {

// CRC-32C of data[0, n), continuing from `crc` (pass 0 to start).
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace shardps

#endif  // SHARDPS_COMMON_CHECKSUM_H_
