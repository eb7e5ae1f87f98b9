#include "bench/metrics_scraper.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/posix_file.h"

namespace shardps::bench {

namespace {

struct Url {
  std::string host;
  uint16_t port = 0;
  std::string path;
};

Result<Url> ParseUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0)
    return Status(Code::kInvalidArgument, "not an http:// URL: " + url);
  const size_t host_end = url.find(':', scheme.size());
  const size_t path_begin = url.find('/', scheme.size());
  if (host_end == std::string::npos || path_begin == std::string::npos ||
      host_end > path_begin)
    return Status(Code::kInvalidArgument,
                  "want http://HOST:PORT/PATH, got " + url);
  Url u;
  u.host = url.substr(scheme.size(), host_end - scheme.size());
  const std::string port = url.substr(host_end + 1, path_begin - host_end - 1);
  char* end = nullptr;
  const unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p == 0 || p > 65535)
    return Status(Code::kInvalidArgument, "bad port in " + url);
  u.port = static_cast<uint16_t>(p);
  u.path = url.substr(path_begin);
  return u;
}

// Closes the descriptor on every return path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<std::string> HttpGet(const std::string& url,
                            std::chrono::milliseconds timeout) {
  auto u = ParseUrl(url);
  if (!u.ok()) return u.status();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(u->port);
  if (::inet_pton(AF_INET, u->host.c_str(), &addr.sin_addr) != 1)
    return Status(Code::kInvalidArgument, "not an IPv4 address: " + u->host);
  Fd s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) return ErrnoStatus("socket", errno);
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
      0)
    return ErrnoStatus(Code::kUnavailable, "connect " + url, errno);
  const std::string request =
      "GET " + u->path + " HTTP/1.1\r\nHost: " + u->host + ":" +
      std::to_string(u->port) + "\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(s.fd, request.data() + sent, request.size() - sent,
                             MSG_NOSIGNAL);
    if (n <= 0) return ErrnoStatus(Code::kUnavailable, "send " + url, errno);
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(s.fd, buf, sizeof(buf), 0);
    if (n == 0) break;  // Connection: close ends the body
    if (n < 0) return ErrnoStatus(Code::kUnavailable, "recv " + url, errno);
    reply.append(buf, static_cast<size_t>(n));
  }
  const size_t head_end = reply.find("\r\n\r\n");
  if (reply.compare(0, 9, "HTTP/1.1 ") != 0 &&
      reply.compare(0, 9, "HTTP/1.0 ") != 0)
    return Status(Code::kInternal, "no HTTP reply from " + url);
  if (reply.compare(9, 3, "200") != 0 || head_end == std::string::npos)
    return Status(Code::kInternal,
                  url + " answered " + reply.substr(0, reply.find('\r')));
  // A chunked body keeps its chunk-size lines; the workload only counts it
  // and looks for a series name.
  return reply.substr(head_end + 4);
}

void MetricsScraper::Start(const std::string& url,
                           std::chrono::milliseconds interval) {
  Stop();
  stop_ = false;
  scrapes_ = failures_ = body_bytes_ = 0;
  seconds_in_scrapes_ = 0;
  first_error_.clear();
  thread_ = std::thread(&MetricsScraper::Loop, this, url, interval);
}

void MetricsScraper::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void MetricsScraper::Loop(std::string url, std::chrono::milliseconds interval) {
  using Clock = std::chrono::steady_clock;
  auto next = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    const auto begin = Clock::now();
    auto body = HttpGet(url, std::chrono::seconds(5));
    seconds_in_scrapes_ +=
        std::chrono::duration<double>(Clock::now() - begin).count();
    if (body.ok() &&
        body->find("shardps_requests_total") != std::string::npos) {
      ++scrapes_;
      body_bytes_ = body->size();
    } else {
      ++failures_;
      if (first_error_.empty())
        first_error_ = body.ok() ? url + " has no shardps_requests_total"
                                 : body.status().ToString();
    }
    // A fixed rate, like Prometheus: a slow scrape does not push the next.
    next += interval;
    lock.lock();
    wake_.wait_until(lock, next, [this] { return stop_; });
  }
}

}  // namespace shardps::bench
