// Sparse tables against real server processes: malformed row requests are
// refused without touching a row, and rows survive kill -9 and a restart.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "cli/npy.h"
#include "common/wire.h"
#include "shardps/client.h"
#include "tests/integration/client_fixture.h"
#include "tests/integration/cluster_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kDim = 8;

std::string TableSpecText() {
  return SpecText("rows", 1024, 1.0, {{"dense", {100}, "zeros"}}) +
         "\n[[table]]\nname = \"emb\"\ndim = 8\ncapacity = 1000\n"
         "init = \"constant:0.25\"\n";
}

std::string Header(wire::Op op, uint64_t request_id, const std::string& table,
                   wire::DType dtype = wire::DType::F32) {
  flatbuffers::FlatBufferBuilder b(256);
  auto model = b.CreateString("rows");
  auto name = b.CreateString(table);
  wire::RequestBuilder req(b);
  req.add_op(op);
  req.add_request_id(request_id);
  req.add_model(model);
  req.add_tensor(name);
  req.add_dtype(dtype);
  b.Finish(req.Finish());
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()),
                     b.GetSize());
}

std::string Ids(const std::vector<uint64_t>& ids) {
  std::string s(ids.size() * sizeof(uint64_t), '\0');
  std::memcpy(s.data(), ids.data(), s.size());
  return s;
}

// NaN gradients: a refused push that still got applied would show.
std::string Poison(size_t floats) {
  std::string s(floats * sizeof(float), '\0');
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t i = 0; i < floats; ++i)
    std::memcpy(&s[i * sizeof(float)], &nan, sizeof(float));
  return s;
}

// Sends one request on a fresh DEALER and returns the reply's code.
Code RoundTrip(zmq::socket_t& socket, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i)
    socket.send(zmq::buffer(frames[i]), i + 1 < frames.size()
                                            ? zmq::send_flags::sndmore
                                            : zmq::send_flags::none);
  zmq_pollitem_t item = {socket.handle(), 0, ZMQ_POLLIN, 0};
  REQUIRE(zmq_poll(&item, 1, 5000) == 1);
  std::vector<zmq::message_t> reply;
  for (bool more = true; more;) {
    zmq::message_t frame;
    REQUIRE(socket.recv(frame, zmq::recv_flags::none));
    more = frame.more();
    reply.push_back(std::move(frame));
  }
  HeaderScratch scratch;
  auto parsed = ParseReply(reply[0].data(), reply[0].size(), scratch);
  REQUIRE(parsed.ok());
  return CodeFromWire((*parsed)->code());
}

std::vector<float> PullRows(Client& client, const std::vector<uint64_t>& ids) {
  std::vector<float> out(ids.size() * kDim);
  const Status s =
      client.PullRows("emb", ids.data(), ids.size(), out.data()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

// First ids (from `start`) that shard 0 and shard 1 of two own.
std::pair<uint64_t, uint64_t> IdsOnEachShard() {
  uint64_t on0 = 0, on1 = 0;
  while (JumpHash(on0, 2) != 0) ++on0;
  while (JumpHash(on1, 2) != 1) ++on1;
  return {on0, on1};
}

TEST_CASE("malformed row requests are refused and change no row",
          "[integration][table]") {
  TempDir dir;
  auto cluster = StartCluster(dir, TableSpecText(), 2);
  auto client = Connect(cluster->info());
  const auto [on0, on1] = IdsOnEachShard();
  const std::vector<uint64_t> ids = {on0, on1};
  std::vector<float> grads(ids.size() * kDim, 1.0f);
  REQUIRE(client->PushRows("emb", ids.data(), 2, grads.data()).Wait().ok());
  const std::vector<float> before = PullRows(*client, ids);

  zmq::context_t context(1);
  zmq::socket_t peer(context, zmq::socket_type::dealer);
  peer.set(zmq::sockopt::linger, 0);
  peer.connect(cluster->info().shards[0].endpoint);
  const std::string one = Ids({on0});
  struct Case {
    const char* what;
    std::vector<std::string> frames;
    Code expect;
  };
  const Case cases[] = {
      {"unknown table",
       {Header(wire::Op::PushRows, 1, "nope"), one, Poison(kDim)},
       Code::kNotFound},
      {"ids frame not whole uint64s",
       {Header(wire::Op::PushRows, 2, "emb"), one.substr(0, 7), Poison(kDim)},
       Code::kSizeMismatch},
      {"empty ids frame",
       {Header(wire::Op::PushRows, 3, "emb"), "", ""},
       Code::kSizeMismatch},
      {"gradient one float short",
       {Header(wire::Op::PushRows, 4, "emb"), one, Poison(kDim - 1)},
       Code::kSizeMismatch},
      {"gradient frame missing",
       {Header(wire::Op::PushRows, 5, "emb"), one},
       Code::kInvalidArgument},
      {"id owned by the other shard",
       {Header(wire::Op::PushRows, 6, "emb"), Ids({on0, on1}),
        Poison(2 * kDim)},
       Code::kInvalidArgument},
      {"16-bit gradient sized as float32",
       {Header(wire::Op::PushRows, 7, "emb", wire::DType::F16), one,
        Poison(kDim)},
       Code::kSizeMismatch},
      {"pull with a stray frame",
       {Header(wire::Op::PullRows, 8, "emb"), one, Poison(kDim)},
       Code::kInvalidArgument},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    CHECK(RoundTrip(peer, c.frames) == c.expect);
  }
  CHECK(cluster->server(0).process->Running());
  CHECK(PullRows(*client, ids) == before);
}

TEST_CASE("rows survive kill -9 and a restart", "[integration][table]") {
  TempDir dir;
  auto cluster = StartCluster(dir, TableSpecText(), 2);
  ClientOptions options;
  options.request_timeout = seconds(10);
  auto client = Connect(cluster->info(), options);
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < 200; ++i) ids.push_back(i * 104729);
  std::vector<float> grads(ids.size() * kDim);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = float(i % 7);
  REQUIRE(client->PushRows("emb", ids.data(), ids.size(), grads.data())
              .Wait()
              .ok());
  const std::vector<float> before = PullRows(*client, ids);
  for (size_t i = 0; i < grads.size(); ++i)
    REQUIRE(before[i] == 0.25f - grads[i]);

  for (uint32_t shard : {0u, 1u}) KillAndRestart(*cluster, shard);
  // The client reconnects by itself; the first call may still see the
  // outage, so retry briefly.
  std::vector<float> after(ids.size() * kDim);
  Status s;
  for (int attempt = 0; attempt < 50; ++attempt) {
    s = client->PullRows("emb", ids.data(), ids.size(), after.data()).Wait();
    if (s.ok()) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(after == before);
}

TEST_CASE("shardps pull --table writes the rows as an [n, dim] .npy",
          "[integration][table]") {
  TempDir dir;
  auto cluster = StartCluster(dir, TableSpecText(), 2);
  auto client = Connect(cluster->info());
  // Rows on both shards; 5 is pushed, 900 and 1ull << 40 are untouched.
  const std::vector<uint64_t> pushed = {5, 104729};
  std::vector<float> grads(pushed.size() * kDim);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = float(i + 1);
  REQUIRE(client->PushRows("emb", pushed.data(), pushed.size(), grads.data())
              .Wait()
              .ok());
  const std::string cluster_file = cluster->cluster_file();
  const std::string out = dir.File("rows.npy");
  RunResult pull =
      Run({SHARDPS_BINARY, "pull", "--cluster", cluster_file, "--table", "emb",
           "--ids", "104729,900,5", "--out", out});
  INFO(pull.out << pull.err);
  REQUIRE(pull.status.ok());
  auto npy = ReadNpy(out);
  REQUIRE(npy.ok());
  CHECK(npy->shape == std::vector<uint64_t>{3, kDim});
  for (uint64_t j = 0; j < kDim; ++j) {
    CHECK(npy->data[0 * kDim + j] == 0.25f - grads[kDim + j]);  // 104729
    CHECK(npy->data[1 * kDim + j] == 0.25f);             // untouched: the init
    CHECK(npy->data[2 * kDim + j] == 0.25f - grads[j]);  // 5
  }

  // --ids-file: commas, spaces and newlines; printed without --out.
  {
    std::ofstream ids(dir.File("ids.txt"));
    ids << "5\n 1099511627776,\n";
  }
  pull = Run({SHARDPS_BINARY, "pull", "--cluster", cluster_file, "--table",
              "emb", "--ids-file", dir.File("ids.txt")});
  INFO(pull.out << pull.err);
  REQUIRE(pull.status.ok());
  CHECK(pull.out.find("table emb rows 2 dim 8") != std::string::npos);
  CHECK(pull.out.find("row 1099511627776 0.25") != std::string::npos);

  // Bad input: exit 2 with what is wrong.
  const auto refused = [&](std::vector<std::string> extra,
                           const std::string& needle) {
    std::vector<std::string> argv = {SHARDPS_BINARY, "pull", "--cluster",
                                     cluster_file};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const RunResult r = Run(argv);
    INFO(r.err);
    CHECK(r.status.exited);
    CHECK(r.status.code == 2);
    CHECK(r.err.find(needle) != std::string::npos);
  };
  refused({"--table", "nope", "--ids", "1"}, "unknown table 'nope'");
  refused({"--table", "emb"}, "--ids 1,2,3");
  refused({"--table", "emb", "--tensor", "dense", "--ids", "1"},
          "exactly one of --tensor, --table");
  {
    std::ofstream ids(dir.File("bad.txt"));
    ids << "1\n2x\n";
  }
  refused({"--table", "emb", "--ids-file", dir.File("bad.txt")},
          "bad.txt:2: '2x' is not a row id");
}

}  // namespace
}  // namespace shardps::testing
