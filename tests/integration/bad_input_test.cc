// A live server fed malformed and hostile messages through a raw ZeroMQ
// DEALER: every bad request gets an error reply and is counted, the server
// keeps serving, and the model does not change by a single bit.
#include <sys/types.h>
#include <zmq.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/wire.h"
#include "protocol_generated.h"
#include "shardps/client.h"
#include "tests/integration/harness.h"

namespace shardps::testing {
namespace {

// Under AddressSanitizer the server's freed memory sits in ASan's
// quarantine (256 MiB by default) before it is reused, so its RSS grows by
// up to that much without any leak.
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kAllocatorHoldBytes = int64_t{256} << 20;
#else
constexpr int64_t kAllocatorHoldBytes = 0;
#endif

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kModel[] = "fuzz";
constexpr uint64_t kBlockFloats = 1024;
constexpr size_t kBlockBytes = kBlockFloats * sizeof(float);
// "big" has 5000 floats: blocks 0..3 are full, block 4 holds 904 floats.
// With 2 shards, shard 0 owns blocks 0, 2 and 4; shard 1 owns 1 and 3.
constexpr size_t kLastBlockBytes = (5000 - 4 * kBlockFloats) * sizeof(float);

// The fields of a request header; anything may be set to nonsense.
struct HeaderFields {
  uint8_t op = static_cast<uint8_t>(wire::Op::Push);
  uint64_t request_id = 0;
  std::optional<std::string> model = std::string(kModel);
  std::optional<std::string> tensor = std::string("big");
  std::vector<uint32_t> blocks = {0};
  wire::DType dtype = wire::DType::F32;
  uint32_t credits = 0;  // Subscribe, Credit
};

std::string BuildHeader(const HeaderFields& f) {
  flatbuffers::FlatBufferBuilder b(256);
  flatbuffers::Offset<flatbuffers::String> model, tensor;
  if (f.model) model = b.CreateString(*f.model);
  if (f.tensor) tensor = b.CreateString(*f.tensor);
  auto blocks = b.CreateVector(f.blocks);
  wire::RequestBuilder req(b);
  // A raw byte, so ops the schema does not know can be sent too.
  req.add_op(static_cast<wire::Op>(f.op));
  req.add_request_id(f.request_id);
  req.add_client_id(42);
  if (f.model) req.add_model(model);
  if (f.tensor) req.add_tensor(tensor);
  req.add_blocks(blocks);
  req.add_dtype(f.dtype);
  req.add_credits(f.credits);
  b.Finish(req.Finish());
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()),
                     b.GetSize());
}

// Payload bytes of `floats` NaNs: if a bad request were ever applied, the
// weights would turn NaN and the final bit-for-bit comparison would fail.
std::string Poison(size_t bytes) {
  std::string s(bytes, '\0');
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t i = 0; i + sizeof(float) <= bytes; i += sizeof(float))
    std::memcpy(&s[i], &nan, sizeof(float));
  return s;
}

struct ParsedReply {
  uint64_t request_id = 0;
  Code code = Code::kOk;
  std::string message;
  bool has_hello = false;
  std::string hello_model;
  size_t payload_frames = 0;
};

// A DEALER socket speaking the wire protocol by hand, in lockstep.
class RawPeer {
 public:
  explicit RawPeer(const std::string& endpoint)
      : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  void Send(const std::vector<std::string>& frames) {
    for (size_t i = 0; i < frames.size(); ++i)
      socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size()
                                               ? zmq::send_flags::sndmore
                                               : zmq::send_flags::none);
  }

  // The next reply, or nullopt if none arrives within `timeout` (or it does
  // not parse as a Reply, which the caller reports as a failure too).
  std::optional<ParsedReply> Receive(milliseconds timeout) {
    zmq_pollitem_t item = {socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, static_cast<long>(timeout.count())) <= 0)
      return std::nullopt;
    std::vector<zmq::message_t> frames;
    for (bool more = true; more;) {
      zmq::message_t frame;
      if (!socket_.recv(frame, zmq::recv_flags::none)) return std::nullopt;
      more = frame.more();
      frames.push_back(std::move(frame));
    }
    auto reply = ParseReply(frames[0].data(), frames[0].size(), scratch_);
    if (!reply.ok()) return std::nullopt;
    ParsedReply out;
    out.request_id = (*reply)->request_id();
    out.code = CodeFromWire((*reply)->code());
    if ((*reply)->message() != nullptr)
      out.message = (*reply)->message()->str();
    if (const wire::HelloInfo* hello = (*reply)->hello()) {
      out.has_hello = true;
      if (hello->model() != nullptr) out.hello_model = hello->model()->str();
    }
    out.payload_frames = frames.size() - 1;
    return out;
  }

  std::optional<ParsedReply> RoundTrip(const std::vector<std::string>& frames,
                                       milliseconds timeout = seconds(5)) {
    Send(frames);
    return Receive(timeout);
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  HeaderScratch scratch_;
};

// One hand-made bad request and the error it must earn.
struct BadCase {
  std::string what;
  std::vector<std::string> frames;
  Code expect;
  uint64_t request_id;  // echoed back when the header parsed, else 0
};

std::vector<BadCase> BadCases() {
  std::vector<BadCase> cases;
  uint64_t id = 1000;
  // A push header for `blocks` of `tensor`; fields tweaked by `edit`.
  auto header = [&](auto edit) {
    HeaderFields f;
    f.request_id = ++id;
    edit(f);
    return BuildHeader(f);
  };
  auto add = [&](std::string what, std::vector<std::string> frames, Code code,
                 bool parses = true) {
    cases.push_back(
        {std::move(what), std::move(frames), code, parses ? id : 0});
  };
  const auto none = [](HeaderFields&) {};
  const std::string block = Poison(kBlockBytes);

  std::mt19937 rng(7);
  std::string random_bytes(64, '\0');
  for (char& c : random_bytes) c = static_cast<char>(rng());
  add("random bytes as header", {random_bytes, block}, Code::kBadMessage,
      false);
  const std::string valid = header(none);
  add("truncated valid header", {valid.substr(0, valid.size() / 2), block},
      Code::kBadMessage, false);
  add("single empty frame", {""}, Code::kBadMessage, false);
  add("empty header frame", {"", block}, Code::kBadMessage, false);
  add("empty payload frame", {header(none), ""}, Code::kSizeMismatch);
  // A host replica's Subscribe (a valid one would start a stream to this
  // peer; only refusals are sent here).
  const auto subscribe = [](uint32_t credits) {
    return [credits](HeaderFields& f) {
      f.op = static_cast<uint8_t>(wire::Op::Subscribe);
      f.credits = credits;
    };
  };
  add("subscribe without credits", {header(subscribe(0))},
      Code::kInvalidArgument);
  add("subscribe with held versions of the wrong size",
      {header(subscribe(4)), std::string(7, '\0')}, Code::kInvalidArgument);
  add("subscribe with two payload frames",
      {header(subscribe(4)), std::string(24, '\0'), std::string(24, '\0')},
      Code::kBadMessage);
  add("unknown tensor",
      {header([](HeaderFields& f) { f.tensor = "nope"; }), block},
      Code::kNotFound);
  add("no tensor name",
      {header([](HeaderFields& f) { f.tensor.reset(); }), block},
      Code::kInvalidArgument);
  add("block index out of range",
      {header([](HeaderFields& f) { f.blocks = {5}; }), block},
      Code::kInvalidArgument);
  add("block index 2^32-1",
      {header([](HeaderFields& f) { f.blocks = {0xffffffffu}; }), block},
      Code::kInvalidArgument);
  add("block that lives on the other shard",
      {header([](HeaderFields& f) { f.blocks = {1}; }), block},
      Code::kInvalidArgument);
  add("payload 4 bytes too long", {header(none), Poison(kBlockBytes + 4)},
      Code::kSizeMismatch);
  add("payload 4 bytes too short", {header(none), Poison(kBlockBytes - 4)},
      Code::kSizeMismatch);
  add("payload of 3 blocks", {header(none), Poison(3 * kBlockBytes)},
      Code::kSizeMismatch);
  add("full-size payload for the short last block",
      {header([](HeaderFields& f) { f.blocks = {4}; }), block},
      Code::kSizeMismatch);
  add("second block's payload wrong",
      {header([](HeaderFields& f) {
         f.blocks = {0, 4};
       }),
       block, Poison(kLastBlockBytes + 4)},
      Code::kSizeMismatch);
  add("too many payload frames", {header(none), block, block},
      Code::kBadMessage);
  add("too few payload frames",
      {header([](HeaderFields& f) {
         f.blocks = {0, 2};
       }),
       block},
      Code::kBadMessage);
  add("no payload frame", {header(none)}, Code::kBadMessage);
  add("pull with a payload frame",
      {header([](HeaderFields& f) { f.op = uint8_t(wire::Op::Pull); }), block},
      Code::kBadMessage);
  // Each repeat of a block would cost a block-sized reply buffer (issue
  // 12: 1,024 repeats held 1 GiB); a repeated push block would be applied
  // once or twice depending on exactly-once.
  add("pull naming block 0 1,024 times", {header([](HeaderFields& f) {
        f.op = uint8_t(wire::Op::Pull);
        f.blocks.assign(1024, 0);
      })},
      Code::kInvalidArgument);
  add("push naming block 2 twice",
      {header([](HeaderFields& f) {
         f.blocks = {2, 0, 2};
       }),
       block, block, block},
      Code::kInvalidArgument);
  add("no blocks named", {header([](HeaderFields& f) { f.blocks.clear(); })},
      Code::kInvalidArgument);
  add("wrong model name",
      {header([](HeaderFields& f) { f.model = "other"; }), block},
      Code::kSpecMismatch);
  add("no model name",
      {header([](HeaderFields& f) { f.model.reset(); }), block},
      Code::kSpecMismatch);
  add("unknown op value 200",
      {header([](HeaderFields& f) { f.op = 200; }), block}, Code::kBadMessage,
      false);
  add("op the server does not serve",
      {header([](HeaderFields& f) { f.op = uint8_t(wire::Op::Barrier); })},
      Code::kUnimplemented);
  add("float16 header with a float32-sized payload",
      {header([](HeaderFields& f) { f.dtype = wire::DType::F16; }), block},
      Code::kSizeMismatch);
  return cases;
}

// A random message: random header bytes, or a valid header with a few bytes
// flipped, with zero-filled payload frames of plausible or random sizes.
// Zero gradients keep the model unchanged even when a mutation happens to
// yield a valid push, so the final comparison stays exact.
std::vector<std::string> RandomMessage(std::mt19937& rng, uint64_t id) {
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<std::string> frames;
  if (pick(rng) < 30) {
    std::string junk(static_cast<size_t>(pick(rng) * 2), '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    frames.push_back(std::move(junk));
  } else {
    HeaderFields f;
    f.request_id = id;
    f.op = static_cast<uint8_t>(pick(rng) % 4);  // Hello, Push, Pull, PushPull
    f.tensor = pick(rng) < 80 ? "big" : "tiny";
    f.blocks.clear();
    for (int n = pick(rng) % 4; n >= 0; --n)
      f.blocks.push_back(static_cast<uint32_t>(pick(rng) % 7));
    std::string h = BuildHeader(f);
    for (int flips = pick(rng) % 5; flips > 0; --flips)
      h[static_cast<size_t>(rng() % h.size())] ^=
          static_cast<char>(1 + rng() % 255);
    frames.push_back(std::move(h));
  }
  for (int n = pick(rng) % 4; n > 0; --n) {
    const int size_kind = pick(rng);
    const size_t bytes = size_kind < 40   ? kBlockBytes
                         : size_kind < 60 ? kLastBlockBytes
                                          : static_cast<size_t>(rng() % 9000);
    frames.push_back(std::string(bytes, '\0'));
  }
  return frames;
}

struct Snapshot {
  std::vector<float> big, tiny;
};

Snapshot PullModel(Client& client) {
  Snapshot s;
  s.big.resize(5000);
  s.tiny.resize(3);
  REQUIRE(client.Pull("big", s.big.data(), s.big.size()).Wait().ok());
  REQUIRE(client.Pull("tiny", s.tiny.data(), s.tiny.size()).Wait().ok());
  return s;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// VmRSS of process `pid` in bytes (from /proc/PID/status), or -1.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoll(line.substr(6)) * 1024;  // "VmRSS:   1234 kB"
  return -1;
}

uint64_t ErrorsOfShard0(Client& client) {
  auto stats = client.Stats();
  REQUIRE(stats.ok());
  return (*stats)[0].errors;
}

TEST_CASE("server answers bad messages with errors and keeps its model intact",
          "[integration]") {
  TempDir dir;
  const std::string spec = WriteSpec(
      dir.File("spec.toml"), SpecText(kModel, kBlockFloats, 1.0,
                                      {{"big", {5000}, "uniform:-1,1"},
                                       {"tiny", {3}, "constant:1.25"}}));
  auto cluster = LocalCluster::Start(spec, dir.File("storage"), 2,
                                     dir.File("cluster.toml"));
  INFO(cluster.status().ToString());
  REQUIRE(cluster.ok());
  const std::string endpoint = (*cluster)->info().shards[0].endpoint;
  auto client = Client::Connect((*cluster)->info());
  REQUIRE(client.ok());
  const Snapshot before = PullModel(**client);
  const uint64_t errors_before = ErrorsOfShard0(**client);

  RawPeer peer(endpoint);
  uint64_t error_replies = 0;
  for (const BadCase& c : BadCases()) {
    INFO(c.what);
    const auto reply = peer.RoundTrip(c.frames);
    REQUIRE(reply.has_value());
    CHECK(reply->code == c.expect);
    CHECK_FALSE(reply->message.empty());
    CHECK(reply->request_id == c.request_id);
    CHECK(reply->payload_frames == 0);
    if (reply->code != Code::kOk) ++error_replies;
  }

  // Tens of thousands of random and mutated messages, each answered. They
  // are pipelined (up to kInFlight unanswered) so the run stays short; the
  // replies' order does not matter, only that every message gets one.
  std::mt19937 rng(20240601);
  constexpr int kRandomMessages = 30000;
  constexpr int kWarmUp = 2000;  // RSS is sampled once these are answered
  constexpr int kInFlight = 32;
  const pid_t server_pid = (*cluster)->server(0).process->pid();
  int64_t rss_warm = -1;
  int sent = 0, answered = 0;
  while (answered < kRandomMessages) {
    while (sent < kRandomMessages && sent - answered < kInFlight) {
      peer.Send(RandomMessage(rng, 5000 + static_cast<uint64_t>(sent)));
      ++sent;
    }
    const auto reply = peer.Receive(seconds(5));
    if (!reply) {
      UNSCOPED_INFO("no reply after " << answered << " of " << sent
                                      << " random messages");
      break;
    }
    ++answered;
    if (reply->code != Code::kOk) ++error_replies;
    if (answered == kWarmUp) rss_warm = ResidentBytes(server_pid);
  }
  CHECK(answered == kRandomMessages);

  // Bounded memory: what the server keeps after the warm-up (pools, caches
  // filled to their working size) must not keep growing with the message
  // count. 64 MiB is generous, yet a leak of 3 KiB per message (less than
  // one payload frame) would exceed it.
  const int64_t rss_end = ResidentBytes(server_pid);
  INFO("server VmRSS after warm-up " << rss_warm << " bytes, at the end "
                                     << rss_end);
  REQUIRE(rss_warm > 0);
  REQUIRE(rss_end > 0);
  CHECK(rss_end - rss_warm < (int64_t{64} << 20) + kAllocatorHoldBytes);

  // A frame beyond the server's size limit: ZeroMQ may drop the connection
  // instead of answering; either way the server must carry on.
  {
    RawPeer oversized(endpoint);
    HeaderFields f;
    f.request_id = 99;
    oversized.Send({BuildHeader(f), Poison(64 * kBlockBytes)});
    const auto reply = oversized.Receive(milliseconds(300));
    if (reply) {
      CHECK(reply->code != Code::kOk);
      ++error_replies;
    }
  }

  // Still serving: Hello over a raw socket, Pull through the client.
  RawPeer fresh(endpoint);
  HeaderFields hello;
  hello.op = static_cast<uint8_t>(wire::Op::Hello);
  hello.request_id = 7;
  const auto hello_reply = fresh.RoundTrip({BuildHeader(hello)});
  REQUIRE(hello_reply.has_value());
  CHECK(hello_reply->code == Code::kOk);
  CHECK(hello_reply->has_hello);
  CHECK(hello_reply->hello_model == kModel);
  CHECK((*cluster)->server(0).process->Running());

  const Snapshot after = PullModel(**client);
  CHECK(SameBits(before.big, after.big));
  CHECK(SameBits(before.tiny, after.tiny));
  const uint64_t errors_after = ErrorsOfShard0(**client);
  INFO(error_replies << " error replies; server counted "
                     << errors_after - errors_before);
  CHECK(errors_after - errors_before == error_replies);
  CHECK(error_replies > BadCases().size());
}

}  // namespace
}  // namespace shardps::testing
