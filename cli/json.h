// Just enough JSON output for the CLI's --json flags.
#ifndef SHARDPS_CLI_JSON_H_
#define SHARDPS_CLI_JSON_H_

#include <cstdio>
#include <string>

#include "common/quoted_string.h"

namespace shardps::cli {

// `s` as a quoted JSON string (the escaping cluster files use too).
inline std::string JsonString(const std::string& s) { return QuoteString(s); }

// A finite double as JSON (NaN and infinities become null).
inline std::string JsonNumber(double v) {
  if (v != v || v > 1.7e308 || v < -1.7e308) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_JSON_H_
