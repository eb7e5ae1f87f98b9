// ParkedRequests: requests waiting for slower workers (bsp/ssp).
//
// A request whose consistency gate (ClockKeeper::RunGate, ClockReplyGate)
// is shut waits here with its frames until the gate opens or its deadline
// (consistency.wait_timeout) passes. Each holds its frames, so a cap bounds
// memory when clients pile up requests behind a straggler.
//
// Thread-safety: the frontend thread only.
#ifndef SHARDPS_SERVER_PARKED_REQUESTS_H_
#define SHARDPS_SERVER_PARKED_REQUESTS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <vector>
#include <zmq.hpp>

#include "server/clock_keeper.h"
#include "shardps/status.h"

namespace shardps {

class ParkedRequests {
 public:
  struct Parked {
    std::vector<zmq::message_t> frames;  // [identity, header, payload...]
    Gate gate;
    bool replay;  // true: handle the request again; false: reply OK (Clock)
    uint64_t request_id;
    std::chrono::steady_clock::time_point parked_at, deadline;
    // The request's op and arrival (MetricNowNs; 0 unknown), so its reply
    // is counted as the request it answers (ShardMetrics).
    wire::Op op = wire::Op::Hello;
    uint64_t received_ns = 0;
  };

  // `clocks` judges the gates and names the laggards; borrowed, it must
  // outlive this object.
  explicit ParkedRequests(const ClockKeeper& clocks) : clocks_(clocks) {}

  // Parks a request behind `gate`: with all its frames when `replay`, else
  // its identity only (a Clock reply). On Ok `frames` were moved from; on
  // kBusy (the cap is reached) they are untouched and nothing is parked.
  Status Park(uint64_t request_id, std::vector<zmq::message_t>& frames,
              const Gate& gate, bool replay, wire::Op op, uint64_t received_ns);

  // Takes out each request whose gate passes now and hands it to `run`.
  // `run` may park more requests and call Release again: a nested call only
  // asks the outer one for another walk, repeated until nothing more opens.
  void Release(const std::function<void(Parked&)>& run);

  // Takes out each request whose deadline has passed and hands it to
  // `refuse` with the kTimeout status to answer it with.
  void Expire(const std::function<void(Parked&, const Status&)>& refuse);

  // Milliseconds until the earliest deadline (at least 0), for the
  // frontend's poll; -1 when nothing is parked.
  int PollTimeoutMs() const;

  size_t size() const { return parked_.size(); }
  bool empty() const { return parked_.empty(); }

 private:
  const ClockKeeper& clocks_;
  std::list<Parked> parked_;  // a list: replays may park more while we walk
  bool releasing_ = false, release_again_ = false;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_PARKED_REQUESTS_H_
