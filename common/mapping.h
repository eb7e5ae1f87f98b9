// Memory mappings of files: every mapping shardps makes is one of these two.
//
// Mapping: a shared mapping of a whole open file (segments, batch queues,
// journals), made with Boost.Interprocess (mapped_region).
// TensorMapping: address space reserved for one tensor, into which blocks
// of several segment files are mapped side by side (ModelView). Raw mmap:
// see its comment for why Boost.Interprocess cannot do it.
//
// Both are move-only and unmap on destruction. Errors from the OS (and
// Boost.Interprocess's exceptions) become a Status here, once: no
// exception leaves this file.
//
// Thread-safety: none per object; distinct objects are independent.
#ifndef SHARDPS_COMMON_MAPPING_H_
#define SHARDPS_COMMON_MAPPING_H_

#include <boost/interprocess/interprocess_fwd.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "shardps/status.h"

namespace shardps {

// A shared mapping of a whole file region; unmapped on destruction.
class Mapping {
 public:
  Mapping() noexcept;
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  // Maps [0, size) of `fd` MAP_SHARED, read-write or read-only (PROT_READ:
  // a stray write through a reader's view faults instead of changing the
  // model). `populate` prefaults every page now (MAP_POPULATE: first touch
  // of tmpfs pages is slow, so servers pay it at start-up). The mapping does
  // not keep `fd`: the caller may close it at any time. Errors: "mmap: <OS
  // reason>" with the code of ErrnoStatus; the caller adds the path.
  static Result<Mapping> Map(int fd, size_t size, bool writable, bool populate);

  char* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  // Heap-held so that this header needs no Boost.Interprocess definitions;
  // data_/size_ cache its address and size for the hot accessors.
  std::unique_ptr<boost::interprocess::mapped_region> region_;
  char* data_ = nullptr;
  size_t size_ = 0;
};

// One tensor's reserved address range with its blocks mapped into it.
//
// The one raw-mmap wrapper left, because Boost.Interprocess cannot serve
// here: the reservation is anonymous PROT_NONE MAP_NORESERVE address space,
// which mapped_region has no way to make; and each block must belong to the
// reservation once it is mapped over it (MAP_FIXED), so that one munmap of
// the whole range frees it all. A mapped_region per block would unmap its
// own pages on destruction, leaving a hole that another thread's mmap could
// take before the reservation is unmapped over it.
class TensorMapping {
 public:
  TensorMapping() = default;
  TensorMapping(TensorMapping&& o) noexcept;
  TensorMapping& operator=(TensorMapping&&) = delete;
  TensorMapping(const TensorMapping&) = delete;
  ~TensorMapping();

  // Reserves `bytes` of address space that maps nothing yet.
  Status Reserve(size_t bytes);

  // Maps `bytes` of `fd` at `file_offset` over [offset, offset + bytes) of
  // the reservation, read-only and shared. MAP_FIXED is safe: the range is
  // ours. REQUIRES: Reserve succeeded and the range lies inside it.
  Status MapBlock(size_t offset, int fd, uint64_t file_offset, size_t bytes);

  const float* data() const { return reinterpret_cast<const float*>(base_); }

 private:
  char* base_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace shardps

#endif  // SHARDPS_COMMON_MAPPING_H_
