// Helpers shared by the unit tests: a self-cleaning temp directory, raw file
// access for tests that inspect or damage segment bytes, a small spec
// builder so each test states only the tensors it cares about, and the
// unwrapping of a Result that must succeed.
#ifndef SHARDPS_TESTS_TEST_UTIL_H_
#define SHARDPS_TESTS_TEST_UTIL_H_

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "common/segment.h"
#include "shardps/model_spec.h"

namespace shardps::test {

// A fresh directory under the system temp dir (or under `parent`, e.g.
// "/dev/shm" for segments on the tmpfs servers use), removed with everything
// in it when the object dies, so a failing REQUIRE (which unwinds) still
// cleans up.
class TempDir {
 public:
  explicit TempDir(const std::filesystem::path& parent =
                       std::filesystem::temp_directory_path()) {
    std::string pattern = (parent / "shardps-unit-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;  // a destructor must not throw
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // `name` inside the directory; nothing is created.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Whole file as bytes; throws if it cannot be read, which Catch reports as a
// test failure with the message.
inline std::vector<char> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(in),
                           std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::string& path,
                       const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

struct TensorDef {
  std::string name;
  std::vector<uint64_t> shape;
  std::string init = "zeros";  // InitSpec::Parse syntax
  uint64_t seed = 0;
};

// A valid SGD spec with small blocks (one page), so tensors of a few thousand
// floats already span several blocks and several shards.
inline ModelSpec MakeSpec(const std::string& name, const std::string& storage,
                          const std::vector<TensorDef>& tensors,
                          double lr = 0.5, uint64_t block_floats = 1024) {
  ModelSpec spec;
  spec.name = name;
  spec.storage = storage;
  spec.block_floats = block_floats;
  spec.optimizer.lr = lr;
  for (const TensorDef& def : tensors) {
    TensorSpec t;
    t.name = def.name;
    t.shape = def.shape;
    Result<InitSpec> init = InitSpec::Parse(def.init);
    if (!init.ok()) throw std::runtime_error(init.status().ToString());
    t.init = *init;
    t.seed = def.seed;
    spec.tensors.push_back(std::move(t));
  }
  Status valid = ValidateModelSpec(spec);
  if (!valid.ok()) throw std::runtime_error(valid.ToString());
  return spec;
}

// The whole tensor's initial values, computed from the spec alone.
inline std::vector<float> InitialTensor(const TensorSpec& tensor) {
  std::vector<float> out(tensor.num_floats());
  FillInitialValues(tensor, 0, out.data(), out.size());
  return out;
}

// The value `result` holds; throws, failing the test with the status, when
// it holds an error.
template <typename T>
T ValueOrThrow(Result<T> result) {
  if (!result.ok()) throw std::runtime_error(result.status().ToString());
  return std::move(result).value();
}

// Shard `shard` of `shards` of `spec`, its segment at `path`, opened for
// serving (created when missing); throws, failing the test with the
// reason, when it cannot be.
inline std::unique_ptr<Segment> OpenServing(const ModelSpec& spec,
                                            uint32_t shard, uint32_t shards,
                                            const std::string& path) {
  SegmentOpenReport report;
  return ValueOrThrow(
      Segment::OpenForServing(spec, shard, shards, path, &report));
}

}  // namespace shardps::test

#endif  // SHARDPS_TESTS_TEST_UTIL_H_
