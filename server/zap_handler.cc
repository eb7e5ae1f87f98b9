#include "server/zap_handler.h"

#include <zmq.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "common/zmq_util.h"

namespace shardps {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::chrono::seconds kLogInterval{1};
// Distinct peers remembered for rate-limiting; a flood of fresh keys resets
// the table instead of growing it without bound.
constexpr size_t kMaxLogEntries = 4096;

std::string FrameText(const zmq::message_t& m) {
  return std::string(static_cast<const char*>(m.data()), m.size());
}

std::string Z85(const uint8_t* key) {
  char text[41] = {};
  zmq_z85_encode(text, key, 32);
  return text;
}

}  // namespace

Result<std::set<ZapHandler::Key>> ZapHandler::ParseKeys(
    const std::vector<std::string>& z85_keys) {
  if (z85_keys.empty())
    return Status(Code::kInvalidArgument,
                  "the authorized-keys list is empty: no client could "
                  "connect");
  std::set<Key> keys;
  for (const std::string& z85 : z85_keys) {
    Key key;
    if (z85.size() != 40 || zmq_z85_decode(key.data(), z85.c_str()) == nullptr)
      return Status(Code::kInvalidArgument,
                    "not a Z85 public key: '" + z85 + "'");
    keys.insert(key);
  }
  return keys;
}

Result<std::unique_ptr<ZapHandler>> ZapHandler::Start(
    zmq::context_t& context, const std::vector<std::string>& authorized_keys) {
  auto keys = ParseKeys(authorized_keys);
  if (!keys.ok()) return keys.status();
  zmq::socket_t socket(context, zmq::socket_type::rep);
  try {
    socket.set(zmq::sockopt::linger, 0);
    socket.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return Status(Code::kIoError,
                  std::string("cannot start the ZAP handler: ") + e.what());
  }
  auto stop = EventFd::Create();
  if (!stop.ok()) return stop.status();
  std::unique_ptr<ZapHandler> handler(
      new ZapHandler(std::move(socket), std::move(keys).value()));
  handler->stop_ = std::move(stop).value();
  // The socket moves to the handler thread here; starting a thread is a full
  // barrier, which is all ZeroMQ asks of a socket that changes threads.
  handler->thread_ = std::thread([h = handler.get()] { h->Loop(); });
  return handler;
}

ZapHandler::ZapHandler(zmq::socket_t socket, std::set<Key> keys)
    : keys_(std::move(keys)), socket_(std::move(socket)) {}

ZapHandler::~ZapHandler() { Stop(); }

void ZapHandler::Stop() {
  if (!thread_.joinable()) return;
  stop_.Signal();
  thread_.join();
  socket_.close();
}

void ZapHandler::Loop() {
  zmq_pollitem_t items[2] = {
      {socket_.handle(), 0, ZMQ_POLLIN, 0},
      {nullptr, stop_.fd(), ZMQ_POLLIN, 0},
  };
  std::vector<zmq::message_t> frames;
  for (;;) {
    PollItems(items, 2, -1);
    if (items[1].revents & ZMQ_POLLIN) return;
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    try {
      while (RecvMultipartNow(socket_, &frames)) HandleRequest(frames);
    } catch (const zmq::error_t& e) {
      // Only libzmq itself talks to this socket; a failure here is a bug or
      // shutdown, and the handshake it concerned fails on its own.
      std::fprintf(stderr, "shardps: ZAP handler: %s\n", e.what());
    }
  }
}

void ZapHandler::HandleRequest(std::vector<zmq::message_t>& frames) {
  // Request (RFC 27): version, request id, domain, address, identity,
  // mechanism, credentials... A REP socket must answer every request, even a
  // malformed one, or it can never receive again.
  const bool well_formed = frames.size() >= 6 && FrameText(frames[0]) == "1.0";
  const std::string request_id = frames.size() > 1 ? FrameText(frames[1]) : "";
  const std::string address = frames.size() > 3 ? FrameText(frames[3]) : "";
  bool allowed = false;
  std::string user_id;  // the key, for StillAuthorized
  std::string who = "malformed ZAP request";
  if (well_formed) {
    const std::string mechanism = FrameText(frames[5]);
    if (mechanism == "CURVE" && frames.size() >= 7 && frames[6].size() == 32) {
      Key key;
      std::memcpy(key.data(), frames[6].data(), key.size());
      {
        MutexLock lock(keys_mu_);
        allowed = keys_.count(key) != 0;
      }
      user_id = Z85(key.data());
      who = "client key " + user_id + " not authorized";
    } else {
      who = "mechanism " + mechanism + " not accepted";
    }
  }
  if (!allowed) Refuse(who, address);
  const char* code = allowed ? "200" : "400";
  const char* text = allowed ? "OK" : "key not authorized";
  socket_.send(zmq::buffer(std::string_view("1.0")), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(code, 3), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(text, std::strlen(text)), zmq::send_flags::sndmore);
  socket_.send(zmq::buffer(allowed ? user_id : std::string()),
               zmq::send_flags::sndmore);
  socket_.send(zmq::message_t(), zmq::send_flags::none);  // metadata
}

Status ZapHandler::SetAuthorizedKeys(
    const std::vector<std::string>& authorized_keys) {
  auto keys = ParseKeys(authorized_keys);
  if (!keys.ok()) return keys.status();
  {
    MutexLock lock(keys_mu_);
    keys_ = std::move(keys).value();
  }
  generation_.fetch_add(1, std::memory_order_release);
  return Status::Ok();
}

bool ZapHandler::StillAuthorized(const char* user_id,
                                 const std::string& address) {
  // user_id is NUL-terminated (a ZeroMQ property), so it decodes in place:
  // no allocation on the admitted path.
  Key key;
  bool known = false;
  if (std::strlen(user_id) == 40 &&
      zmq_z85_decode(key.data(), user_id) != nullptr) {
    MutexLock lock(keys_mu_);
    known = keys_.count(key) != 0;
  }
  if (!known)
    Refuse(*user_id == '\0'
               ? std::string("a request without a CURVE key after a reload")
               : "client key " + std::string(user_id) + " no longer authorized",
           address);
  return known;
}

void ZapHandler::CountFailedHandshake(const std::string& peer_address,
                                      uint32_t protocol_error) {
  const char* who = "CURVE handshake failed";
  if (protocol_error == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
    who = "peer speaks no CURVE";
  if (protocol_error == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
    who = "peer encrypts to another server key";
  Refuse(who, peer_address);
}

void ZapHandler::CountAbandonedHandshake(const std::string& peer_address) {
  Refuse("peer hung up during the handshake", peer_address);
}

void ZapHandler::Refuse(const std::string& who, const std::string& address) {
  // relaxed: a statistic read by Stats; it orders nothing else.
  refusals_.fetch_add(1, std::memory_order_relaxed);
  const auto now = std::chrono::steady_clock::now();
  MutexLock lock(log_mu_);
  if (log_.size() >= kMaxLogEntries && log_.count(who) == 0) log_.clear();
  auto [it, fresh] = log_.try_emplace(who);
  LogState& state = it->second;
  ++state.unreported;
  if (!fresh && now - state.last < kLogInterval) return;
  state.last = now;
  std::fprintf(stderr,
               "shardps serve: refused connection from %s: %s "
               "(%llu attempt%s since the last report)\n",
               address.empty() ? "unknown address" : address.c_str(),
               who.c_str(), static_cast<unsigned long long>(state.unreported),
               state.unreported == 1 ? "" : "s");
  state.unreported = 0;
}

}  // namespace shardps
