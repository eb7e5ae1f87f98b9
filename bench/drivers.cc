#include "bench/drivers.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <zmq.hpp>

#include "common/curve_keys.h"
#include "common/zmq_util.h"
#include "shardps/client.h"

namespace shardps::bench {

namespace {

using Clock = std::chrono::steady_clock;

// A short unmeasured run first: connections, page faults and allocator
// warm-up are not what we are measuring.
constexpr double kWarmupFraction = 0.2;

// Raw request header: how many bytes the sink should answer with.
struct RawHeader {
  uint64_t reply_bytes;
  uint64_t zero_copy;
};

void NoFree(void*, void*) {}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Runs `issue`/`complete` with `inflight` outstanding for the warm-up and
// then the measured budget. `complete` returns the payload bytes it moved.
template <typename Issue, typename Complete>
Result<LoadResult> Pump(const LoadSpec& spec, Issue issue, Complete complete) {
  LoadResult out;
  std::deque<Clock::time_point> started;
  for (int phase = 0; phase < 2; ++phase) {
    const double budget =
        phase == 0 ? spec.seconds * kWarmupFraction : spec.seconds;
    const auto begin = Clock::now();
    const auto end = begin + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(budget));
    uint64_t bytes = 0, requests = 0;
    for (int i = 0; i < spec.inflight; ++i) {
      SHARDPS_RETURN_IF_ERROR(issue());
      started.push_back(Clock::now());
    }
    while (!started.empty()) {
      auto moved = complete();
      if (!moved.ok()) return moved.status();
      if (phase == 1 && spec.inflight == 1)
        out.latencies_us.push_back(Seconds(Clock::now() - started.front()) *
                                   1e6);
      started.pop_front();
      bytes += *moved;
      ++requests;
      if (Clock::now() < end) {
        SHARDPS_RETURN_IF_ERROR(issue());
        started.push_back(Clock::now());
      }
    }
    if (phase == 1) {
      out.bytes = bytes;
      out.requests = requests;
      out.seconds = Seconds(Clock::now() - begin);
    }
  }
  return out;
}

}  // namespace

int RunRawSink(const std::string& listen) {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::router);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.set(zmq::sockopt::rcvhwm, 0);
  socket.bind(listen);
  std::printf("listening on %s\n",
              socket.get(zmq::sockopt::last_endpoint).c_str());
  std::fflush(stdout);
  std::vector<char> reply_data;
  std::vector<zmq::message_t> frames;
  for (;;) {
    zmq_pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    PollItems(&item, 1, -1);
    while (RecvMultipartNow(socket, &frames)) {
      if (frames.size() < 2 || frames[1].size() != sizeof(RawHeader)) continue;
      RawHeader h;
      std::memcpy(&h, frames[1].data(), sizeof(h));
      if (reply_data.size() < h.reply_bytes) reply_data.resize(h.reply_bytes);
      socket.send(frames[0], zmq::send_flags::sndmore);
      if (h.zero_copy) {
        socket.send(
            zmq::message_t(reply_data.data(), h.reply_bytes, NoFree, nullptr),
            zmq::send_flags::none);
      } else {
        socket.send(zmq::buffer(reply_data.data(), h.reply_bytes),
                    zmq::send_flags::none);
      }
    }
  }
}

Result<LoadResult> RawLoad(const std::string& endpoint, const LoadSpec& spec) {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.set(zmq::sockopt::rcvhwm, 0);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(endpoint);
  const bool push = spec.direction != Direction::kPull;
  const bool pull = spec.direction != Direction::kPush;
  std::vector<char> payload(spec.bytes, 1);
  const RawHeader header{pull ? spec.bytes : 8, spec.zero_copy ? 1u : 0u};
  auto issue = [&]() -> Status {
    socket.send(zmq::buffer(&header, sizeof(header)),
                push ? zmq::send_flags::sndmore : zmq::send_flags::none);
    if (push) {
      if (spec.zero_copy) {
        socket.send(
            zmq::message_t(payload.data(), payload.size(), NoFree, nullptr),
            zmq::send_flags::none);
      } else {
        socket.send(zmq::buffer(payload.data(), payload.size()),
                    zmq::send_flags::none);
      }
    }
    return Status::Ok();
  };
  zmq::message_t reply;
  auto complete = [&]() -> Result<uint64_t> {
    zmq_pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (PollItems(&item, 1, 30000) == 0)
      return Status(Code::kTimeout, "raw sink did not answer");
    if (!socket.recv(reply, zmq::recv_flags::none))
      return Status(Code::kInternal, "recv");
    // The pull ceiling includes delivering the bytes where a trainer wants
    // them, as shardps does: one copy out of the message.
    if (pull && reply.size() == payload.size())
      std::memcpy(payload.data(), reply.data(), reply.size());
    return uint64_t{push ? spec.bytes : 0} + (pull ? spec.bytes : 0);
  };
  return Pump(spec, issue, complete);
}

Result<LoadResult> ShardpsLoad(const std::string& cluster_file,
                               const std::string& tensor, const LoadSpec& spec,
                               const std::string& curve_key) {
  ClientOptions options;
  options.request_timeout = std::chrono::seconds(60);
  options.exactly_once = spec.exactly_once;
  if (!curve_key.empty()) {
    auto pair = LoadCurveKeyPair(curve_key);
    if (!pair.ok()) return pair.status();
    options.curve_public_key = pair->public_key;
    options.curve_secret_key = pair->secret_key;
  }
  // The buffers are declared before the client, so they outlive it: on an
  // error return the client's destructor fails and joins the calls still in
  // flight before the memory they write into is freed.
  const size_t floats = spec.bytes / sizeof(float);
  // Small gradients keep the weights finite however long the run.
  std::vector<float> grad(floats, 1e-9f);
  std::vector<std::vector<float>> out(spec.inflight,
                                      std::vector<float>(floats));
  auto client = Client::Connect(cluster_file, options);
  if (!client.ok()) return client.status();
  std::deque<Handle> handles;
  size_t next_out = 0;
  auto issue = [&]() -> Status {
    float* dst = out[next_out++ % out.size()].data();
    switch (spec.direction) {
      case Direction::kPush:
        handles.push_back((*client)->Push(tensor, grad.data(), floats));
        break;
      case Direction::kPull:
        handles.push_back((*client)->Pull(tensor, dst, floats));
        break;
      case Direction::kPushPull:
        handles.push_back(
            (*client)->PushPull(tensor, grad.data(), dst, floats));
        break;
    }
    return Status::Ok();
  };
  auto complete = [&]() -> Result<uint64_t> {
    Status s = handles.front().Wait();
    handles.pop_front();
    if (!s.ok()) return s;
    const uint64_t ways = spec.direction == Direction::kPushPull ? 2 : 1;
    return ways * spec.bytes;
  };
  return Pump(spec, issue, complete);
}

Result<LoadResult> SparseLoad(const std::string& cluster_file,
                              const std::string& table, uint64_t dim,
                              uint64_t ids_per_request, uint64_t id_pool,
                              const LoadSpec& spec) {
  ClientOptions options;
  options.request_timeout = std::chrono::seconds(60);
  // A ring of pre-drawn id lists, so drawing ids is not what we measure.
  // Multiplying by an odd constant spreads the pool over all 64 bits.
  constexpr size_t kLists = 64;
  std::vector<std::vector<uint64_t>> ids(kLists);
  uint64_t state = 0x243f6a8885a308d3ULL;
  for (auto& list : ids) {
    list.resize(ids_per_request);
    for (uint64_t& id : list) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      id = ((state >> 17) % id_pool) * 0x9e3779b97f4a7c15ULL;
    }
  }
  const bool push = spec.direction == Direction::kPush;
  std::vector<float> grads(ids_per_request * dim, 1e-6f);
  std::vector<std::vector<float>> out(
      spec.inflight, std::vector<float>(push ? 0 : ids_per_request * dim));
  // After the buffers, so that it is destroyed (its calls failed and
  // joined) before them: see ShardpsLoad.
  auto client = Client::Connect(cluster_file, options);
  if (!client.ok()) return client.status();
  std::deque<Handle> handles;
  size_t next = 0;
  auto issue = [&]() -> Status {
    const std::vector<uint64_t>& list = ids[next % kLists];
    float* dst = out[next % out.size()].data();
    ++next;
    handles.push_back(
        push
            ? (*client)->PushRows(table, list.data(), list.size(), grads.data())
            : (*client)->PullRows(table, list.data(), list.size(), dst));
    return Status::Ok();
  };
  const uint64_t moved = ids_per_request * (8 + dim * sizeof(float));
  auto complete = [&]() -> Result<uint64_t> {
    Status s = handles.front().Wait();
    handles.pop_front();
    if (!s.ok()) return s;
    return moved;
  };
  return Pump(spec, issue, complete);
}

double Percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t i = std::min(
      samples.size() - 1, static_cast<size_t>(p * (samples.size() - 1) + 0.5));
  return samples[i];
}

}  // namespace shardps::bench
