#include "common/wire.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/checksum.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

// A Push request as the client would send it. The model name is 3 chars so
// the first string built (which ends the buffer) needs no padding: then
// every byte of the buffer is content, and any truncation must be noticed.
std::vector<uint8_t> BuildRequest(wire::Op op = wire::Op::Push,
                                  const std::string& model = "mdl") {
  flatbuffers::FlatBufferBuilder fbb;
  auto model_off = fbb.CreateString(model);
  auto tensor_off = fbb.CreateString("fc1.weight");
  auto blocks_off = fbb.CreateVector(std::vector<uint32_t>{1, 3, 5});
  fbb.Finish(wire::CreateRequest(fbb, op, /*request_id=*/42, /*client_id=*/7,
                                 model_off, tensor_off, blocks_off,
                                 wire::DType::F32, /*clock=*/9,
                                 /*flags=*/3));
  return std::vector<uint8_t>(fbb.GetBufferPointer(),
                              fbb.GetBufferPointer() + fbb.GetSize());
}

void RequireBadMessage(const Status& status) {
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == Code::kBadMessage);
  CHECK_FALSE(status.message().empty());
}

TEST_CASE("wire ParseRequest accepts a built request", "[wire]") {
  const std::vector<uint8_t> buf = BuildRequest();
  HeaderScratch scratch;
  auto parsed = ParseRequest(buf.data(), buf.size(), scratch);
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  const wire::Request& req = **parsed;
  CHECK(req.op() == wire::Op::Push);
  CHECK(req.request_id() == 42);
  CHECK(req.client_id() == 7);
  REQUIRE(req.model() != nullptr);
  CHECK(req.model()->str() == "mdl");
  REQUIRE(req.tensor() != nullptr);
  CHECK(req.tensor()->str() == "fc1.weight");
  REQUIRE(req.blocks() != nullptr);
  REQUIRE(req.blocks()->size() == 3);
  CHECK(req.blocks()->Get(0) == 1);
  CHECK(req.blocks()->Get(2) == 5);
  CHECK(req.dtype() == wire::DType::F32);
  CHECK(req.clock() == 9);
  CHECK(req.flags() == 3);
}

TEST_CASE("wire ParseRequest reads a header at any alignment", "[wire]") {
  // ZeroMQ frames have no alignment guarantee; the scratch copy fixes that.
  const std::vector<uint8_t> buf = BuildRequest(wire::Op::PushPull);
  std::vector<uint8_t> shifted(buf.size() + 3);
  HeaderScratch scratch;
  for (size_t shift = 0; shift < 4; ++shift) {
    std::memcpy(shifted.data() + shift, buf.data(), buf.size());
    auto parsed = ParseRequest(shifted.data() + shift, buf.size(), scratch);
    REQUIRE(parsed.ok());
    CHECK((*parsed)->op() == wire::Op::PushPull);
    CHECK((*parsed)->request_id() == 42);
  }
}

TEST_CASE("wire HeaderScratch returns an aligned copy", "[wire]") {
  const char text[] = "abcdefghijk";
  HeaderScratch scratch;
  const uint8_t* copy = scratch.Assign(text + 1, 9);
  CHECK(reinterpret_cast<uintptr_t>(copy) % alignof(uint64_t) == 0);
  CHECK(std::memcmp(copy, text + 1, 9) == 0);
}

TEST_CASE("wire ParseRequest rejects random bytes", "[wire]") {
  std::mt19937 rng(1234);
  HeaderScratch scratch;
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(8 + rng() % 512);
    for (uint8_t& b : junk) b = static_cast<uint8_t>(rng());
    INFO("iteration " << i << ", " << junk.size() << " bytes");
    RequireBadMessage(ParseRequest(junk.data(), junk.size(), scratch).status());
  }
}

TEST_CASE("wire ParseRequest rejects every truncation", "[wire]") {
  const std::vector<uint8_t> buf = BuildRequest();
  HeaderScratch scratch;
  for (size_t size = 0; size < buf.size(); ++size) {
    INFO("first " << size << " of " << buf.size() << " bytes");
    // Exactly `size` bytes, so a sanitizer sees any read beyond them.
    std::vector<uint8_t> part(buf.begin(), buf.begin() + size);
    RequireBadMessage(ParseRequest(part.data(), part.size(), scratch).status());
  }
}

TEST_CASE("wire ParseRequest enforces the header size limits", "[wire]") {
  const std::vector<uint8_t> buf = BuildRequest();
  HeaderScratch scratch;
  // A valid request followed by padding: only the total size decides.
  std::vector<uint8_t> big(kMaxHeaderBytes + 1, 0);
  std::memcpy(big.data(), buf.data(), buf.size());
  CHECK(ParseRequest(big.data(), kMaxHeaderBytes, scratch).ok());
  Status too_big = ParseRequest(big.data(), big.size(), scratch).status();
  RequireBadMessage(too_big);
  CHECK_THAT(too_big.message(), Contains(std::to_string(big.size())));

  for (size_t size = 0; size < 8; ++size) {
    INFO(size << " bytes");
    RequireBadMessage(ParseRequest(buf.data(), size, scratch).status());
  }
}

TEST_CASE("wire ParseRequest rejects an unknown op", "[wire]") {
  const std::vector<uint8_t> buf = BuildRequest(
      static_cast<wire::Op>(static_cast<uint8_t>(wire::Op::MAX) + 1));
  HeaderScratch scratch;
  Status s = ParseRequest(buf.data(), buf.size(), scratch).status();
  RequireBadMessage(s);
  CHECK_THAT(s.message(), Contains("unknown op"));
}

TEST_CASE("wire ParseRequest survives mutated requests", "[wire]") {
  // Damaged but plausible headers: either refused, or verified well enough
  // that reading every field stays inside the buffer (ASan checks that).
  const std::vector<uint8_t> buf = BuildRequest();
  std::mt19937 rng(77);
  HeaderScratch scratch;
  int refused = 0;
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> bad = buf;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f)
      bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    auto parsed = ParseRequest(bad.data(), bad.size(), scratch);
    if (!parsed.ok()) {
      CHECK(parsed.status().code() == Code::kBadMessage);
      ++refused;
      continue;
    }
    const wire::Request& req = **parsed;
    size_t touched = 0;
    if (req.model() != nullptr) touched += req.model()->str().size();
    if (req.tensor() != nullptr) touched += req.tensor()->str().size();
    if (req.blocks() != nullptr)
      for (uint32_t b : *req.blocks()) touched += b & 1;
    CHECK(req.op() <= wire::Op::MAX);
    CHECK(touched < (1u << 20));
  }
  CHECK(refused > 0);
}

TEST_CASE("wire ParseReply accepts a reply and rejects junk", "[wire]") {
  flatbuffers::FlatBufferBuilder fbb;
  auto message = fbb.CreateString("no such tensor");
  wire::ReplyBuilder reply(fbb);
  reply.add_request_id(17);
  reply.add_code(static_cast<uint8_t>(Code::kNotFound));
  reply.add_message(message);
  fbb.Finish(reply.Finish());
  HeaderScratch scratch;
  auto parsed = ParseReply(fbb.GetBufferPointer(), fbb.GetSize(), scratch);
  REQUIRE(parsed.ok());
  CHECK((*parsed)->request_id() == 17);
  CHECK(CodeFromWire((*parsed)->code()) == Code::kNotFound);
  CHECK((*parsed)->message()->str() == "no such tensor");

  const uint8_t junk[16] = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4};
  RequireBadMessage(ParseReply(junk, sizeof(junk), scratch).status());
  RequireBadMessage(ParseReply(junk, 4, scratch).status());
}

TEST_CASE("wire CodeFromWire maps known codes and rejects the rest", "[wire]") {
  for (int c = 0; c <= static_cast<int>(kLastCode); ++c)
    CHECK(static_cast<int>(CodeFromWire(static_cast<uint8_t>(c))) == c);
  for (int c = static_cast<int>(kLastCode) + 1; c < 256; ++c) {
    INFO("code " << c);
    CHECK(CodeFromWire(static_cast<uint8_t>(c)) == Code::kBadMessage);
  }
}

TEST_CASE("wire OpName names ops and flags unknown ones", "[wire]") {
  CHECK(std::string(OpName(wire::Op::Push)) == "Push");
  CHECK(std::string(OpName(wire::Op::PullRows)) == "PullRows");
  CHECK(std::string(OpName(wire::Op::QueuePush)) == "QueuePush");
  CHECK(std::string(OpName(static_cast<wire::Op>(200))) == "unknown op");
}

TEST_CASE("checksum Crc32c matches the standard check values", "[wire]") {
  // The CRC-32C catalogue check value, and the RFC 3720 (iSCSI) vectors.
  const char digits[] = "123456789";
  CHECK(Crc32c(digits, 9) == 0xE3069283u);
  uint8_t zeros[32] = {}, ones[32], up[32], down[32];
  for (int i = 0; i < 32; ++i) {
    ones[i] = 0xff;
    up[i] = static_cast<uint8_t>(i);
    down[i] = static_cast<uint8_t>(31 - i);
  }
  CHECK(Crc32c(zeros, 32) == 0x8A9136AAu);
  CHECK(Crc32c(ones, 32) == 0x62A8AB43u);
  CHECK(Crc32c(up, 32) == 0x46DD794Eu);
  CHECK(Crc32c(down, 32) == 0x113FDB5Cu);
  CHECK(Crc32c(digits, 0) == 0u);
}

TEST_CASE("checksum Crc32c continues across pieces", "[wire]") {
  std::mt19937 rng(5);
  std::vector<uint8_t> data(1000);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  const uint32_t whole = Crc32c(data.data(), data.size());
  for (size_t cut : {0, 1, 3, 7, 8, 9, 500, 999, 1000}) {
    INFO("cut at " << cut);
    const uint32_t first = Crc32c(data.data(), cut);
    CHECK(Crc32c(data.data() + cut, data.size() - cut, first) == whole);
  }
  data[500] ^= 1;
  CHECK(Crc32c(data.data(), data.size()) != whole);
}

}  // namespace
}  // namespace shardps
