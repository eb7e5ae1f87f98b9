// Fuzzes batch queue validation: producers (`shardps feed`, the queue
// service) and consumers open a queue file that may be damaged or foreign,
// and a consumer then reads batch shapes other processes wrote into slot
// headers.
//
// Each input is validated as given and again with its header CRC
// recomputed (so mutations reach the size checks). When an image passes,
// every slot is read as BatchQueue::Next would: a shape ShapeFitsSlot
// accepts has its features and labels read at both ends, and the buffer is
// exactly the image, so AddressSanitizer reports any overrun.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/batch_queue_format.h"
#include "common/checksum.h"
#include "fuzz/fuzz_fixture.h"

namespace {

using shardps::QueueHeader;
using shardps::SlotHeader;

volatile char sink;

void ReadSlots(const char* base) {
  const auto& h = *reinterpret_cast<const QueueHeader*>(base);
  for (uint32_t i = 0; i < h.slot_count; ++i) {
    const char* slot =
        base + shardps::kQueueHeaderBytes + uint64_t{i} * h.slot_stride;
    const auto& s = *reinterpret_cast<const SlotHeader*>(slot);
    if (!shardps::ShapeFitsSlot(s.batch, s.window, s.features, s.horizon,
                                h.slot_bytes))
      continue;
    const uint64_t floats = uint64_t{s.batch} * s.window * s.features +
                            uint64_t{s.batch} * s.horizon;
    const char* payload = slot + shardps::kSlotHeaderBytes;
    if (floats > 0) sink = payload[floats * sizeof(float) - 1];
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  shardps::fuzz::CheckAsGivenAndResealed(
      data, size, shardps::kQueueHeaderBytes,
      [](char* base, size_t) {
        auto& h = *reinterpret_cast<QueueHeader*>(base);
        h.header_crc = shardps::Crc32c(&h, offsetof(QueueHeader, header_crc));
      },
      [](const char* base, size_t bytes) {
        if (shardps::ValidateQueueImage(base, bytes).ok()) ReadSlots(base);
      });
  return 0;
}
