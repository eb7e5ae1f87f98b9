// Writes the binary seeds of fuzz/corpus with the library itself, so they
// are real: request headers as a client builds them, a segment and a queue
// as a server creates them, and a MANIFEST as a checkpoint writes it.
//
//   build-fuzz/fuzz/fuzz_seed_writer fuzz/corpus
//
// Scratch files go to a fresh /tmp directory, removed before exiting.
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/checkpoint.h"
#include "common/segment.h"
#include "fuzz/fuzz_fixture.h"
#include "protocol_generated.h"
#include "shardps/batch_queue.h"
#include "shardps/model_spec.h"

namespace fs = std::filesystem;
namespace wire = shardps::wire;

namespace {

// A small model with every kind of region: adam state, bsp accumulators
// and a sparse table (index, rows, state).
constexpr char kTableSpec[] = R"(
[model]
name = "tb"
block_floats = 1024
[optimizer]
kind = "adam"
lr = 0.01
[consistency]
mode = "bsp"
workers = 2
[[tensor]]
name = "w"
shape = [10]
init = "zeros"
[[table]]
name = "emb"
dim = 2
capacity = 4
init = "constant:0.5"
)";

void Write(const fs::path& path, const void* data, size_t size) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

std::vector<char> Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

// The request fuzzer's input: frame count, 2-byte frame sizes, header.
void WriteRequest(const fs::path& path, wire::Op op,
                  const std::vector<uint32_t>& blocks,
                  const std::vector<uint16_t>& sizes,
                  wire::DType dtype = wire::DType::F32) {
  flatbuffers::FlatBufferBuilder fbb;
  auto model = fbb.CreateString("fz");
  auto tensor = fbb.CreateString("w");
  auto list = fbb.CreateVector(blocks);
  fbb.Finish(wire::CreateRequest(fbb, op, 1, 2, model, tensor, list, dtype));
  std::vector<uint8_t> in{static_cast<uint8_t>(sizes.size())};
  for (uint16_t s : sizes) {
    in.push_back(static_cast<uint8_t>(s & 0xff));
    in.push_back(static_cast<uint8_t>(s >> 8));
  }
  in.insert(in.end(), fbb.GetBufferPointer(),
            fbb.GetBufferPointer() + fbb.GetSize());
  Write(path, in.data(), in.size());
}

// The table fuzzer's input: frame count, 2-byte lengths (header first),
// then the frames. `ids` are rows of its "emb" table (dim 4).
void WriteRows(const fs::path& path, wire::Op op,
               const std::vector<uint64_t>& ids, wire::DType dtype,
               size_t grad_bytes_per_row) {
  flatbuffers::FlatBufferBuilder fbb;
  auto model = fbb.CreateString("fz");
  auto table = fbb.CreateString("emb");
  fbb.Finish(wire::CreateRequest(fbb, op, 1, 2, model, table, 0, dtype));
  std::vector<std::vector<uint8_t>> frames;
  frames.emplace_back(fbb.GetBufferPointer(),
                      fbb.GetBufferPointer() + fbb.GetSize());
  frames.emplace_back(ids.size() * sizeof(uint64_t));
  std::memcpy(frames.back().data(), ids.data(), frames.back().size());
  if (op == wire::Op::PushRows)
    frames.emplace_back(ids.size() * grad_bytes_per_row, uint8_t{0x3c});
  std::vector<uint8_t> in{static_cast<uint8_t>(frames.size() - 1)};
  for (const auto& f : frames) {
    in.push_back(static_cast<uint8_t>(f.size() & 0xff));
    in.push_back(static_cast<uint8_t>(f.size() >> 8));
  }
  for (const auto& f : frames) in.insert(in.end(), f.begin(), f.end());
  Write(path, in.data(), in.size());
}

void WriteReply(const fs::path& path) {
  flatbuffers::FlatBufferBuilder fbb;
  auto message = fbb.CreateString("block 9 of 'w' is out of range");
  auto blocks = fbb.CreateVector(std::vector<uint32_t>{0, 2});
  fbb.Finish(wire::CreateReply(fbb, 1, 3, message, 0, 0, blocks));
  std::vector<uint8_t> in{0};
  in.insert(in.end(), fbb.GetBufferPointer(),
            fbb.GetBufferPointer() + fbb.GetSize());
  Write(path, in.data(), in.size());
}

int Fail(const shardps::Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  const fs::path req = out / "request_fuzzer";
  WriteRequest(req / "push_f32", wire::Op::Push, {0, 2, 4},
               {4096, 4096, 904 * 4});
  WriteRequest(req / "pushpull_f16", wire::Op::PushPull, {2}, {2048},
               wire::DType::F16);
  WriteRequest(req / "pull", wire::Op::Pull, {0, 4}, {});
  WriteRequest(req / "push_elsewhere", wire::Op::Push, {1}, {4096});
  WriteReply(req / "reply");

  std::vector<uint64_t> ids;  // rows that live on shard 0 of 2, one twice
  for (uint64_t id = 1; ids.size() < 3; ++id)
    if (shardps::JumpHash(id, 2) == 0) ids.push_back(id);
  ids.push_back(ids[0]);
  const fs::path rows = out / "table_rows_fuzzer";
  WriteRows(rows / "push_f32", wire::Op::PushRows, ids, wire::DType::F32, 16);
  WriteRows(rows / "push_bf16", wire::Op::PushRows, ids, wire::DType::BF16, 8);
  WriteRows(rows / "pull", wire::Op::PullRows, ids, wire::DType::F32, 0);

  char tmp[] = "/tmp/shardps-seeds-XXXXXX";
  if (::mkdtemp(tmp) == nullptr) return 1;
  const fs::path scratch = tmp;
  int rc = 0;
  {
    auto spec = shardps::ParseModelSpec(shardps::fuzz::kRequestSpec);
    if (!spec.ok()) return Fail(spec.status());
    const std::string seg_path = (scratch / "s.seg").string();
    shardps::SegmentOpenReport report;
    auto seg = shardps::Segment::OpenForServing(*spec, 0, 1, seg_path, &report);
    if (!seg.ok()) return Fail(seg.status());
    (*seg)->MarkCleanShutdown();
    seg->reset();
    const std::vector<char> image = Read(seg_path);
    Write(out / "segment_fuzzer" / "fz_shard0of1", image.data(), image.size());
    auto ckpt = shardps::WriteCheckpoint({seg_path}, (scratch / "ck").string());
    if (!ckpt.ok()) return Fail(ckpt.status());
    const std::vector<char> manifest = Read(scratch / "ck" / "MANIFEST");
    Write(out / "manifest_fuzzer" / "one_shard", manifest.data(),
          manifest.size());

    auto table_spec = shardps::ParseModelSpec(kTableSpec);
    if (!table_spec.ok()) return Fail(table_spec.status());
    const std::string tb_path = (scratch / "tb.seg").string();
    auto tb =
        shardps::Segment::OpenForServing(*table_spec, 0, 1, tb_path, &report);
    if (!tb.ok()) return Fail(tb.status());
    tb->reset();
    const std::vector<char> tb_image = Read(tb_path);
    Write(out / "segment_fuzzer" / "adam_bsp_table", tb_image.data(),
          tb_image.size());

    const std::string q_path = (scratch / "q").string();
    auto q = shardps::BatchQueue::Create(q_path, 2, 256);
    if (!q.ok()) return Fail(q.status());
    const float features[6] = {1, 2, 3, 4, 5, 6}, labels[2] = {7, 8};
    shardps::Status pushed =
        (*q)->Push(shardps::BatchShape{2, 3, 1, 1}, features, labels,
                   std::chrono::seconds(1), 1, 1);
    if (!pushed.ok()) rc = Fail(pushed);
    q->reset();
    const std::vector<char> queue = Read(q_path);
    Write(out / "queue_fuzzer" / "two_slots_one_batch", queue.data(),
          queue.size());
  }
  fs::remove_all(scratch);
  return rc;
}
