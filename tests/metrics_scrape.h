// Test helpers for /metrics: a plain HTTP/1.0 GET over a socket (the tests
// need no HTTP library) and a parser of the text exposition format into
// "name{labels}" -> value.
#ifndef SHARDPS_TESTS_METRICS_SCRAPE_H_
#define SHARDPS_TESTS_METRICS_SCRAPE_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <string>

namespace shardps::test {

// GETs http://127.0.0.1:PORT/PATH and returns the body, or nullopt when
// the connection fails or the status is not 200. 5 s socket timeouts.
inline std::optional<std::string> HttpGet(const std::string& url) {
  const std::string prefix = "http://127.0.0.1:";
  if (url.rfind(prefix, 0) != 0) return std::nullopt;
  const size_t slash = url.find('/', prefix.size());
  const int port = std::atoi(url.substr(prefix.size(), slash).c_str());
  const std::string path = slash == std::string::npos ? "/" : url.substr(slash);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[65536];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
        response.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (response.rfind("HTTP/1.", 0) != 0 ||
      response.find(" 200 ") == std::string::npos)
    return std::nullopt;
  const size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos) return std::nullopt;
  return response.substr(body + 4);
}

// "name{a="x",b="y"} 12" lines -> {"name{a="x",b="y"}": 12}; comments
// skipped. Label order is as the exporter wrote it.
inline std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return out;
}

// The value of the series named `name` whose key contains `a` and `b`
// (label pairs such as R"(op="push")"; empty matches all), summed over all
// that match; nullopt when none does.
inline std::optional<double> SeriesSum(
    const std::map<std::string, double>& series, const std::string& name,
    const std::string& a = "", const std::string& b = "") {
  std::optional<double> sum;
  for (const auto& [key, value] : series) {
    if (key.compare(0, name.size(), name) != 0) continue;
    if (key.size() > name.size() && key[name.size()] != '{') continue;
    if (key.find(a) == std::string::npos || key.find(b) == std::string::npos)
      continue;
    sum = sum.value_or(0) + value;
  }
  return sum;
}

}  // namespace shardps::test

#endif  // SHARDPS_TESTS_METRICS_SCRAPE_H_
