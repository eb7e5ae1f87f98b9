// Futex waits and wakes on a 32-bit word in shared memory, for waiters and
// wakers in different processes (batch queues, host replica state).
//
// A word is "bumped" (incremented, then every waiter woken) after the state
// it guards changed; a waiter reads the word, checks its condition, and
// sleeps only while the word still holds what it read, so no wake-up is lost
// between the check and the sleep.
//
// Thread-safety: any thread of any process that maps the word.
#ifndef SHARDPS_COMMON_FUTEX_H_
#define SHARDPS_COMMON_FUTEX_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace shardps {

// Sleeps while `word` == `seen`, at most `timeout` (<= 0: returns at once).
// May return early (a wake-up, a signal, a spurious return): callers loop
// on their condition.
void FutexWait(std::atomic<uint32_t>& word, uint32_t seen,
               std::chrono::nanoseconds timeout);

// Increments `word` (release: the state written before is visible to a
// waiter that sees the new value) and wakes every waiter.
void FutexBump(std::atomic<uint32_t>& word);

// CLOCK_MONOTONIC in nanoseconds: one clock for every process of a machine
// (and of every host namespace of the test bed), so ages written by one
// process can be read by another.
int64_t MonotonicNs();

}  // namespace shardps

#endif  // SHARDPS_COMMON_FUTEX_H_
