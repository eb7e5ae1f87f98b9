// Fuzzes segment validation: a server reopening its segment and every
// ModelView or `shardps inspect` mapping one trust nothing in the file until
// ValidateSegmentImage has passed, since the file may be damaged or foreign.
//
// Each input is checked twice: as given, and with its header and directory
// checksums recomputed, so mutations reach the structural checks instead
// of stopping at a CRC mismatch. When an image passes, every region the
// accessors hand out is read at both ends: the buffer is exactly the image,
// so AddressSanitizer reports any offset the validation let through that
// points outside it.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/checksum.h"
#include "common/segment.h"
#include "common/segment_format.h"
#include "fuzz/fuzz_fixture.h"

namespace {

using shardps::BlockEntry;
using shardps::SegmentHeader;
using shardps::TableEntry;
using shardps::TensorEntry;

volatile char sink;

void Touch(const char* base, uint64_t offset, uint64_t bytes) {
  if (bytes == 0) return;
  sink = base[offset];
  sink = base[offset + bytes - 1];
}

// Reads the first and last byte of every region a valid image describes.
void TouchAll(const char* base) {
  const auto& h = *reinterpret_cast<const SegmentHeader*>(base);
  const char* dir = base + h.directory_offset;
  const auto* tensors = reinterpret_cast<const TensorEntry*>(dir);
  const auto* blocks =
      reinterpret_cast<const BlockEntry*>(tensors + h.num_tensors);
  const auto* tables =
      reinterpret_cast<const TableEntry*>(blocks + h.num_blocks);
  Touch(base, h.directory_offset, h.directory_bytes);
  Touch(base, h.versions_offset,
        uint64_t{h.num_blocks} * sizeof(shardps::BlockVersion));
  Touch(base, h.table_counters_offset,
        uint64_t{h.num_tables} * sizeof(shardps::TableCounters));
  for (uint32_t i = 0; i < h.num_tensors; ++i)
    if (tensors[i].local_blocks > 0) {
      const BlockEntry& first = blocks[tensors[i].first_local];
      sink = static_cast<char>(first.tensor);
    }
  for (uint32_t i = 0; i < h.num_blocks; ++i) {
    const BlockEntry& b = blocks[i];
    const TensorEntry& t = tensors[b.tensor];
    Touch(base, b.data_offset, b.num_floats * sizeof(float));
    Touch(base, b.data_offset,
          b.data_bytes * (1 + t.state_slots + t.accum_slots));
  }
  for (uint32_t i = 0; i < h.num_tables; ++i) {
    const TableEntry& t = tables[i];
    Touch(base, t.index_offset, t.index_slots * sizeof(shardps::RowSlot));
    Touch(base, t.rows_offset, t.rows_bytes * (1 + t.state_slots));
  }
}

// Recomputes both checksums in place when the offsets they need lie inside
// the image; leaves anything else as it is.
void FixChecksums(char* base, size_t size) {
  auto& h = *reinterpret_cast<SegmentHeader*>(base);
  if (h.directory_offset <= size &&
      h.directory_bytes <= size - h.directory_offset)
    h.directory_crc =
        shardps::Crc32c(base + h.directory_offset, h.directory_bytes);
  h.header_crc = shardps::Crc32c(&h, offsetof(SegmentHeader, header_crc));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  shardps::fuzz::CheckAsGivenAndResealed(
      data, size, shardps::kHeaderBytes, FixChecksums,
      [](const char* base, size_t bytes) {
        if (shardps::ValidateSegmentImage(base, bytes).ok()) TouchAll(base);
      });
  return 0;
}
