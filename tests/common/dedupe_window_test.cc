// DedupeWindow: a retry within the window is recognised, a first attempt
// never is, whatever the order pushes reach a block.
#include "common/dedupe_window.h"

#include <catch2/catch.hpp>

namespace shardps {
namespace {

TEST_CASE("dedupe window recognises retries and nothing else", "[dedupe]") {
  DedupeWindow w{};
  CHECK_FALSE(DedupeSeen(w, 9, 1));
  DedupeRecord(w, 9, 1);
  CHECK(DedupeSeen(w, 9, 1));
  CHECK_FALSE(DedupeSeen(w, 9, 2));

  // Out of order: 5 arrives before 3 and 4.
  DedupeRecord(w, 9, 5);
  CHECK(DedupeSeen(w, 9, 5));
  CHECK_FALSE(DedupeSeen(w, 9, 3));
  CHECK_FALSE(DedupeSeen(w, 9, 4));
  DedupeRecord(w, 9, 3);
  CHECK(DedupeSeen(w, 9, 3));
  CHECK_FALSE(DedupeSeen(w, 9, 4));
  CHECK(DedupeSeen(w, 9, 1));

  // The far edge of the window: 63 back is still known, exactly.
  DedupeRecord(w, 9, 5 + 63);
  CHECK(DedupeSeen(w, 9, 5));
  CHECK_FALSE(DedupeSeen(w, 9, 6));
  // Further back than the window can hold counts as applied (refused).
  CHECK(DedupeSeen(w, 9, 4));
  DedupeRecord(w, 9, 5 + 64);
  CHECK_FALSE(DedupeSeen(w, 9, 6));
  CHECK(DedupeSeen(w, 9, 5));
}

TEST_CASE("dedupe window of another client is empty", "[dedupe]") {
  DedupeWindow w{};
  DedupeRecord(w, 9, 10);
  CHECK_FALSE(DedupeSeen(w, 8, 10));
  DedupeRecord(w, 8, 2);  // the slot went to client 8
  CHECK(DedupeSeen(w, 8, 2));
  CHECK_FALSE(DedupeSeen(w, 9, 10));
}

TEST_CASE("dedupe window jumps of more than 64 clear the history", "[dedupe]") {
  DedupeWindow w{};
  for (uint64_t s = 1; s <= 10; ++s) DedupeRecord(w, 1, s);
  DedupeRecord(w, 1, 200);
  CHECK(DedupeSeen(w, 1, 200));
  CHECK_FALSE(DedupeSeen(w, 1, 199));
  CHECK(DedupeSeen(w, 1, 10));  // beyond the window: refused, not reapplied
}

}  // namespace
}  // namespace shardps
