// Prometheus exposition for shardps processes (docs/metrics.md): the
// /metrics endpoint (prometheus-cpp's civetweb exposer) and the builder a
// process's collector fills on every scrape.
//
// A process keeps its numbers in metric_counters.h objects and hands the
// endpoint a Collect function that reads them; nothing on a hot path ever
// touches prometheus-cpp. Collect runs on an exposer thread, once per
// scrape, and must only read (atomics, or state under a lock the hot path
// never waits for).
#ifndef SHARDPS_COMMON_METRICS_EXPORT_H_
#define SHARDPS_COMMON_METRICS_EXPORT_H_

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/metric_counters.h"
#include "shardps/status.h"

namespace prometheus {
class Exposer;
class Collectable;
struct MetricFamily;
}  // namespace prometheus

namespace shardps {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Builds one scrape's metric families. Every series gets the constant labels
// given at construction plus its own; series of the same name go into one
// family (the first call's help text wins).
class MetricFamilies {
 public:
  explicit MetricFamilies(MetricLabels constant);
  ~MetricFamilies();
  MetricFamilies(MetricFamilies&&) noexcept;

  // `name` must follow Prometheus conventions: counters end in _total,
  // values are in base units (seconds, bytes).
  void Counter(const std::string& name, const std::string& help, double value,
               const MetricLabels& labels = {});
  void Gauge(const std::string& name, const std::string& help, double value,
             const MetricLabels& labels = {});
  void Histogram(const std::string& name, const std::string& help,
                 const LatencyHistogram::Snapshot& snapshot,
                 const MetricLabels& labels = {});
  // The standard process_* metrics of this process (CPU, memory, fds,
  // start time), read from /proc/self.
  void ProcessMetrics();

  std::vector<prometheus::MetricFamily> Take();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Label values for wire ops and status codes: "push_pull", "size_mismatch".
std::string MetricOpLabel(const char* op_name);
std::string MetricCodeLabel(Code code);

// Where a --metrics-listen value says to listen: "PORT" means loopback
// (127.0.0.1:PORT); "HOST:PORT" is taken as the operator wrote it. PORT 0
// picks a free port. kInvalidArgument for anything else.
Result<std::string> ParseMetricsListen(const std::string& text);

// What `collect` gathers, in the Prometheus text exposition format (what
// an endpoint would serve). Any thread.
std::string MetricsAsText(MetricLabels constant,
                          const std::function<void(MetricFamilies&)>& collect);

// A running /metrics endpoint. Stops serving when destroyed (after any
// scrape in progress finishes). Thread-safety: construct and destroy from
// one thread; `collect` runs on the endpoint's threads.
class MetricsEndpoint {
 public:
  using Collect = std::function<void(MetricFamilies&)>;
  // `listen` as ParseMetricsListen takes it. kInvalidArgument for a bad
  // address, kIoError when it cannot listen (port taken).
  static Result<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen, MetricLabels constant, Collect collect);
  ~MetricsEndpoint();

  int port() const { return port_; }
  // http://HOST:PORT/metrics, with the port resolved.
  const std::string& url() const { return url_; }

 private:
  MetricsEndpoint() = default;
  std::shared_ptr<prometheus::Collectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::string url_;
  // Where the destructor connects to wake civetweb's accept loop; length 0
  // when unknown.
  sockaddr_storage wake_address_{};
  socklen_t wake_length_ = 0;
};

}  // namespace shardps

#endif  // SHARDPS_COMMON_METRICS_EXPORT_H_
