// Fuzzes the sparse-table path of a shard server: ParseRequest, then
// TableService::PushRows / PullRows with the ids and gradient frames a peer
// sent, against a real segment's table (rows are created, updated and
// eventually fill the table, so later inputs see a full one).
//
// Input: byte 0 = number of frames after the header (0..3); then 2 bytes
// (little-endian) per frame, header first, giving its length; then the
// frames' bytes back to back. A frame longer than what is left is cut short.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/segment.h"
#include "common/wire.h"
#include "fuzz/fuzz_fixture.h"
#include "server/table_service.h"

namespace {

// One table of 4-float rows with room for 64 rows per shard; shard 0 of 2,
// so ids that JumpHash to shard 1 are refused.
constexpr char kSpec[] = R"(
[model]
name = "fz"
block_floats = 1024
[optimizer]
kind = "adagrad"
lr = 0.1
[[tensor]]
name = "w"
shape = [8]
init = "zeros"
[[table]]
name = "emb"
dim = 4
capacity = 128
init = "constant:0.5"
)";

// Created once per process (TransientSegment leaves nothing on /dev/shm).
struct Fixture {
  shardps::ModelSpec spec;
  std::unique_ptr<shardps::Segment> segment;
  std::unique_ptr<shardps::TableService> tables;
};

std::unique_ptr<Fixture> MakeFixture() {
  auto f = std::make_unique<Fixture>();
  f->spec = shardps::fuzz::ParseSpecOrDie(kSpec, "table_rows_fuzzer");
  f->segment =
      shardps::fuzz::TransientSegment(f->spec, 0, 2, "table_rows_fuzzer");
  f->tables = std::make_unique<shardps::TableService>(*f->segment, f->spec);
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<Fixture> fixture = MakeFixture();
  if (size < 1) return 0;
  const size_t payload_frames = data[0] % 4;
  const size_t lengths = 1 + payload_frames;
  if (size < 1 + 2 * lengths) return 0;
  // frames = [identity, header, payload...], as the frontend passes them.
  std::vector<zmq::message_t> frames;
  frames.emplace_back("peer", 4);
  size_t at = 1 + 2 * lengths;
  for (size_t i = 0; i < lengths; ++i) {
    const size_t want = data[1 + 2 * i] | (size_t{data[2 + 2 * i]} << 8);
    const size_t n = std::min(want, size - at);
    frames.emplace_back(data + at, n);
    at += n;
  }
  shardps::HeaderScratch scratch;
  auto req = shardps::ParseRequest(frames[1].data(), frames[1].size(), scratch);
  if (!req.ok()) return 0;
  const shardps::wire::Request& r = **req;
  if (r.op() == shardps::wire::Op::PushRows) {
    (void)fixture->tables->PushRows(r, frames);
  } else if (r.op() == shardps::wire::Op::PullRows) {
    zmq::message_t out;
    // The server charges the reply to a budget first; here any size is
    // allowed, as the fuzzer checks the parser and the row code.
    const auto allocate = [](size_t bytes, zmq::message_t* frame) {
      *frame = zmq::message_t(bytes);
      return shardps::Status::Ok();
    };
    if (fixture->tables->PullRows(r, frames, allocate, &out).ok() &&
        out.size() % (4 * sizeof(float)) != 0)
      __builtin_trap();  // a reply holds whole rows
  }
  return 0;
}
