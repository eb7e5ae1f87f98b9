// MetricsScraper: a thread that fetches a /metrics URL at a fixed interval
// over a plain HTTP/1.1 socket, as Prometheus would, for the metrics
// workload (what serving /metrics costs a shard while it takes pushes).
//
// Thread-safety: Start/Stop and the accessors from one thread (the bench's);
// the scraping thread is private.
#ifndef SHARDPS_BENCH_METRICS_SCRAPER_H_
#define SHARDPS_BENCH_METRICS_SCRAPER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "shardps/status.h"

namespace shardps::bench {

// One GET of `url` ("http://HOST:PORT/PATH", HOST an IPv4 address). The body
// on a 200 reply; kUnavailable for a refused or broken connection,
// kInternal for any other status.
Result<std::string> HttpGet(const std::string& url,
                            std::chrono::milliseconds timeout);

class MetricsScraper {
 public:
  MetricsScraper() = default;
  MetricsScraper(const MetricsScraper&) = delete;
  MetricsScraper& operator=(const MetricsScraper&) = delete;
  ~MetricsScraper() { Stop(); }

  // Scrapes `url` now and then every `interval` until Stop.
  void Start(const std::string& url, std::chrono::milliseconds interval);
  // Joins the thread. The counts stay readable; Start again resets them.
  void Stop();

  uint64_t scrapes() const { return scrapes_; }  // answered 200
  uint64_t failures() const { return failures_; }
  uint64_t body_bytes() const { return body_bytes_; }  // of the last one
  double seconds_in_scrapes() const { return seconds_in_scrapes_; }
  // The first failure's message; empty while none.
  const std::string& first_error() const { return first_error_; }

 private:
  void Loop(std::string url, std::chrono::milliseconds interval);

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  // Written by the thread, read after it is joined.
  uint64_t scrapes_ = 0;
  uint64_t failures_ = 0;
  uint64_t body_bytes_ = 0;
  double seconds_in_scrapes_ = 0;
  std::string first_error_;
};

}  // namespace shardps::bench

#endif  // SHARDPS_BENCH_METRICS_SCRAPER_H_
