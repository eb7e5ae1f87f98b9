#include "common/mapping.h"

#include <sys/mman.h>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <cerrno>
#include <exception>
#include <string>
#include <utility>

#include "common/posix_file.h"

namespace shardps {

namespace {

namespace bip = boost::interprocess;

// What mapped_region maps: any "memory mappable" object that hands it a
// mapping handle. Ours wraps the caller's own fd, the one it opened
// O_CLOEXEC, locked and checked. Boost's file_mapping would open the file a
// second time by name, without O_CLOEXEC, and map whatever the name points
// to by then, which need not be the file that was locked and checked.
class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  bip::mapping_handle_t get_mapping_handle() const {
    return bip::ipcdetail::mapping_handle_from_file_handle(fd_);
  }

 private:
  const int fd_;
};

// Boost.Interprocess reports the OS error (errno) it failed on, when there
// was one, and its own reason otherwise.
Status InterprocessStatus(const std::string& what,
                          const bip::interprocess_exception& e) {
  if (e.get_native_error() != 0) return ErrnoStatus(what, e.get_native_error());
  return Status(Code::kIoError, what + ": " + e.what());
}

}  // namespace

Mapping::Mapping() noexcept = default;

Mapping::Mapping(Mapping&& other) noexcept
    : region_(std::move(other.region_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    region_ = std::move(other.region_);  // unmaps ours, if any
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Mapping::~Mapping() = default;  // ~mapped_region unmaps

Result<Mapping> Mapping::Map(int fd, size_t size, bool writable,
                             bool populate) {
  // mapped_region reads size 0 as "the whole file"; mmap refuses it, and so
  // do we.
  if (size == 0) return ErrnoStatus("mmap", EINVAL);
  // read_write is PROT_READ | PROT_WRITE, read_only PROT_READ, both
  // MAP_SHARED; map_options are or-ed into mmap's flags (the default adds
  // nothing on Linux).
  const bip::mode_t mode = writable ? bip::read_write : bip::read_only;
  const bip::map_options_t options =
      populate ? MAP_POPULATE : bip::default_map_options;
  Mapping m;
  try {
    m.region_ = std::make_unique<bip::mapped_region>(OpenFile(fd), mode, 0,
                                                     size, nullptr, options);
  } catch (const bip::interprocess_exception& e) {
    return InterprocessStatus("mmap", e);
  } catch (const std::exception& e) {  // std::bad_alloc
    return Status(Code::kIoError, std::string("mmap: ") + e.what());
  }
  m.data_ = static_cast<char*>(m.region_->get_address());
  m.size_ = size;
  return m;
}

TensorMapping::TensorMapping(TensorMapping&& o) noexcept
    : base_(std::exchange(o.base_, nullptr)),
      bytes_(std::exchange(o.bytes_, 0)) {}

TensorMapping::~TensorMapping() {
  if (base_ != nullptr) ::munmap(base_, bytes_);
}

Status TensorMapping::Reserve(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return ErrnoStatus("reserve address space", errno);
  base_ = static_cast<char*>(p);
  bytes_ = bytes;
  return Status::Ok();
}

Status TensorMapping::MapBlock(size_t offset, int fd, uint64_t file_offset,
                               size_t bytes) {
  void* p = ::mmap(base_ + offset, bytes, PROT_READ, MAP_SHARED | MAP_FIXED, fd,
                   static_cast<off_t>(file_offset));
  if (p == MAP_FAILED) return ErrnoStatus("map block", errno);
  return Status::Ok();
}

}  // namespace shardps
