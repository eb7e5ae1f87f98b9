// Server limits through a real server process: connections beyond
// --max-clients are refused with a clear error, and served again once
// another client leaves; a client that never reads its replies cannot make
// the server hold more reply memory than --max-reply-bytes.
#include <sys/types.h>
#include <zmq.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/wire.h"
#include "protocol_generated.h"
#include "shardps/client.h"
#include "tests/integration/cluster_fixture.h"

namespace shardps::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Result<std::unique_ptr<Client>> TryConnect(const ClusterInfo& info) {
  ClientOptions options;
  options.connect_timeout = seconds(5);
  options.request_timeout = seconds(5);
  return Client::Connect(info, options);
}

TEST_CASE("a shard refuses clients beyond --max-clients until one leaves",
          "[integration][limits]") {
  TempDir dir;
  auto cluster =
      StartCluster(dir, SpecText("limits", 1024, 1.0, {{"w", {100}, "zeros"}}),
                   1, {"--max-clients", "2"});
  auto a = TryConnect(cluster->info());
  auto b = TryConnect(cluster->info());
  REQUIRE(a.ok());
  REQUIRE(b.ok());

  auto c = TryConnect(cluster->info());
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == Code::kResourceExhausted);
  CHECK_THAT(c.status().ToString(), Catch::Matchers::Contains("--max-clients"));

  // The two admitted clients keep working.
  std::vector<float> w(100);
  REQUIRE((*a)->Pull("w", w.data(), w.size()).Wait().ok());
  REQUIRE((*b)->Pull("w", w.data(), w.size()).Wait().ok());

  // One leaves; a newcomer gets in once the shard has seen the disconnect.
  a->reset();
  Result<std::unique_ptr<Client>> d = Status(Code::kUnavailable, "not yet");
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (!d.ok() && std::chrono::steady_clock::now() < deadline) {
    d = TryConnect(cluster->info());
    if (!d.ok()) std::this_thread::sleep_for(milliseconds(50));
  }
  INFO(d.status().ToString());
  REQUIRE(d.ok());
  REQUIRE((*d)->Pull("w", w.data(), w.size()).Wait().ok());
}

// Under AddressSanitizer freed memory waits in ASan's quarantine (256 MiB by
// default) before reuse, so resident memory grows by up to that much
// without any leak.
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kAllocatorHoldBytes = int64_t{256} << 20;
#else
constexpr int64_t kAllocatorHoldBytes = 0;
#endif

// Anonymous resident memory of `pid` in bytes (RssAnon in /proc/PID/status:
// the heap, not the segment's shared pages), or -1.
int64_t AnonResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssAnon:", 0) == 0)
      return std::stoll(line.substr(8)) * 1024;  // "RssAnon:   1234 kB"
  return -1;
}

std::string PullHeader(const std::string& model, const std::string& tensor,
                       const std::vector<uint32_t>& blocks, uint64_t id) {
  flatbuffers::FlatBufferBuilder b(256);
  auto model_off = b.CreateString(model);
  auto tensor_off = b.CreateString(tensor);
  auto blocks_off = b.CreateVector(blocks);
  wire::RequestBuilder req(b);
  req.add_op(wire::Op::Pull);
  req.add_request_id(id);
  req.add_model(model_off);
  req.add_tensor(tensor_off);
  req.add_blocks(blocks_off);
  b.Finish(req.Finish());
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()),
                     b.GetSize());
}

TEST_CASE("a client that never reads its pull replies cannot grow the server",
          "[integration][limits]") {
  // "big": 64 blocks of 256 KiB (16 MiB, the largest reply, so the
  // per-client bound of 8 MiB is raised to 16 MiB); each flood request
  // names 16 distinct blocks (4 MiB of reply).
  constexpr uint64_t kBlockFloats = 65536;
  constexpr uint32_t kBlocks = 64, kBlocksPerPull = 16;
  constexpr int kFloodPulls = 256;  // 1 GiB of replies if nothing bounded it
  constexpr int64_t kTotalBound = int64_t{48} << 20;
  TempDir dir;
  auto cluster = StartCluster(
      dir,
      SpecText("flood", kBlockFloats, 1.0,
               {{"big", {kBlocks * kBlockFloats}, "constant:1"},
                {"small", {100}, "constant:2"}}),
      1,
      {"--max-reply-bytes-per-client", "8MiB", "--max-reply-bytes", "48MiB"});
  const pid_t pid = cluster->server(0).process->pid();
  auto client = TryConnect(cluster->info());
  REQUIRE(client.ok());
  std::vector<float> big(kBlocks * kBlockFloats);
  // Warm up: the pool's buffers and the allocator reach their working size.
  REQUIRE((*client)->Pull("big", big.data(), big.size()).Wait().ok());
  const int64_t rss_base = AnonResidentBytes(pid);
  REQUIRE(rss_base > 0);
  auto before = (*client)->Stats();
  REQUIRE(before.ok());

  // The flooder: a raw DEALER that sends valid pulls and reads nothing (it
  // takes one reply off the wire, then TCP backs up into the server).
  zmq::context_t context(1);
  zmq::socket_t flooder(context, zmq::socket_type::dealer);
  flooder.set(zmq::sockopt::linger, 0);
  flooder.set(zmq::sockopt::rcvhwm, 1);
  flooder.set(zmq::sockopt::sndhwm, 0);
  flooder.connect(cluster->info().shards[0].endpoint);
  for (int i = 0; i < kFloodPulls; ++i) {
    std::vector<uint32_t> blocks;
    for (uint32_t k = 0; k < kBlocksPerPull; ++k)
      blocks.push_back((i * kBlocksPerPull + k) % kBlocks);
    const std::string header = PullHeader("flood", "big", blocks, 1 + i);
    flooder.send(zmq::buffer(header), zmq::send_flags::none);
  }

  // Until the server has answered every flood request (a pull or a
  // refusal), its memory stays under the bound and the other client is
  // served.
  int64_t rss_peak = rss_base;
  uint64_t handled = 0, own_pulls = 0;
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (handled < kFloodPulls && std::chrono::steady_clock::now() < deadline) {
    std::vector<float> small(100);
    REQUIRE((*client)->Pull("small", small.data(), small.size()).Wait().ok());
    ++own_pulls;
    CHECK(small[99] == 2.0f);
    rss_peak = std::max(rss_peak, AnonResidentBytes(pid));
    auto now = (*client)->Stats();
    REQUIRE(now.ok());
    // Every flood request is a pull or an error (kBusy); this client's own
    // pulls are taken off.
    const uint64_t pulls = (*now)[0].pulls - (*before)[0].pulls;
    handled = (*now)[0].errors - (*before)[0].errors + pulls -
              std::min(pulls, own_pulls);
  }
  CHECK(handled >= kFloodPulls);
  REQUIRE((*client)->Pull("big", big.data(), big.size()).Wait().ok());
  CHECK(big[0] == 1.0f);
  rss_peak = std::max(rss_peak, AnonResidentBytes(pid));
  INFO("server RssAnon " << rss_base << " bytes before the flood, peak "
                         << rss_peak);
  // The documented bound for reply buffers is --max-reply-bytes (48 MiB
  // here) in all; 16 MiB of slack covers everything else. Unbounded, the
  // flood would hold 1 GiB.
  CHECK(rss_peak - rss_base <
        kTotalBound + (int64_t{16} << 20) + kAllocatorHoldBytes);

  // Now the flooder reads: some pulls were served, the rest refused with
  // kBusy naming the flag; nothing was lost.
  HeaderScratch scratch;
  int ok = 0, busy = 0;
  std::string busy_message;
  while (ok + busy < kFloodPulls) {
    zmq_pollitem_t item = {flooder.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 10000) <= 0) break;
    std::vector<zmq::message_t> frames;
    for (bool more = true; more;) {
      zmq::message_t frame;
      REQUIRE(flooder.recv(frame, zmq::recv_flags::none));
      more = frame.more();
      frames.push_back(std::move(frame));
    }
    auto reply = ParseReply(frames[0].data(), frames[0].size(), scratch);
    REQUIRE(reply.ok());
    const Code code = CodeFromWire((*reply)->code());
    if (code == Code::kOk) {
      ++ok;
      CHECK(frames.size() == 1 + kBlocksPerPull);
    } else {
      CHECK(code == Code::kBusy);
      ++busy;
      if ((*reply)->message() != nullptr)
        busy_message = (*reply)->message()->str();
    }
  }
  INFO(ok << " flood pulls served, " << busy << " refused: " << busy_message);
  CHECK(ok + busy == kFloodPulls);
  CHECK(ok > 0);
  CHECK(busy > 0);
  CHECK_THAT(busy_message,
             Catch::Matchers::Contains("--max-reply-bytes-per-client"));
}

}  // namespace
}  // namespace shardps::testing
