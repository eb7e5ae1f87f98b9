#include "server/request_validator.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/segment.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

constexpr size_t kFull = 1024 * sizeof(float);  // bytes of a whole block
constexpr size_t kLastW = 904 * sizeof(float);  // "w" is 5000 floats

// "w": 5 blocks (global 0..4) and "b": 1 block (global 5) over 2 shards, so
// shard 0 holds w blocks 0, 2, 4 (local 0, 1, 2) and shard 1 holds w blocks
// 1, 3 and b block 0 (local 0, 1, 2).
class ValidatorFixture {
 public:
  explicit ValidatorFixture(uint32_t shard) {
    spec_ = test::MakeSpec("vmodel", dir_.path(),
                           {{"w", {5000}}, {"b", {100}, "constant:1"}});
    segment_ = test::OpenServing(spec_, shard, 2, dir_.File("s.seg"));
    validator_ = std::make_unique<RequestValidator>(*segment_);
  }

  // Builds a request in the fixture's builder; valid until the next call.
  const wire::Request& Request(wire::Op op, const std::string& tensor,
                               const std::vector<uint32_t>& blocks,
                               const std::string& model = "vmodel",
                               wire::DType dtype = wire::DType::F32) {
    fbb_.Clear();
    auto model_off = fbb_.CreateString(model);
    auto tensor_off = fbb_.CreateString(tensor);
    auto blocks_off = fbb_.CreateVector(blocks);
    fbb_.Finish(wire::CreateRequest(fbb_, op, 1, 2, model_off, tensor_off,
                                    blocks_off, dtype));
    return *flatbuffers::GetRoot<wire::Request>(fbb_.GetBufferPointer());
  }

  Status Validate(const wire::Request& req, const std::vector<size_t>& sizes) {
    return validator_->ValidateDense(req, sizes, &local_);
  }

  const std::vector<uint32_t>& local() const { return local_; }
  const RequestValidator& validator() const { return *validator_; }
  flatbuffers::FlatBufferBuilder& builder() { return fbb_; }

 private:
  test::TempDir dir_;
  ModelSpec spec_;
  std::unique_ptr<Segment> segment_;
  std::unique_ptr<RequestValidator> validator_;
  flatbuffers::FlatBufferBuilder fbb_;
  std::vector<uint32_t> local_;
};

void RequireCode(const Status& status, Code code, const std::string& fragment) {
  INFO(status.ToString());
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == code);
  CHECK_THAT(status.message(), Contains(fragment));
}

TEST_CASE("validator accepts a push and gives local indices", "[validator]") {
  ValidatorFixture f(0);
  const auto& req = f.Request(wire::Op::Push, "w", {0, 2, 4});
  Status s = f.Validate(req, {kFull, kFull, kLastW});
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(f.local() == std::vector<uint32_t>{0, 1, 2});
}

TEST_CASE("validator keeps the request's block order", "[validator]") {
  ValidatorFixture f(0);
  REQUIRE(
      f.Validate(f.Request(wire::Op::PushPull, "w", {4, 0}), {kLastW, kFull})
          .ok());
  CHECK(f.local() == std::vector<uint32_t>{2, 0});
}

TEST_CASE("validator accepts a pull without payload", "[validator]") {
  ValidatorFixture f(1);
  REQUIRE(f.Validate(f.Request(wire::Op::Pull, "w", {3}), {}).ok());
  CHECK(f.local() == std::vector<uint32_t>{1});
  REQUIRE(f.Validate(f.Request(wire::Op::Pull, "b", {0}), {}).ok());
  CHECK(f.local() == std::vector<uint32_t>{2});
}

TEST_CASE("validator accepts a pushpull of a short tensor", "[validator]") {
  ValidatorFixture f(1);
  REQUIRE(
      f.Validate(f.Request(wire::Op::PushPull, "b", {0}), {100 * sizeof(float)})
          .ok());
  CHECK(f.local() == std::vector<uint32_t>{2});
}

TEST_CASE("validator refuses an unknown tensor", "[validator]") {
  ValidatorFixture f(0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w2", {0}), {}),
              Code::kNotFound, "unknown tensor 'w2'");
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "", {0}), {}),
              Code::kNotFound, "unknown tensor");
}

TEST_CASE("validator refuses a request with no tensor name", "[validator]") {
  ValidatorFixture f(0);
  auto& fbb = f.builder();
  fbb.Clear();
  auto model = fbb.CreateString("vmodel");
  auto blocks = fbb.CreateVector(std::vector<uint32_t>{0});
  fbb.Finish(wire::CreateRequest(fbb, wire::Op::Pull, 1, 2, model, 0, blocks));
  const auto& req =
      *flatbuffers::GetRoot<wire::Request>(fbb.GetBufferPointer());
  RequireCode(f.Validate(req, {}), Code::kInvalidArgument, "no tensor");
}

TEST_CASE("validator refuses another model", "[validator]") {
  ValidatorFixture f(0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", {0}, "other"), {}),
              Code::kSpecMismatch, "'other'");
  // Same check through CheckModel, including a missing name.
  CHECK(f.validator().CheckModel(nullptr).code() == Code::kSpecMismatch);
}

TEST_CASE("validator refuses an out-of-range block", "[validator]") {
  ValidatorFixture f(0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", {5}), {}),
              Code::kInvalidArgument, "out of range");
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", {0, 0xffffffffu}), {}),
              Code::kInvalidArgument, "out of range");
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "b", {1}), {}),
              Code::kInvalidArgument, "out of range");
}

TEST_CASE("validator refuses a block that lives on another shard",
          "[validator]") {
  ValidatorFixture f(0);
  RequireCode(
      f.Validate(f.Request(wire::Op::Push, "w", {0, 1}), {kFull, kFull}),
      Code::kInvalidArgument, "does not live on shard 0");
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "b", {0}), {}),
              Code::kInvalidArgument, "does not live on shard 0");
}

TEST_CASE("validator refuses a payload of the wrong size", "[validator]") {
  ValidatorFixture f(0);
  const auto& req = f.Request(wire::Op::Push, "w", {0, 4});
  for (size_t bad : {kFull - 4, kFull + 4, size_t{0}})
    RequireCode(f.Validate(req, {bad, kLastW}), Code::kSizeMismatch,
                std::to_string(bad));
  // The short last block must be sent short, and only short.
  RequireCode(f.Validate(req, {kFull, kFull}), Code::kSizeMismatch, "block 4");
  RequireCode(f.Validate(req, {kFull, kLastW + 4}), Code::kSizeMismatch,
              "block 4");
  RequireCode(f.Validate(req, {kFull, kLastW - 4}), Code::kSizeMismatch,
              "block 4");
  CHECK(f.Validate(req, {kFull, kLastW}).ok());
}

TEST_CASE("validator refuses a frame count that does not match the blocks",
          "[validator]") {
  ValidatorFixture f(0);
  const auto& req = f.Request(wire::Op::PushPull, "w", {0, 2});
  RequireCode(f.Validate(req, {kFull}), Code::kBadMessage, "payload frames");
  RequireCode(f.Validate(req, {kFull, kFull, kFull}), Code::kBadMessage,
              "payload frames");
  RequireCode(f.Validate(req, {}), Code::kBadMessage, "payload frames");
}

TEST_CASE("validator refuses a pull that carries payload", "[validator]") {
  ValidatorFixture f(0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", {0}), {kFull}),
              Code::kBadMessage, "payload frames");
}

TEST_CASE("validator sizes 16-bit gradient frames at two bytes a float",
          "[validator]") {
  ValidatorFixture f(0);
  for (wire::DType dtype : {wire::DType::F16, wire::DType::BF16}) {
    INFO(wire::EnumNameDType(dtype));
    CHECK(f.Validate(f.Request(wire::Op::Push, "w", {0}, "vmodel", dtype),
                     {kFull / 2})
              .ok());
    RequireCode(f.Validate(f.Request(wire::Op::Push, "w", {0}, "vmodel", dtype),
                           {kFull}),
                Code::kSizeMismatch, wire::EnumNameDType(dtype));
  }
}

TEST_CASE("validator refuses 16-bit pulls and unknown dtypes", "[validator]") {
  ValidatorFixture f(0);
  RequireCode(
      f.Validate(
          f.Request(wire::Op::Pull, "w", {0}, "vmodel", wire::DType::F16), {}),
      Code::kUnimplemented, "F32");
  RequireCode(f.Validate(f.Request(wire::Op::Push, "w", {0}, "vmodel",
                                   static_cast<wire::DType>(9)),
                         {kFull}),
              Code::kInvalidArgument, "unknown dtype 9");
}

TEST_CASE("validator refuses an empty block list", "[validator]") {
  ValidatorFixture f(0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", {}), {}),
              Code::kInvalidArgument, "names no blocks");
  // And a request without the vector at all.
  auto& fbb = f.builder();
  fbb.Clear();
  auto model = fbb.CreateString("vmodel");
  auto tensor = fbb.CreateString("w");
  fbb.Finish(wire::CreateRequest(fbb, wire::Op::Push, 1, 2, model, tensor));
  const auto& req =
      *flatbuffers::GetRoot<wire::Request>(fbb.GetBufferPointer());
  RequireCode(f.Validate(req, {}), Code::kInvalidArgument, "names no blocks");
}

TEST_CASE("validator refuses too many blocks in one request", "[validator]") {
  ValidatorFixture f(0);
  const std::vector<uint32_t> blocks(kMaxBlocksPerRequest + 1, 0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", blocks), {}),
              Code::kInvalidArgument, "max");
}

TEST_CASE("validator refuses a request that names a block twice",
          "[validator]") {
  ValidatorFixture f(0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", {2, 0, 2}), {}),
              Code::kInvalidArgument, "block 2 of 'w' twice");
  RequireCode(
      f.Validate(f.Request(wire::Op::Push, "w", {4, 4}), {kLastW, kLastW}),
      Code::kInvalidArgument, "block 4 of 'w' twice");
  RequireCode(f.Validate(f.Request(wire::Op::PushPull, "w", {0, 2, 4, 0}),
                         {kFull, kFull, kLastW, kFull}),
              Code::kInvalidArgument, "block 0 of 'w' twice");
  // The request: block 0, 1,024 times.
  const std::vector<uint32_t> zeros(1024, 0);
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", zeros), {}),
              Code::kInvalidArgument, "block 0 of 'w' twice");
  // A refusal, whatever its cause, leaves nothing behind for the next
  // request: each block may be named once again.
  RequireCode(f.Validate(f.Request(wire::Op::Pull, "w", {0, 2, 5}), {}),
              Code::kInvalidArgument, "out of range");
  Status s = f.Validate(f.Request(wire::Op::Pull, "w", {4, 2, 0}), {});
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(f.local() == std::vector<uint32_t>{2, 1, 0});
  REQUIRE(f.Validate(f.Request(wire::Op::Pull, "w", {0, 2, 4}), {}).ok());
}

TEST_CASE("validator replaces the local list on every success", "[validator]") {
  ValidatorFixture f(0);
  REQUIRE(f.Validate(f.Request(wire::Op::Pull, "w", {0, 2, 4}), {}).ok());
  REQUIRE(f.Validate(f.Request(wire::Op::Pull, "w", {2}), {}).ok());
  CHECK(f.local() == std::vector<uint32_t>{1});
}

}  // namespace
}  // namespace shardps
