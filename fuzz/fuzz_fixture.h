// What the fuzz targets (and the seed writer) share: the request fuzzer's
// model, a serving segment that leaves nothing on /dev/shm, and an aligned
// copy of an input that ASan bounds exactly, checked as given and resealed.
//
// Setup failures abort with the reason on stderr: a fuzzer that cannot set
// itself up has nothing to report but that.
#ifndef SHARDPS_FUZZ_FUZZ_FIXTURE_H_
#define SHARDPS_FUZZ_FUZZ_FIXTURE_H_

#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "common/segment.h"
#include "shardps/model_spec.h"

namespace shardps::fuzz {

// The request fuzzer's model, also the one fuzz/seed_writer.cc writes its
// request seeds for. "w" has 5 blocks of 1024 floats (the last 904), "b" one
// of 100; shard 0 of 2 holds w blocks 0, 2, 4 and nothing of b, so "lives
// elsewhere" and short last blocks are reachable.
inline constexpr char kRequestSpec[] = R"(
[model]
name = "fz"
storage = "/dev/shm"
block_floats = 1024
[optimizer]
kind = "sgd"
lr = 0.1
[[tensor]]
name = "w"
shape = [5000]
init = "zeros"
[[tensor]]
name = "b"
shape = [100]
init = "constant:1"
)";

// Prints "<who> setup: <status>" and aborts.
[[noreturn]] inline void DieInSetup(const char* who, const Status& s) {
  std::fprintf(stderr, "%s setup: %s\n", who, s.ToString().c_str());
  abort();
}

// `text` parsed as a model spec; aborts (naming `who`) when it is not one.
inline ModelSpec ParseSpecOrDie(const char* text, const char* who) {
  auto spec = ParseModelSpec(text);
  if (!spec.ok()) DieInSetup(who, spec.status());
  return std::move(spec).value();
}

// Shard `shard` of `shards` of `spec`, created for serving in a fresh
// /dev/shm directory whose file and directory are removed at once: the
// mapping stays valid and nothing is left behind, however the fuzzer exits.
// Aborts (naming `who`) when the segment cannot be made.
inline std::unique_ptr<Segment> TransientSegment(const ModelSpec& spec,
                                                 uint32_t shard,
                                                 uint32_t shards,
                                                 const char* who) {
  char dir[] = "/dev/shm/shardps-fuzz-XXXXXX";
  if (::mkdtemp(dir) == nullptr) abort();
  const std::string path = std::string(dir) + "/s.seg";
  SegmentOpenReport report;
  auto seg = Segment::OpenForServing(spec, shard, shards, path, &report);
  ::unlink(path.c_str());
  ::rmdir(dir);
  if (!seg.ok()) DieInSetup(who, seg.status());
  return std::move(seg).value();
}

// Memory images (segment and queue headers) hold 64-byte aligned atomics,
// as a mapping does; an input copied into an aligned buffer of exactly its
// size keeps that, and ASan poisons everything past its end.
inline constexpr size_t kImageAlign = 64;
struct AlignedDelete {
  void operator()(char* p) const {
    ::operator delete (p, std::align_val_t{kImageAlign});
  }
};
using AlignedImage = std::unique_ptr<char, AlignedDelete>;

// A copy of `data` (`size` > 0 bytes) in a buffer of exactly that size.
inline AlignedImage CopyAligned(const uint8_t* data, size_t size) {
  AlignedImage image(
      static_cast<char*>(::operator new (size, std::align_val_t{kImageAlign})));
  std::memcpy(image.get(), data, size);
  return image;
}

// Runs `check(image, size)` on an aligned copy of the input twice: as given,
// and, when it holds at least `header_bytes`, after `reseal(image, size)`
// has recomputed its checksums, so that mutations also reach the structural
// checks behind a CRC. An empty input is skipped.
template <typename Reseal, typename Check>
void CheckAsGivenAndResealed(const uint8_t* data, size_t size,
                             size_t header_bytes, Reseal reseal, Check check) {
  if (size == 0) return;
  const AlignedImage image = CopyAligned(data, size);
  check(image.get(), size);
  if (size < header_bytes) return;
  reseal(image.get(), size);
  check(image.get(), size);
}

}  // namespace shardps::fuzz

#endif  // SHARDPS_FUZZ_FUZZ_FIXTURE_H_
