// IoThread against a real ZeroMQ ROUTER socket played by the test: what it
// sends, how it matches replies, and how parts end without one.
#include "client/io_thread.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/wire.h"
#include "common/zmq_util.h"

namespace shardps::client_internal {
namespace {

using Catch::Matchers::Contains;
using Clock = CallState::Clock;

// A request as the fake shard received it.
struct Received {
  zmq::message_t identity;
  wire::Op op = wire::Op::Hello;
  uint64_t request_id = 0;
  uint64_t client_id = 0;
  uint64_t seq = 0;
  std::string model;
  std::vector<std::string> payload;  // each payload frame's bytes
};

// One shard: a ROUTER bound on a free local TCP port.
class FakeShard {
 public:
  FakeShard() : socket_(context_, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  }

  const std::string& endpoint() const { return endpoint_; }

  // The next request, waiting at most `wait`; nullopt if none came.
  std::optional<Received> Receive(
      std::chrono::milliseconds wait = std::chrono::seconds(10)) {
    const auto until = Clock::now() + wait;
    std::vector<zmq::message_t> frames;
    while (!RecvMultipartNow(socket_, &frames)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      PollItems(&item, 1, static_cast<long>(left.count()));
    }
    REQUIRE(frames.size() >= 2);
    auto req = ParseRequest(frames[1].data(), frames[1].size(), scratch_);
    REQUIRE(req.ok());
    Received r;
    r.identity = std::move(frames[0]);
    r.op = (*req)->op();
    r.request_id = (*req)->request_id();
    r.client_id = (*req)->client_id();
    r.seq = (*req)->seq();
    r.model = (*req)->model() ? (*req)->model()->str() : "";
    for (size_t i = 2; i < frames.size(); ++i)
      r.payload.push_back(frames[i].to_string());
    return r;
  }

  // Answers request `request_id` of the client at `identity`.
  void Reply(const zmq::message_t& identity, uint64_t request_id,
             Code code = Code::kOk, const std::string& message = "") {
    flatbuffers::FlatBufferBuilder b;
    auto text = b.CreateString(message);
    wire::ReplyBuilder reply(b);
    reply.add_request_id(request_id);
    reply.add_code(static_cast<uint8_t>(code));
    reply.add_message(text);
    b.Finish(reply.Finish());
    zmq::message_t id(identity.data(), identity.size());
    socket_.send(id, zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(b.GetBufferPointer(), b.GetSize()),
                 zmq::send_flags::none);
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  std::string endpoint_;
  HeaderScratch scratch_;
};

ClientOptions TestOptions() {
  ClientOptions options;
  options.client_id = 77;
  options.request_timeout = std::chrono::seconds(10);
  options.exactly_once = false;
  options.tune_malloc = false;
  return options;
}

std::unique_ptr<IoThread> StartIo(const std::string& endpoint,
                                  const ClientOptions& options) {
  auto wake = EventFd::Create();
  REQUIRE(wake.ok());
  auto io =
      std::make_unique<IoThread>(std::vector<ShardAddress>{{0, endpoint, ""}},
                                 options, std::move(wake).value());
  io->set_model("m");
  io->Start();
  return io;
}

// A one-part call of `op` to shard 0, due `timeout` from now.
std::shared_ptr<CallState> Call(IoThread& io, Part p,
                                std::chrono::milliseconds timeout) {
  p.deadline = Clock::now() + timeout;
  auto call = std::make_shared<CallState>(1, p.deadline);
  p.call = call;
  std::vector<Part> parts;
  parts.push_back(std::move(p));
  io.Submit(std::move(parts));
  return call;
}

Part HelloPart(std::vector<uint64_t>* replies_seen) {
  Part p;
  p.op = wire::Op::Hello;
  p.on_reply = [replies_seen](const wire::Reply& r) {
    replies_seen->push_back(r.request_id());
    return Status::Ok();
  };
  return p;
}

TEST_CASE("IoThread matches a reply to its part by request id", "[io_thread]") {
  FakeShard shard;
  const ClientOptions options = TestOptions();
  auto io = StartIo(shard.endpoint(), options);
  std::vector<uint64_t> seen;  // written by the I/O thread before Done
  auto call = Call(*io, HelloPart(&seen), std::chrono::seconds(10));
  auto req = shard.Receive();
  REQUIRE(req);
  CHECK(req->op == wire::Op::Hello);
  CHECK(req->client_id == 77);
  CHECK(req->model == "m");
  // A reply to some other request is dropped, not taken for this one.
  shard.Reply(req->identity, req->request_id + 1000);
  shard.Reply(req->identity, req->request_id);
  REQUIRE(call->Wait().ok());
  CHECK(seen == std::vector<uint64_t>{req->request_id});
}

TEST_CASE("IoThread fails a part with the shard's error", "[io_thread]") {
  FakeShard shard;
  auto io = StartIo(shard.endpoint(), TestOptions());
  std::vector<uint64_t> seen;
  auto call = Call(*io, HelloPart(&seen), std::chrono::seconds(10));
  auto req = shard.Receive();
  REQUIRE(req);
  shard.Reply(req->identity, req->request_id, Code::kNotFound, "no such model");
  const Status s = call->Wait();
  CHECK(s.code() == Code::kNotFound);
  CHECK(s.message() == "shard 0: no such model");
  CHECK(seen.empty());  // an error reply never reaches on_reply
}

TEST_CASE("IoThread sends payload frames zero-copy and completes on the ack",
          "[io_thread]") {
  FakeShard shard;
  auto io = StartIo(shard.endpoint(), TestOptions());
  const std::string table = "emb";
  const std::vector<uint64_t> ids = {3, 9};
  const std::vector<float> grads = {1.5f, -2.0f};
  Part p;
  p.op = wire::Op::PushRows;
  p.table = &table;
  p.frames.emplace_back(ids.data(), ids.size() * sizeof(uint64_t));
  p.frames.emplace_back(grads.data(), grads.size() * sizeof(float));
  auto call = Call(*io, std::move(p), std::chrono::seconds(10));
  auto req = shard.Receive();
  REQUIRE(req);
  CHECK(req->op == wire::Op::PushRows);
  CHECK(req->seq == 0);  // exactly_once off: not numbered
  REQUIRE(req->payload.size() == 2);
  CHECK(req->payload[0] ==
        std::string(reinterpret_cast<const char*>(ids.data()),
                    ids.size() * sizeof(uint64_t)));
  CHECK(req->payload[1] ==
        std::string(reinterpret_cast<const char*>(grads.data()),
                    grads.size() * sizeof(float)));
  shard.Reply(req->identity, req->request_id);
  REQUIRE(call->Wait().ok());
  CHECK(call->Done());  // every borrowed frame released
}

TEST_CASE("IoThread times out a part its shard never answers", "[io_thread]") {
  FakeShard shard;
  auto io = StartIo(shard.endpoint(), TestOptions());
  const std::string table = "emb";
  Part p;
  p.op = wire::Op::PushRows;  // not retriable without exactly_once
  p.table = &table;
  auto call = Call(*io, std::move(p), std::chrono::milliseconds(300));
  REQUIRE(shard.Receive());
  const Status s = call->Wait();
  CHECK(s.code() == Code::kTimeout);
  CHECK_THAT(s.message(), Contains("did not answer PushRows of table 'emb'"));
}

TEST_CASE("IoThread fails a part whose shard never connects", "[io_thread]") {
  std::string endpoint;
  {
    FakeShard gone;  // a free port, closed again: nobody listens there
    endpoint = gone.endpoint();
  }
  auto io = StartIo(endpoint, TestOptions());
  std::vector<uint64_t> seen;
  auto call = Call(*io, HelloPart(&seen), std::chrono::milliseconds(200));
  const Status s = call->Wait();
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Contains("could not connect to shard 0 at " +
                                   endpoint + " in time"));
}

TEST_CASE("IoThread sends a retriable part again after attempt_timeout",
          "[io_thread]") {
  FakeShard shard;
  ClientOptions options = TestOptions();
  options.attempt_timeout = std::chrono::milliseconds(100);
  auto io = StartIo(shard.endpoint(), options);
  std::vector<uint64_t> seen;
  auto call = Call(*io, HelloPart(&seen), std::chrono::seconds(10));
  auto first = shard.Receive();
  REQUIRE(first);  // left unanswered
  auto second = shard.Receive();
  REQUIRE(second);
  CHECK(second->request_id == first->request_id);
  shard.Reply(second->identity, second->request_id);
  REQUIRE(call->Wait().ok());
  CHECK(seen.size() == 1);
}

TEST_CASE("IoThread numbers exactly-once pushes and releases the slot on close",
          "[io_thread]") {
  FakeShard shard;
  ClientOptions options = TestOptions();
  options.exactly_once = true;
  auto io = StartIo(shard.endpoint(), options);
  const std::string table = "emb";
  const std::vector<uint64_t> ids = {1};
  std::vector<std::shared_ptr<CallState>> calls;
  for (int i = 0; i < 2; ++i) {
    Part p;
    p.op = wire::Op::PushRows;
    p.table = &table;
    p.frames.emplace_back(ids.data(), sizeof(uint64_t));
    calls.push_back(Call(*io, std::move(p), std::chrono::seconds(10)));
  }
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 2; ++i) {
    auto req = shard.Receive();
    REQUIRE(req);
    seqs.push_back(req->seq);
    shard.Reply(req->identity, req->request_id);
  }
  std::sort(seqs.begin(), seqs.end());
  CHECK(seqs == std::vector<uint64_t>{1, 2});
  for (auto& c : calls) REQUIRE(c->Wait().ok());
  // Every numbered push was answered: closing gives the slot back.
  std::thread closer([&io] { io.reset(); });
  auto release = shard.Receive();
  if (release) shard.Reply(release->identity, release->request_id);
  closer.join();
  REQUIRE(release);
  CHECK(release->op == wire::Op::Release);
  CHECK(release->client_id == 77);
}

TEST_CASE("IoThread fails what is in flight when it is destroyed",
          "[io_thread]") {
  FakeShard shard;
  auto io = StartIo(shard.endpoint(), TestOptions());
  std::vector<uint64_t> seen;
  auto call = Call(*io, HelloPart(&seen), std::chrono::seconds(10));
  REQUIRE(shard.Receive());  // sent, never answered
  io.reset();
  const Status s = call->Wait();
  CHECK(s.code() == Code::kUnavailable);
  CHECK(s.message() == "client closed");
  CHECK(call->Done());
}

}  // namespace
}  // namespace shardps::client_internal
