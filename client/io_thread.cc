#include "client/io_thread.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "common/segment_format.h"
#include "common/zmq_util.h"

namespace shardps::client_internal {

namespace {

using Clock = CallState::Clock;

// How long a closing client waits for its shards to confirm its slots are
// given back (at most its request_timeout).
constexpr std::chrono::seconds kReleaseWait{1};

uint64_t RandomClientId() {
  std::random_device rd;
  const uint64_t id = (uint64_t{rd()} << 32) ^ rd();
  return id == 0 ? 1 : id;
}

// Ops a shard may see twice without harm: reads, clocks (a repeated Clock
// is recognised), and pushes that carry an exactly-once number.
bool IsRetriable(wire::Op op, bool exactly_once) {
  switch (op) {
    case wire::Op::Hello:
    case wire::Op::Stats:
    case wire::Op::Pull:
    case wire::Op::PullRows:
    case wire::Op::Clock:
      return true;
    case wire::Op::Push:
    case wire::Op::PushPull:
    case wire::Op::PushRows:
    case wire::Op::QueuePush:
      return exactly_once;
    default:
      return false;
  }
}

// Pushes the shard applies once by their number: dense, row and queue.
bool IsNumbered(wire::Op op, bool exactly_once) {
  return exactly_once &&
         (op == wire::Op::Push || op == wire::Op::PushPull ||
          op == wire::Op::PushRows || op == wire::Op::QueuePush);
}

std::string Describe(const Part& part) {
  std::string s = OpName(part.op);
  if (part.tensor != nullptr) s += " of '" + part.tensor->name + "'";
  if (part.table != nullptr) s += " of table '" + *part.table + "'";
  if (!part.queue.empty()) s += " to queue '" + part.queue + "'";
  return s;
}

}  // namespace

IoThread::IoThread(std::vector<ShardAddress> shards, ClientOptions options,
                   EventFd wake)
    : options_(options),
      addresses_(std::move(shards)),
      client_id_(options.client_id != 0 ? options.client_id : RandomClientId()),
      wake_(std::move(wake)) {
  links_.resize(addresses_.size());
  for (size_t i = 0; i < addresses_.size(); ++i) {
    links_[i].index = addresses_[i].index;
    links_[i].endpoint = addresses_[i].endpoint;
  }
}

IoThread::~IoThread() {
  if (thread_.joinable()) {
    stopping_.store(true, std::memory_order_release);  // see stopping_
    wake_.Signal();
    thread_.join();
  }
}

void IoThread::Start() {
  for (Link& link : links_) OpenLink(link);
  thread_ = std::thread([this] { Loop(); });
}

void IoThread::Submit(std::vector<Part> parts) {
  for (Part& p : parts)
    // Relaxed: unique is all an id must be (see next_request_id_).
    p.request_id = next_request_id_.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(mu_);
    for (Part& p : parts) submitted_.push_back(std::move(p));
  }
  wake_.Signal();
}

void IoThread::OpenLink(Link& link) {
  ++link.generation;
  link.connected = false;
  link.socket =
      std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  link.socket->set(zmq::sockopt::immediate, 1);
  link.socket->set(zmq::sockopt::linger, 0);
  link.socket->set(zmq::sockopt::sndhwm, 0);
  link.socket->set(zmq::sockopt::rcvhwm, 0);
  link.socket->set(zmq::sockopt::reconnect_ivl, 50);
  link.socket->set(zmq::sockopt::reconnect_ivl_max, 1000);
  if (!options_.curve_server_key.empty()) {
    // Keys were validated by Client::Connect; a refused key shows up as no
    // handshake (parts wait, then time out), never as an error here.
    link.socket->set(zmq::sockopt::curve_serverkey, options_.curve_server_key);
    link.socket->set(zmq::sockopt::curve_publickey, options_.curve_public_key);
    link.socket->set(zmq::sockopt::curve_secretkey, options_.curve_secret_key);
  }
  const std::string monitor_ep =
      "inproc://shardps-monitor-" + std::to_string(client_id_) + "-" +
      std::to_string(link.index) + "-" + std::to_string(link.generation);
  zmq_socket_monitor(link.socket->handle(), monitor_ep.c_str(),
                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED);
  link.monitor =
      std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pair);
  link.monitor->set(zmq::sockopt::linger, 0);
  link.monitor->connect(monitor_ep);
  try {
    link.socket->connect(link.endpoint);
  } catch (const zmq::error_t& e) {
    // A malformed endpoint: every part for this shard will time out waiting;
    // say why once.
    std::fprintf(stderr, "shardps: cannot connect to %s: %s\n",
                 link.endpoint.c_str(), e.what());
  }
}

void IoThread::CloseLink(Link& link) {
  if (!link.socket) return;
  zmq_socket_monitor(link.socket->handle(), nullptr, 0);
  // linger 0: frames still queued are dropped now, releasing borrowed buffers.
  link.socket.reset();
  link.monitor.reset();
  link.connected = false;
}

long IoThread::PollTimeoutMs() const {
  if (deadlines_.empty()) return -1;
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadlines_.begin()->first - Clock::now());
  return std::max<long>(0, static_cast<long>(wait.count()) + 1);
}

void IoThread::Loop() {
  std::vector<zmq_pollitem_t> items;
  while (!stopping_.load(std::memory_order_acquire)) {  // see stopping_
    items.clear();
    items.push_back({nullptr, wake_.fd(), ZMQ_POLLIN, 0});
    for (Link& link : links_) {
      items.push_back({link.socket->handle(), 0, ZMQ_POLLIN, 0});
      items.push_back({link.monitor->handle(), 0, ZMQ_POLLIN, 0});
    }
    PollItems(items.data(), static_cast<int>(items.size()), PollTimeoutMs());
    if (items[0].revents & ZMQ_POLLIN) {
      wake_.Clear();
      TakeSubmissions();
    }
    for (size_t i = 0; i < links_.size(); ++i) {
      if (items[2 * i + 2].revents & ZMQ_POLLIN) OnMonitorEvent(links_[i]);
      if (items[2 * i + 1].revents & ZMQ_POLLIN) OnReply(links_[i]);
    }
    ExpireDeadlines();
  }
  // Shutting down: whatever is outstanding fails; closing the sockets
  // releases every borrowed frame.
  TakeSubmissions();
  const Status closed(Code::kUnavailable, "client closed");
  std::vector<uint64_t> ids;
  for (auto& [id, part] : parts_) ids.push_back(id);
  for (uint64_t id : ids) Finish(id, closed);
  ReleaseSlots();
  for (Link& link : links_) CloseLink(link);
}

void IoThread::TakeSubmissions() {
  std::vector<Part> batch;
  {
    MutexLock lock(mu_);
    batch.swap(submitted_);
  }
  for (Part& p : batch) Send(std::move(p));
}

void IoThread::Send(Part part) {
  Link& link = links_[part.shard];
  part.started_ns = MetricNowNs();
  if (stopping_.load(std::memory_order_acquire)) {  // see stopping_
    metrics_.requests.Count(part.op, Code::kUnavailable, 0);
    part.call->PartDone(Status(Code::kUnavailable, "client closed"), part.shard,
                        ShardOutcome::State::kNotApplied);
    return;
  }
  part.retriable = IsRetriable(part.op, options_.exactly_once);
  if (!link.connected && link.ever_connected && !part.retriable) {
    metrics_.requests.Count(part.op, Code::kUnavailable, part.started_ns);
    part.call->PartDone(
        Status(Code::kUnavailable,
               "shard " + std::to_string(link.index) + " at " + link.endpoint +
                   " is not connected (" + Describe(part) + "); retry later"),
        part.shard, ShardOutcome::State::kNotApplied);
    return;
  }
  const uint64_t id = part.request_id;
  Part& stored = parts_.emplace(id, std::move(part)).first->second;
  metrics_.in_flight.Set(parts_.size());
  Arm(stored, stored.deadline);
  if (IsNumbered(stored.op, options_.exactly_once) &&
      (!link.window_wait.empty() || !Number(link, stored))) {
    link.window_wait.push_back(id);
    return;
  }
  Dispatch(link, stored);
}

bool IoThread::Number(Link& link, Part& part) {
  if (!link.unacked.empty() &&
      link.next_seq - *link.unacked.begin() >= kDedupeWindow)
    return false;
  part.seq = link.next_seq++;
  link.unacked.insert(part.seq);
  return true;
}

void IoThread::AdmitWindowWaiters(Link& link) {
  size_t admitted = 0;
  for (; admitted < link.window_wait.size(); ++admitted) {
    auto it = parts_.find(link.window_wait[admitted]);
    if (it == parts_.end()) continue;  // it timed out while waiting
    if (!Number(link, it->second)) break;
    Dispatch(link, it->second);
  }
  link.window_wait.erase(
      link.window_wait.begin(),
      link.window_wait.begin() + static_cast<std::ptrdiff_t>(admitted));
}

void IoThread::Dispatch(Link& link, Part& part) {
  if (!link.connected) {
    link.backlog.push_back(part.request_id);
    return;
  }
  Transmit(part);
}

void IoThread::Arm(Part& part, Clock::time_point when) {
  deadlines_.erase({part.armed, part.request_id});
  part.armed = std::min(when, part.deadline);
  deadlines_.emplace(part.armed, part.request_id);
}

void IoThread::EncodeRequest(const Part& part) {
  builder_.Clear();
  auto model = builder_.CreateString(model_);
  flatbuffers::Offset<flatbuffers::String> tensor;
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> blocks;
  if (part.tensor != nullptr) {
    tensor = builder_.CreateString(part.tensor->name);
    blocks = builder_.CreateVector(part.blocks);
  } else if (part.table != nullptr) {
    tensor = builder_.CreateString(*part.table);
  } else if (!part.queue.empty()) {
    tensor = builder_.CreateString(part.queue);
    blocks = builder_.CreateVector(part.blocks);
  }
  wire::RequestBuilder req(builder_);
  req.add_op(part.op);
  req.add_request_id(part.request_id);
  req.add_client_id(client_id_);
  req.add_model(model);
  req.add_dtype(part.dtype);
  req.add_clock(part.clock);
  req.add_grad_norm(part.grad_norm);
  req.add_worker(static_cast<int16_t>(options_.worker));
  if (part.seq != 0) {
    req.add_seq(part.seq);
    // Retries of this push end at its deadline, request_timeout after the
    // call; the shard keeps our slot that long after our last push.
    req.add_retry_horizon_ms(static_cast<uint32_t>(std::min<int64_t>(
        options_.request_timeout.count(), kMaxRetryHorizonMs)));
  }
  if (part.tensor != nullptr) {
    req.add_tensor(tensor);
    req.add_blocks(blocks);
  } else if (part.table != nullptr) {
    req.add_tensor(tensor);
  } else if (!part.queue.empty()) {
    req.add_tensor(tensor);
    req.add_blocks(blocks);
  }
  builder_.Finish(req.Finish());
}

void IoThread::SendPayload(Link& link, Part& part) {
  for (size_t i = 0; i < part.frames.size(); ++i) {
    // Zero-copy, like block frames below.
    part.call->FrameHeld();
    auto holder = std::make_unique<std::shared_ptr<CallState>>(part.call);
    zmq::message_t frame(const_cast<void*>(part.frames[i].first),
                         part.frames[i].second, &CallState::ReleaseFrame,
                         holder.release());
    link.socket->send(frame, i + 1 < part.frames.size()
                                 ? zmq::send_flags::sndmore
                                 : zmq::send_flags::none);
    metrics_.bytes_sent.Add(part.frames[i].second);
  }
  if (part.grad != nullptr) {
    const ModelLayout& layout = *layout_;
    for (size_t i = 0; i < part.blocks.size(); ++i) {
      const uint32_t b = part.blocks[i];
      // Zero-copy: the frame borrows the caller's gradient; the call is not
      // done until ZeroMQ releases it (CallState::ReleaseFrame).
      const size_t element = part.dtype == wire::DType::F32 ? 4 : 2;
      auto* data = const_cast<char*>(static_cast<const char*>(part.grad) +
                                     layout.BlockStart(b) * element);
      const size_t bytes = layout.BlockLength(*part.tensor, b) * element;
      part.call->FrameHeld();
      auto holder = std::make_unique<std::shared_ptr<CallState>>(part.call);
      zmq::message_t frame(data, bytes, &CallState::ReleaseFrame,
                           holder.release());
      link.socket->send(frame, i + 1 < part.blocks.size()
                                   ? zmq::send_flags::sndmore
                                   : zmq::send_flags::none);
      metrics_.bytes_sent.Add(bytes);
    }
  }
}

void IoThread::Transmit(Part& part) {
  Link& link = links_[part.shard];
  EncodeRequest(part);

  const bool has_payload = part.grad != nullptr || !part.frames.empty();
  try {
    auto sent = link.socket->send(
        zmq::buffer(builder_.GetBufferPointer(), builder_.GetSize()),
        (has_payload ? zmq::send_flags::sndmore : zmq::send_flags::none) |
            zmq::send_flags::dontwait);
    if (!sent && part.retriable) {
      // ZMQ_IMMEDIATE: no live connection even though the monitor has not
      // said so yet. Try again shortly.
      Arm(part, Clock::now() + std::chrono::milliseconds(50));
      return;
    }
    if (!sent) {
      // ZMQ_IMMEDIATE: no live connection even though we thought so.
      Finish(part.request_id,
             Status(Code::kUnavailable, "shard " + std::to_string(link.index) +
                                            " at " + link.endpoint +
                                            " is not connected"));
      return;
    }
    SendPayload(link, part);
    part.sent = true;
    ++part.attempts;
    if (part.attempts > 1) metrics_.retries.Add();
    if (part.seq != 0) link.holds_slot = true;
    if (part.retriable) Arm(part, Clock::now() + options_.attempt_timeout);
  } catch (const zmq::error_t& e) {
    Finish(part.request_id,
           Status(Code::kUnavailable, "send to shard " +
                                          std::to_string(link.index) +
                                          " failed: " + e.what()));
  }
}

void IoThread::OnMonitorEvent(Link& link) {
  std::vector<zmq::message_t> frames;
  while (RecvMultipartNow(*link.monitor, &frames)) {
    if (frames.empty() || frames[0].size() < sizeof(uint16_t)) continue;
    uint16_t event;
    std::memcpy(&event, frames[0].data(), sizeof(event));
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      link.connected = true;
      link.ever_connected = true;
      std::vector<uint64_t> backlog;
      backlog.swap(link.backlog);
      // Oldest first, so retried pushes keep roughly their order.
      std::sort(backlog.begin(), backlog.end());
      backlog.erase(std::unique(backlog.begin(), backlog.end()), backlog.end());
      for (uint64_t id : backlog) {
        auto it = parts_.find(id);
        if (it != parts_.end()) Transmit(it->second);
      }
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      link.connected = false;
      FailLink(link, Status(Code::kUnavailable, "lost connection to shard " +
                                                    std::to_string(link.index) +
                                                    " at " + link.endpoint));
    }
  }
}

void IoThread::FailLink(Link& link, const Status& status) {
  // The connection ended with numbered pushes unanswered: a copy sent on it
  // may still be read by the shard after anything we send on the next one.
  if (!link.unacked.empty()) link.release_safe = false;
  const auto now = Clock::now();
  std::vector<uint64_t> ids;
  for (auto& [id, part] : parts_) {
    if (part.shard != link.index || !part.sent) continue;
    if (part.retriable && now < part.deadline) {
      // Sent again, with the same number, once the shard is back.
      part.sent = false;
      Arm(part, part.deadline);
      link.backlog.push_back(id);
      continue;
    }
    ids.push_back(id);
  }
  for (uint64_t id : ids) Finish(id, status);
}

void IoThread::Finish(uint64_t request_id, const Status& status, bool replied,
                      Code code) {
  auto it = parts_.find(request_id);
  if (it == parts_.end()) return;
  Part part = std::move(it->second);
  parts_.erase(it);
  metrics_.in_flight.Set(parts_.size());
  metrics_.requests.Count(part.op, status.code(), part.started_ns);
  if (status.code() == Code::kTimeout) metrics_.timeouts.Add();
  deadlines_.erase({part.armed, request_id});
  if (part.seq != 0) {
    Link& link = links_[part.shard];
    if (!replied && part.attempts > 0) link.release_safe = false;
    link.unacked.erase(part.seq);
    AdmitWindowWaiters(link);
  }
  // A shard refuses a push before changing anything, but a refusal of a
  // retry does not say what an earlier copy did.
  ShardOutcome::State state = ShardOutcome::State::kUnknown;
  if (replied && code == Code::kOk) {
    state = ShardOutcome::State::kApplied;
  } else if ((replied && part.attempts == 1) || part.attempts == 0) {
    state = ShardOutcome::State::kNotApplied;
  }
  part.call->PartDone(status, part.shard, state);
}

void IoThread::ReleaseSlots() {
  const auto deadline =
      Clock::now() +
      std::min<Clock::duration>(kReleaseWait, options_.request_timeout);
  std::vector<uint64_t> waiting;  // request ids, by link
  std::vector<size_t> pending;    // links whose answer has not come
  for (size_t i = 0; i < links_.size(); ++i) {
    Link& link = links_[i];
    if (!link.holds_slot || !link.release_safe || !link.connected) continue;
    builder_.Clear();
    auto model = builder_.CreateString(model_);
    wire::RequestBuilder req(builder_);
    req.add_op(wire::Op::Release);
    const uint64_t id =  // relaxed: see next_request_id_
        next_request_id_.fetch_add(1, std::memory_order_relaxed);
    req.add_request_id(id);
    req.add_client_id(client_id_);
    req.add_model(model);
    builder_.Finish(req.Finish());
    try {
      // On the connection our pushes used, after them: the shard sees them
      // first.
      if (!link.socket->send(
              zmq::buffer(builder_.GetBufferPointer(), builder_.GetSize()),
              zmq::send_flags::dontwait))
        continue;
    } catch (const zmq::error_t&) {
      continue;
    }
    waiting.push_back(id);
    pending.push_back(i);
  }
  // Wait for the answers: closing a socket (linger 0) drops what it has not
  // sent yet. Best effort: a shard that does not answer in time keeps the
  // slot until our retry horizon ends.
  std::vector<zmq_pollitem_t> items;
  std::vector<zmq::message_t> frames;
  while (!pending.empty() && Clock::now() < deadline) {
    items.clear();
    for (size_t i : pending)
      items.push_back({links_[i].socket->handle(), 0, ZMQ_POLLIN, 0});
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    PollItems(items.data(), static_cast<int>(items.size()),
              std::max<long>(1, static_cast<long>(left.count())));
    for (size_t k = pending.size(); k-- > 0;) {
      if (!(items[k].revents & ZMQ_POLLIN)) continue;
      Link& link = links_[pending[k]];
      try {
        while (RecvMultipartNow(*link.socket, &frames)) {
          if (frames.empty()) continue;
          auto reply = ParseReply(frames[0].data(), frames[0].size(), scratch_);
          if (reply.ok() && (*reply)->request_id() == waiting[k]) {
            pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
            waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(k));
            break;
          }
        }
      } catch (const zmq::error_t&) {
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
  }
}

void IoThread::ExpireDeadlines() {
  const auto now = Clock::now();
  std::vector<uint32_t> reset;
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const uint64_t id = deadlines_.begin()->second;
    Part& part = parts_.at(id);
    Link& link = links_[part.shard];
    if (now < part.deadline) {
      // An attempt went unanswered (or could not be sent): the same request,
      // same number, again. The server applies a push only once.
      part.sent = false;
      Arm(part, part.deadline);
      Dispatch(link, part);
      continue;
    }
    const std::string where =
        "shard " + std::to_string(link.index) + " at " + link.endpoint;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        options_.request_timeout)
                        .count();
    if (part.sent) {
      reset.push_back(part.shard);
      Finish(id, Status(Code::kTimeout, where + " did not answer " +
                                            Describe(part) + " within " +
                                            std::to_string(ms) + " ms"));
    } else {
      Finish(id, Status(Code::kUnavailable,
                        "could not connect to " + where + " in time"));
    }
  }
  std::sort(reset.begin(), reset.end());
  reset.erase(std::unique(reset.begin(), reset.end()), reset.end());
  for (uint32_t shard : reset) {
    Link& link = links_[shard];
    FailLink(link, Status(Code::kUnavailable, "connection to shard " +
                                                  std::to_string(shard) +
                                                  " reset after a timeout"));
    const bool ever = link.ever_connected;
    CloseLink(link);
    OpenLink(link);
    link.ever_connected = ever;
  }
}

void IoThread::OnReply(Link& link) {
  std::vector<zmq::message_t> frames;
  for (;;) {
    try {
      if (!RecvMultipartNow(*link.socket, &frames)) return;
    } catch (const zmq::error_t&) {
      return;
    }
    if (frames.empty()) continue;
    for (const zmq::message_t& f : frames)
      metrics_.bytes_received.Add(f.size());
    auto reply = ParseReply(frames[0].data(), frames[0].size(), scratch_);
    if (!reply.ok()) continue;  // nothing to match it to; the deadline will
    auto it = parts_.find((*reply)->request_id());
    // Late replies (after a timeout) and replies on the wrong link are dropped.
    if (it == parts_.end() || it->second.shard != link.index) continue;
    Status status = CompletePart(it->second, **reply, frames);
    Finish(it->first, status, /*replied=*/true, CodeFromWire((*reply)->code()));
  }
}

Status IoThread::CompletePart(Part& part, const wire::Reply& reply,
                              std::vector<zmq::message_t>& frames) {
  const std::string shard = "shard " + std::to_string(part.shard);
  const Code code = CodeFromWire(reply.code());
  if (code != Code::kOk) {
    const std::string msg = reply.message() ? reply.message()->str() : "";
    return Status(code, shard + ": " + msg);
  }
  if (part.on_reply) return part.on_reply(reply);
  if (part.on_frames) {
    // The callback sees the payload only, without the header frame.
    std::vector<zmq::message_t> payload;
    for (size_t i = 1; i < frames.size(); ++i)
      payload.push_back(std::move(frames[i]));
    return part.on_frames(payload);
  }
  if (part.out == nullptr) return Status::Ok();
  // Pull/PushPull: the reply must carry exactly the blocks we asked for.
  const auto* blocks = reply.blocks();
  if (blocks == nullptr || blocks->size() != part.blocks.size() ||
      frames.size() != part.blocks.size() + 1)
    return Status(Code::kBadMessage, shard + ": reply has the wrong blocks");
  const ModelLayout& layout = *layout_;
  for (size_t i = 0; i < part.blocks.size(); ++i) {
    const uint32_t b = part.blocks[i];
    const size_t bytes = layout.BlockLength(*part.tensor, b) * sizeof(float);
    if (blocks->Get(static_cast<flatbuffers::uoffset_t>(i)) != b ||
        frames[i + 1].size() != bytes)
      return Status(
          Code::kBadMessage,
          shard + ": reply block " + std::to_string(b) + " has the wrong size");
  }
  for (size_t i = 0; i < part.blocks.size(); ++i) {
    const uint32_t b = part.blocks[i];
    std::memcpy(part.out + layout.BlockStart(b), frames[i + 1].data(),
                frames[i + 1].size());
  }
  return Status::Ok();
}

}  // namespace shardps::client_internal
