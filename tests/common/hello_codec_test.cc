#include "common/hello_codec.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/common/parsed_reply.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

ShardHello SampleHello() {
  ShardHello h;
  h.model = "mnist";
  h.spec_hash = 0x1234abcd5678ef90;
  h.shard = 1;
  h.shards = 3;
  h.block_floats = 4096;
  h.optimizer = "adam";
  h.tensors = {{"fc1.weight", {256, 784}, "adam", 0},
               {"fc1.bias", {256}, "sgd", 2.5f}};
  h.segment = "/dev/shm/mnist/shard-1-of-3.seg";
  h.hostname = "node7";
  h.segment_id = SegmentId{0xdeadbeef, 0xfeedface};
  h.consistency = "ssp:2";
  h.workers = 2;
  h.clocks = {5, 7};
  h.tables = {{"emb", 16, 100000, "adagrad"}};
  return h;
}

TEST_CASE("hello codec decodes what it encodes", "[hello_codec]") {
  const ShardHello in = SampleHello();
  flatbuffers::FlatBufferBuilder builder;
  EncodeHelloReply(42, in, &builder);
  HeaderScratch scratch;
  const wire::Reply& reply = test::ParsedReply(builder, scratch);
  CHECK(reply.request_id() == 42);
  CHECK(reply.code() == 0);
  auto out = DecodeHello(reply);
  REQUIRE(out.ok());
  CHECK(out->model == in.model);
  CHECK(out->spec_hash == in.spec_hash);
  CHECK(out->shard == in.shard);
  CHECK(out->shards == in.shards);
  CHECK(out->block_floats == in.block_floats);
  CHECK(out->optimizer == in.optimizer);
  REQUIRE(out->tensors.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CHECK(out->tensors[i].name == in.tensors[i].name);
    CHECK(out->tensors[i].shape == in.tensors[i].shape);
    CHECK(out->tensors[i].optimizer == in.tensors[i].optimizer);
    CHECK(out->tensors[i].clip_norm == in.tensors[i].clip_norm);
  }
  CHECK(out->segment == in.segment);
  CHECK(out->hostname == in.hostname);
  CHECK(out->segment_id == in.segment_id);
  CHECK(out->consistency == in.consistency);
  CHECK(out->workers == in.workers);
  CHECK(out->clocks == in.clocks);
  REQUIRE(out->tables.size() == 1);
  CHECK(out->tables[0].name == "emb");
  CHECK(out->tables[0].dim == 16);
  CHECK(out->tables[0].capacity == 100000);
  CHECK(out->tables[0].optimizer == "adagrad");
}

TEST_CASE("hello codec re-encoding reuses a builder", "[hello_codec]") {
  flatbuffers::FlatBufferBuilder builder;
  ShardHello big = SampleHello();
  EncodeHelloReply(1, big, &builder);
  ShardHello small = SampleHello();
  small.tensors.resize(1);
  small.model = "m";
  EncodeHelloReply(2, small, &builder);  // clears what the first left
  HeaderScratch scratch;
  const wire::Reply& reply = test::ParsedReply(builder, scratch);
  CHECK(reply.request_id() == 2);
  auto out = DecodeHello(reply);
  REQUIRE(out.ok());
  CHECK(out->model == "m");
  CHECK(out->tensors.size() == 1);
}

// A hand-built Reply for the fields an encoder would never leave out.
struct RawHello {
  bool with_hello = true;
  bool with_model = true;
  bool with_tensors = true;
  bool tensor_shape = true;
  bool send_optional = true;  // optimizer strings and consistency
  uint64_t block_floats = 1024;
  uint32_t shards = 1;
  uint32_t workers = 0;
  std::vector<int64_t> clocks;
  bool with_table = false;
  uint64_t table_dim = 4;
};

void Build(const RawHello& raw, flatbuffers::FlatBufferBuilder* b) {
  flatbuffers::Offset<wire::HelloInfo> hello;
  if (raw.with_hello) {
    std::vector<flatbuffers::Offset<wire::TensorInfo>> tensors;
    auto shape = b->CreateVector(std::vector<uint64_t>{8});
    auto name = b->CreateString("w");
    tensors.push_back(wire::CreateTensorInfo(
        *b, name, raw.tensor_shape ? shape : 0,
        raw.send_optional ? b->CreateString("sgd") : 0, 0));
    std::vector<flatbuffers::Offset<wire::SparseTableInfo>> tables;
    if (raw.with_table)
      tables.push_back(wire::CreateSparseTableInfo(
          *b, b->CreateString("emb"), raw.table_dim, 10,
          raw.send_optional ? b->CreateString("sgd") : 0));
    hello = wire::CreateHelloInfo(
        *b, raw.with_model ? b->CreateString("m") : 0, 7, 0, raw.shards,
        raw.block_floats, b->CreateString("adam"),
        raw.with_tensors ? b->CreateVector(tensors) : 0, 0, 0,
        raw.send_optional ? b->CreateString("bsp") : 0, raw.workers,
        b->CreateVector(raw.clocks), b->CreateVector(tables));
  }
  wire::ReplyBuilder reply(*b);
  reply.add_request_id(1);
  if (raw.with_hello) reply.add_hello(hello);
  b->Finish(reply.Finish());
}

Status DecodeRaw(const RawHello& raw) {
  flatbuffers::FlatBufferBuilder builder;
  Build(raw, &builder);
  HeaderScratch scratch;
  return DecodeHello(test::ParsedReply(builder, scratch)).status();
}

void RequireBadMessage(const Status& s, const std::string& text) {
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Code::kBadMessage);
  CHECK_THAT(s.message(), Contains(text));
}

TEST_CASE("hello codec fills what an older server leaves out",
          "[hello_codec]") {
  RawHello raw;
  raw.send_optional = false;
  raw.with_table = true;
  flatbuffers::FlatBufferBuilder builder;
  Build(raw, &builder);
  HeaderScratch scratch;
  auto out = DecodeHello(test::ParsedReply(builder, scratch));
  REQUIRE(out.ok());
  CHECK(out->consistency == "async");
  CHECK(out->tensors.at(0).optimizer == "adam");  // the model's
  CHECK(out->tables.at(0).optimizer == "adam");
  CHECK(out->segment.empty());
  CHECK(out->segment_id.empty());
}

TEST_CASE("hello codec refuses a reply without a layout", "[hello_codec]") {
  RawHello raw;
  SECTION("no hello") { raw.with_hello = false; }
  SECTION("no model") { raw.with_model = false; }
  SECTION("no tensor list") { raw.with_tensors = false; }
  SECTION("zero block size") { raw.block_floats = 0; }
  SECTION("zero shards") { raw.shards = 0; }
  RequireBadMessage(DecodeRaw(raw), "Hello reply without a layout");
}

TEST_CASE("hello codec refuses malformed tensors, tables and clocks",
          "[hello_codec]") {
  RawHello raw;
  SECTION("a tensor without a shape") {
    raw.tensor_shape = false;
    RequireBadMessage(DecodeRaw(raw), "Hello reply with a malformed tensor");
  }
  SECTION("a table of dim 0") {
    raw.with_table = true;
    raw.table_dim = 0;
    RequireBadMessage(DecodeRaw(raw), "Hello reply with a malformed table");
  }
  SECTION("fewer clocks than workers") {
    raw.workers = 3;
    raw.clocks = {1, 2};
    RequireBadMessage(DecodeRaw(raw),
                      "Hello reply with 2 clocks for 3 workers");
  }
}

}  // namespace
}  // namespace shardps
