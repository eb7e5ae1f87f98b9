// QuoteString(): text as one double-quoted string that JSON and TOML (a
// basic string) both read back as the same text: the CLI's --json output
// and the cluster files share it.
//
// Thread-safety: a pure function; call from any thread.
#ifndef SHARDPS_COMMON_QUOTED_STRING_H_
#define SHARDPS_COMMON_QUOTED_STRING_H_

#include <cstdio>
#include <string>
#include <string_view>

namespace shardps {

// `text` between double quotes, with '"' and '\' escaped, the usual short
// escapes for \n, \t and \r, and every other control character (and DEL)
// as \u00XX: TOML forbids them raw, and JSON forbids raw control characters
// too. Everything else, UTF-8 included, is kept byte for byte.
inline std::string QuoteString(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
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
      case '\r':
        out += "\\r";
        break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", byte);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace shardps

#endif  // SHARDPS_COMMON_QUOTED_STRING_H_
