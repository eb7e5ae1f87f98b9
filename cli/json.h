// Just enough JSON output for the CLI's --json flags.
#ifndef SHARDPS_CLI_JSON_H_
#define SHARDPS_CLI_JSON_H_

#include <cstdio>
#include <string>

namespace shardps::cli {

// `s` as a quoted JSON string.
inline std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// A finite double as JSON (NaN and infinities become null).
inline std::string JsonNumber(double v) {
  if (v != v || v > 1.7e308 || v < -1.7e308) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_JSON_H_
