// Small helpers over cppzmq shared by the server and the client.
//
// cppzmq throws zmq::error_t; these helpers are the one place where the calls
// our poll loops make are turned into plain results.
#ifndef SHARDPS_COMMON_ZMQ_UTIL_H_
#define SHARDPS_COMMON_ZMQ_UTIL_H_

#include <zmq.h>

#include <cerrno>
#include <vector>
#include <zmq.hpp>

namespace shardps {

// zmq_poll that treats EINTR as "nothing ready". Returns the ready count.
inline int PollItems(zmq_pollitem_t* items, int count, long timeout_ms) {
  const int rc = zmq_poll(items, count, timeout_ms);
  return rc < 0 ? 0 : rc;
}

// Receives one whole multipart message without blocking. Returns false when
// none is waiting. ZeroMQ delivers multipart messages atomically, so once the
// first frame is here the rest are too.
inline bool RecvMultipartNow(zmq::socket_t& socket,
                             std::vector<zmq::message_t>* frames) {
  frames->clear();
  zmq::message_t first;
  if (!socket.recv(first, zmq::recv_flags::dontwait)) return false;
  bool more = first.more();
  frames->push_back(std::move(first));
  while (more) {
    zmq::message_t part;
    if (!socket.recv(part, zmq::recv_flags::none)) break;
    more = part.more();
    frames->push_back(std::move(part));
  }
  return true;
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_ZMQ_UTIL_H_
