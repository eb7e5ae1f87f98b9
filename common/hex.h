// Hex(): how a 64-bit hash (a spec hash) is shown in messages and files.
//
// Thread-safety: a pure function; call from any thread.
#ifndef SHARDPS_COMMON_HEX_H_
#define SHARDPS_COMMON_HEX_H_

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

namespace shardps {

// "0x" and 16 lower-case hex digits, leading zeros kept, e.g.
// "0x00000000deadbeef": fixed width so two hashes line up in a message, and
// the form cluster files and checkpoint MANIFESTs are written in.
inline std::string Hex(uint64_t v) {
  char buf[2 + 16 + 1];
  std::snprintf(buf, sizeof(buf), "0x%016" PRIx64, v);
  return buf;
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_HEX_H_
