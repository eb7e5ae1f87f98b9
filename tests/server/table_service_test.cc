// TableService: rows created on first touch with the table's init, pulled in
// the order of the ids, stepped once per push with duplicates summed; 16-bit
// gradients; exactly-once row pushes; and every bad request refused with
// nothing created or changed.
#include "server/table_service.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/dedupe_window.h"
#include "common/segment.h"
#include "common/table_index.h"
#include "server/row_journal.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

constexpr uint64_t kDim = 4;
constexpr float kLr = 0.5f;

// Shard 0 of `shards` of a model with one SGD table "emb".
class Tables {
 public:
  Tables(uint32_t shards, uint64_t capacity, const std::string& init)
      : dir_("/dev/shm") {
    spec_ = test::MakeSpec("rows", dir_.path(), {{"w", {16}}}, kLr);
    TableSpec t;
    t.name = "emb";
    t.dim = kDim;
    t.capacity = capacity;
    t.init = *InitSpec::Parse(init);
    t.seed = 9;
    spec_.tables.push_back(t);
    REQUIRE(ValidateModelSpec(spec_).ok());
    segment_ = test::OpenServing(spec_, 0, shards, dir_.File("s.seg"));
    service_ = std::make_unique<TableService>(*segment_, spec_);
  }

  const TableSpec& table() const { return spec_.tables[0]; }
  Segment& segment() { return *segment_; }

  // A request header naming `table` (none when empty), valid until the next
  // call.
  const wire::Request& Header(wire::Op op, const std::string& table,
                              wire::DType dtype = wire::DType::F32) {
    fbb_.Clear();
    auto model = fbb_.CreateString("rows");
    flatbuffers::Offset<flatbuffers::String> name;
    if (!table.empty()) name = fbb_.CreateString(table);
    fbb_.Finish(wire::CreateRequest(fbb_, op, 1, 2, model, name, 0, dtype));
    return *flatbuffers::GetRoot<wire::Request>(fbb_.GetBufferPointer());
  }

  // [identity, header, payload...] as the frontend passes them.
  static std::vector<zmq::message_t> Frames(
      const std::vector<std::vector<char>>& payload) {
    std::vector<zmq::message_t> frames;
    frames.emplace_back("peer", 4);
    frames.emplace_back("hdr", 3);  // parsed already: the service reads req
    for (const std::vector<char>& p : payload)
      frames.emplace_back(p.data(), p.size());
    return frames;
  }

  Status PushBytes(const std::string& table, const std::vector<char>& ids,
                   const std::vector<char>& grads,
                   wire::DType dtype = wire::DType::F32,
                   const TableService::Once* once = nullptr,
                   bool* duplicate = nullptr) {
    return service_->PushRows(Header(wire::Op::PushRows, table, dtype),
                              Frames({ids, grads}), once, duplicate);
  }

  Status Push(const std::vector<uint64_t>& ids, const std::vector<float>& grads,
              const TableService::Once* once = nullptr,
              bool* duplicate = nullptr) {
    return PushBytes("emb", Bytes(ids), Bytes(grads), wire::DType::F32, once,
                     duplicate);
  }

  Status PullBytes(const std::string& table,
                   const std::vector<std::vector<char>>& payload,
                   std::vector<float>* rows,
                   const TableService::ReplyAllocator& allocate = Any) {
    zmq::message_t out;
    Status s = service_->PullRows(Header(wire::Op::PullRows, table),
                                  Frames(payload), allocate, &out);
    if (s.ok()) {
      REQUIRE(out.size() % sizeof(float) == 0);
      rows->resize(out.size() / sizeof(float));
      std::memcpy(rows->data(), out.data(), out.size());
    }
    return s;
  }

  std::vector<float> Pull(const std::vector<uint64_t>& ids) {
    std::vector<float> rows;
    Status s = PullBytes("emb", {Bytes(ids)}, &rows);
    INFO(s.ToString());
    REQUIRE(s.ok());
    REQUIRE(rows.size() == ids.size() * kDim);
    return rows;
  }

  uint64_t rows() const { return segment_->table_counters(0).rows.load(); }
  // Optimizer steps row `id` has had; -1 when it does not exist.
  int64_t Steps(uint64_t id) const {
    TableIndex index(segment_->table(0), segment_->row_index(0),
                     segment_->table_counters(0));
    auto slot = index.Find(id);
    REQUIRE(slot.ok());
    return *slot == nullptr ? int64_t{-1} : int64_t{(*slot)->updates};
  }

  template <typename T>
  static std::vector<char> Bytes(const std::vector<T>& v) {
    std::vector<char> out(v.size() * sizeof(T));
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }

  static Status Any(size_t bytes, zmq::message_t* out) {
    *out = zmq::message_t(bytes);
    return Status::Ok();
  }

 private:
  test::TempDir dir_;
  ModelSpec spec_;
  std::unique_ptr<Segment> segment_;
  std::unique_ptr<TableService> service_;
  flatbuffers::FlatBufferBuilder fbb_;
};

void RequireError(const Status& s, Code code, const std::string& fragment) {
  INFO(s.ToString());
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == code);
  CHECK_THAT(s.message(), Contains(fragment));
}

std::vector<float> Row(const std::vector<float>& rows, size_t i) {
  return std::vector<float>(rows.begin() + i * kDim,
                            rows.begin() + (i + 1) * kDim);
}

std::vector<float> Init(const TableSpec& table, uint64_t id) {
  std::vector<float> row(kDim);
  FillInitialRow(table, id, row.data());
  return row;
}

TEST_CASE(
    "TableService creates missing rows with the init and pulls them "
    "in id order",
    "[table_service]") {
  Tables t(1, 64, "uniform:-1,1");
  REQUIRE(t.rows() == 0);
  const std::vector<float> pulled = t.Pull({7, 3, 7});
  // One row per distinct new id, each its init, wherever it is asked for.
  CHECK(t.rows() == 2);
  CHECK(Row(pulled, 0) == Init(t.table(), 7));
  CHECK(Row(pulled, 1) == Init(t.table(), 3));
  CHECK(Row(pulled, 2) == Init(t.table(), 7));
  CHECK(Init(t.table(), 7) != Init(t.table(), 3));
  CHECK(t.Steps(7) == 0);
  // A pull changes nothing.
  CHECK(t.Pull({3, 7}) == [&] {
    std::vector<float> v = Init(t.table(), 3);
    const std::vector<float> r7 = Init(t.table(), 7);
    v.insert(v.end(), r7.begin(), r7.end());
    return v;
  }());
  CHECK(t.rows() == 2);
}

TEST_CASE("TableService steps each pushed row once, summing duplicate ids",
          "[table_service]") {
  Tables t(1, 64, "constant:0.5");
  // Row 1 twice (0.25 and 0.5 in every column), row 2 once, both new.
  REQUIRE(t.Push({1, 2, 1}, {0.25f, 0.25f, 0.25f, 0.25f,      //
                             0.125f, 0.125f, 0.125f, 0.125f,  //
                             0.5f, 0.5f, 0.5f, 0.5f})
              .ok());
  CHECK(t.rows() == 2);
  CHECK(t.Steps(1) == 1);
  CHECK(t.Steps(2) == 1);
  const std::vector<float> rows = t.Pull({1, 2});
  CHECK(Row(rows, 0) == std::vector<float>(kDim, 0.5f - kLr * 0.75f));
  CHECK(Row(rows, 1) == std::vector<float>(kDim, 0.5f - kLr * 0.125f));
  // The next push steps again from there; columns are independent.
  REQUIRE(t.Push({2}, {1, 0, -1, 0.5f}).ok());
  CHECK(t.Steps(2) == 2);
  const float r2 = 0.5f - kLr * 0.125f;
  CHECK(t.Pull({2}) ==
        std::vector<float>{r2 - kLr, r2, r2 + kLr, r2 - kLr * 0.5f});
  CHECK(t.Steps(1) == 1);
}

TEST_CASE("TableService widens 16-bit row gradients", "[table_service]") {
  Tables t(1, 64, "constant:1");
  REQUIRE(t.PushBytes("emb", Tables::Bytes(std::vector<uint64_t>{5}),
                      Tables::Bytes(std::vector<uint16_t>(kDim, 0x3c00)),
                      wire::DType::F16)
              .ok());  // 1.0
  CHECK(t.Pull({5}) == std::vector<float>(kDim, 1 - kLr));
  REQUIRE(t.PushBytes("emb", Tables::Bytes(std::vector<uint64_t>{5}),
                      Tables::Bytes(std::vector<uint16_t>(kDim, 0x3e80)),
                      wire::DType::BF16)
              .ok());  // 0.25
  CHECK(t.Pull({5}) == std::vector<float>(kDim, 1 - kLr * 1.25f));
  // A 16-bit push carries 2 bytes per element, not 4.
  RequireError(
      t.PushBytes("emb", Tables::Bytes(std::vector<uint64_t>{5}),
                  Tables::Bytes(std::vector<float>(kDim, 1)), wire::DType::F16),
      Code::kSizeMismatch, "need 8 gradient bytes, got 16");
}

TEST_CASE("TableService refuses malformed row requests and changes nothing",
          "[table_service]") {
  Tables t(1, 64, "constant:0.5");
  REQUIRE(t.Push({1}, std::vector<float>(kDim, 0.5f)).ok());
  const std::vector<float> before = t.Pull({1});
  const std::vector<char> id2 = Tables::Bytes(std::vector<uint64_t>{2});
  const std::vector<char> one_row = Tables::Bytes(std::vector<float>(kDim, 1));
  std::vector<float> rows;

  RequireError(t.PushBytes("nope", id2, one_row), Code::kNotFound,
               "unknown table 'nope'");
  RequireError(t.PullBytes("nope", {id2}, &rows), Code::kNotFound,
               "unknown table 'nope'");
  RequireError(t.PushBytes("", id2, one_row), Code::kInvalidArgument,
               "PushRows names no table");
  RequireError(t.PullBytes("emb", {id2, one_row}, &rows),
               Code::kInvalidArgument,
               "PullRows of 'emb' needs 1 payload frame(s), got 2");
  RequireError(t.PullBytes("emb", {}, &rows), Code::kInvalidArgument,
               "needs 1 payload frame(s), got 0");
  RequireError(t.PushBytes("emb", std::vector<char>(12), one_row),
               Code::kSizeMismatch,
               "ids frame of 12 bytes is not a non-empty list of uint64");
  RequireError(t.PullBytes("emb", {std::vector<char>()}, &rows),
               Code::kSizeMismatch, "ids frame of 0 bytes");
  RequireError(
      t.PushBytes("emb", id2,
                  std::vector<char>(one_row.begin(), one_row.end() - 4)),
      Code::kSizeMismatch, "1 ids of dim 4 need 16 gradient bytes, got 12");
  RequireError(t.PushBytes("emb", id2, one_row, static_cast<wire::DType>(200)),
               Code::kInvalidArgument, "unknown dtype 200");
  const std::vector<char> too_many((kMaxRowsPerRequest + 1) * sizeof(uint64_t));
  RequireError(t.PullBytes("emb", {too_many}, &rows), Code::kInvalidArgument,
               "more than 1048576");

  CHECK(t.rows() == 1);
  CHECK(t.Steps(2) == -1);
  CHECK(t.Steps(1) == 1);
  CHECK(t.Pull({1}) == before);
}

TEST_CASE("TableService refuses another shard's ids, creating no row",
          "[table_service]") {
  Tables t(2, 64, "constant:0.5");
  uint64_t mine = 0, theirs = 0;
  for (uint64_t id = 1; mine == 0 || theirs == 0; ++id)
    (JumpHash(id, 2) == 0 ? mine : theirs) = id;
  std::vector<float> rows;
  const std::vector<char> ids =
      Tables::Bytes(std::vector<uint64_t>{mine, theirs});
  const std::string why = "id " + std::to_string(theirs) +
                          " of table 'emb' belongs to shard 1, not 0";
  RequireError(
      t.PushBytes("emb", ids, Tables::Bytes(std::vector<float>(2 * kDim, 1))),
      Code::kInvalidArgument, why);
  RequireError(t.PullBytes("emb", {ids}, &rows), Code::kInvalidArgument, why);
  // The valid id before it was not created either: all or none.
  CHECK(t.rows() == 0);
  CHECK(t.Steps(mine) == -1);
}

TEST_CASE("TableService refuses a request that does not fit, creating none",
          "[table_service]") {
  Tables t(1, 4, "constant:0.5");
  REQUIRE(t.Push({1, 2, 3}, std::vector<float>(3 * kDim, 0.25f)).ok());
  REQUIRE(t.rows() == 3);
  // Two new rows, one place left: neither is created, the known row is not
  // stepped.
  const Status full = t.Push({1, 4, 5}, std::vector<float>(3 * kDim, 0.25f));
  CHECK(full.code() == Code::kResourceExhausted);
  std::vector<float> rows;
  CHECK(t.PullBytes("emb", {Tables::Bytes(std::vector<uint64_t>{4, 5})}, &rows)
            .code() == Code::kResourceExhausted);
  CHECK(t.rows() == 3);
  CHECK(t.Steps(1) == 1);
  CHECK(t.Steps(4) == -1);
  CHECK(t.segment().table_counters(0).full_refusals.load() == 2);
  // A new id named twice needs one row: it fits.
  REQUIRE(t.Push({4, 4}, std::vector<float>(2 * kDim, 0.25f)).ok());
  CHECK(t.rows() == 4);
  CHECK(t.Steps(4) == 1);
  // Known rows are still served from a full table.
  CHECK(t.Pull({4, 1}).size() == 2 * kDim);
}

TEST_CASE("TableService creates no row when the reply cannot be allocated",
          "[table_service]") {
  Tables t(1, 64, "constant:0.5");
  size_t asked = 0;
  const auto refuse = [&](size_t bytes, zmq::message_t*) {
    asked = bytes;
    return Status(Code::kResourceExhausted, "reply budget spent");
  };
  std::vector<float> rows;
  RequireError(t.PullBytes("emb", {Tables::Bytes(std::vector<uint64_t>{8, 9})},
                           &rows, refuse),
               Code::kResourceExhausted, "reply budget spent");
  CHECK(asked == 2 * kDim * sizeof(float));
  CHECK(t.rows() == 0);
}

TEST_CASE("TableService applies an exactly-once row push once",
          "[table_service]") {
  Tables t(1, 64, "constant:0.5");
  uint64_t restored = 0;
  std::string discarded;
  auto journal = RowJournal::Open(t.segment(), &restored, &discarded);
  INFO(journal.status().ToString());
  REQUIRE(journal.ok());
  TableService::Once once;
  once.client = 41;
  once.seq = 1;
  once.slot = 5;
  once.journal = journal->get();
  const std::vector<float> g(kDim, 0.25f);
  bool duplicate = true;
  REQUIRE(t.Push({3}, g, &once, &duplicate).ok());
  CHECK_FALSE(duplicate);
  CHECK(DedupeSeen(t.segment().client_slot(5).rows, 41, 1));
  const std::vector<float> stepped(kDim, 0.5f - kLr * 0.25f);
  CHECK(t.Pull({3}) == stepped);

  // The retry is answered OK and applied no second time.
  REQUIRE(t.Push({3}, g, &once, &duplicate).ok());
  CHECK(duplicate);
  CHECK(t.Pull({3}) == stepped);
  CHECK(t.Steps(3) == 1);
  // A malformed retry is still refused.
  RequireError(
      t.PushBytes("emb", Tables::Bytes(std::vector<uint64_t>{3}),
                  std::vector<char>(3), wire::DType::F32, &once, &duplicate),
      Code::kSizeMismatch, "gradient bytes");

  // The client's next push applies; a plain push is never a duplicate.
  once.seq = 2;
  REQUIRE(t.Push({3}, g, &once, &duplicate).ok());
  CHECK_FALSE(duplicate);
  REQUIRE(t.Push({3}, g, nullptr, &duplicate).ok());
  CHECK_FALSE(duplicate);
  CHECK(t.Steps(3) == 3);
  CHECK(t.Pull({3}) == std::vector<float>(kDim, 0.5f - 3 * kLr * 0.25f));
}

}  // namespace
}  // namespace shardps
