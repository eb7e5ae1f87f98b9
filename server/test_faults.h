// TestFaults: fault switches that exist for tests only.
//
// Integration tests use them to make a real server lose replies or die in
// the middle of an update, so that client retries and crash recovery are
// exercised against the production code paths. A production server leaves
// every switch at its default (off); `shardps serve` sets them only from
// hidden --fault-* flags that carry no help text.
#ifndef SHARDPS_SERVER_TEST_FAULTS_H_
#define SHARDPS_SERVER_TEST_FAULTS_H_

#include <cstdint>

namespace shardps {

struct TestFaults {
  // When N > 0, every N-th push is applied but its reply is never sent, as
  // if the network lost it. Exercises client retries.
  uint32_t drop_push_replies = 0;
  // The n-th journaled block update writes half the block and SIGKILLs the
  // server (UpdatePool::SetFaultKillMidUpdate). 0: off.
  uint64_t kill_mid_update = 0;
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_TEST_FAULTS_H_
