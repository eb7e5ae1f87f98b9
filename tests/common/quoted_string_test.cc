#include "common/quoted_string.h"

#include <toml++/toml.h>

#include <catch2/catch.hpp>
#include <string>

namespace shardps {
namespace {

TEST_CASE("quoted string escapes quotes, backslashes and control characters",
          "[quoted_string]") {
  CHECK(QuoteString("") == "\"\"");
  CHECK(QuoteString("plain text") == "\"plain text\"");
  CHECK(QuoteString("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(QuoteString("l1\nl2\tx\ry") == "\"l1\\nl2\\tx\\ry\"");
  CHECK(QuoteString(std::string("nul\0bel\a", 8)) ==
        "\"nul\\u0000bel\\u0007\"");
  CHECK(QuoteString("\x1f\x7f") == "\"\\u001f\\u007f\"");
  // UTF-8 stays as it is.
  CHECK(QuoteString("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
}

TEST_CASE("quoted string reads back as the same text in TOML",
          "[quoted_string]") {
  const std::string text = std::string("q\" b\\ n\n t\t r\r nul") +
                           std::string(1, '\0') +
                           "\x01\x1b\x7f caf\xc3\xa9 /dev/shm/m";
  toml::table table = toml::parse("v = " + QuoteString(text) + "\n");
  CHECK(table["v"].value_exact<std::string>() == text);
}

}  // namespace
}  // namespace shardps
