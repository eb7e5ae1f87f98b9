// Tests of the test harness itself: what the other integration tests rely
// on when they read a child's output.
#include "tests/integration/process.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

namespace shardps::testing {
namespace {

size_t CountOf(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1))
    ++n;
  return n;
}

// Regression: the stderr memfd was shared without O_APPEND, so two
// grandchildren (the servers of `launch`) writing at once raced on the
// shared offset and one line overwrote the other; the launch SIGHUP test
// then counted one reload of two.
TEST_CASE("child stderr keeps every line when its children write at once",
          "[process][integration]") {
  // Two background writers, 2,000 lines each, one write(2) per line (the
  // shell's echo is a builtin: one write per call).
  auto child = ChildProcess::Spawn(
      {"/bin/sh", "-c",
       "w() { i=0; while [ $i -lt 2000 ]; do echo \"$1-line\" >&2; "
       "i=$((i+1)); done; }; w left & w right & wait"});
  REQUIRE(child.ok());
  const auto status = (*child)->Wait(std::chrono::seconds(60));
  REQUIRE(status.has_value());
  REQUIRE(status->ok());
  const std::string err = (*child)->Stderr();
  CHECK(CountOf(err, "left-line\n") == 2000);
  CHECK(CountOf(err, "right-line\n") == 2000);
  CHECK(err.size() == 2000 * (sizeof("left-line\n") - 1) +
                          2000 * (sizeof("right-line\n") - 1));
}

}  // namespace
}  // namespace shardps::testing
