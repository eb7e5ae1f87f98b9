#include "common/metrics_export.h"

#include <dirent.h>
#include <netdb.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

namespace shardps {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Reads the fields of /proc/self/stat after the command name (which may
// hold spaces and parentheses, hence the last ')').
std::vector<std::string> ProcSelfStat() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields;
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return fields;
  std::istringstream rest(line.substr(close + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;  // fields[0] is field 3 (state)
}

// Seconds since the epoch at which the kernel booted (/proc/stat btime).
double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

double OpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double n = 0;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // the directory stream's own descriptor
}

class CallbackCollectable : public prometheus::Collectable {
 public:
  CallbackCollectable(MetricLabels constant, MetricsEndpoint::Collect collect)
      : constant_(std::move(constant)), collect_(std::move(collect)) {}
  std::vector<MetricFamily> Collect() const override {
    MetricFamilies families(constant_);
    try {
      collect_(families);
    } catch (const std::exception& e) {
      // A failing collector must not take the process down; the scrape
      // then shows what was gathered before the failure.
      std::fprintf(stderr, "shardps: metrics collection failed: %s\n",
                   e.what());
    }
    return families.Take();
  }

 private:
  const MetricLabels constant_;
  const MetricsEndpoint::Collect collect_;
};

}  // namespace

struct MetricFamilies::Impl {
  MetricLabels constant;
  std::vector<MetricFamily> families;
  std::map<std::string, size_t> index;  // name -> families[i]

  ClientMetric& Add(const std::string& name, const std::string& help,
                    MetricType type, const MetricLabels& labels) {
    auto it = index.find(name);
    if (it == index.end()) {
      it = index.emplace(name, families.size()).first;
      MetricFamily family;
      family.name = name;
      family.help = help;
      family.type = type;
      families.push_back(std::move(family));
    }
    ClientMetric metric;
    for (const auto& [k, v] : constant) metric.label.push_back({k, v});
    for (const auto& [k, v] : labels) metric.label.push_back({k, v});
    families[it->second].metric.push_back(std::move(metric));
    return families[it->second].metric.back();
  }
};

MetricFamilies::MetricFamilies(MetricLabels constant)
    : impl_(std::make_unique<Impl>()) {
  impl_->constant = std::move(constant);
}
MetricFamilies::~MetricFamilies() = default;
MetricFamilies::MetricFamilies(MetricFamilies&&) noexcept = default;

void MetricFamilies::Counter(const std::string& name, const std::string& help,
                             double value, const MetricLabels& labels) {
  impl_->Add(name, help, MetricType::Counter, labels).counter.value = value;
}

void MetricFamilies::Gauge(const std::string& name, const std::string& help,
                           double value, const MetricLabels& labels) {
  impl_->Add(name, help, MetricType::Gauge, labels).gauge.value = value;
}

void MetricFamilies::Histogram(const std::string& name, const std::string& help,
                               const LatencyHistogram::Snapshot& snapshot,
                               const MetricLabels& labels) {
  ClientMetric::Histogram& h =
      impl_->Add(name, help, MetricType::Histogram, labels).histogram;
  uint64_t cumulative = 0;
  for (int i = 0; i <= LatencyHistogram::kBounds; ++i) {
    cumulative += snapshot.counts[static_cast<size_t>(i)];
    const double bound =
        i < LatencyHistogram::kBounds
            ? static_cast<double>(
                  LatencyHistogram::kBoundsNs[static_cast<size_t>(i)]) *
                  1e-9
            : std::numeric_limits<double>::infinity();
    h.bucket.push_back({cumulative, bound});
  }
  h.sample_count = cumulative;
  h.sample_sum = snapshot.sum_seconds;
}

void MetricFamilies::ProcessMetrics() {
  const std::vector<std::string> f = ProcSelfStat();
  // Fields (man 5 proc), counted from 1: utime 14, stime 15, starttime 22,
  // vsize 23, rss 24; f[0] is field 3.
  if (f.size() < 22) return;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  Counter("process_cpu_seconds_total",
          "User and system CPU time spent, in seconds.",
          (std::stod(f[11]) + std::stod(f[12])) / ticks);
  Gauge("process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
        BootTimeSeconds() + std::stod(f[19]) / ticks);
  Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
        std::stod(f[20]));
  Gauge("process_resident_memory_bytes",
        "Resident memory size in bytes (mapped shared-memory pages touched "
        "by this process count too).",
        std::stod(f[21]) * page);
  Gauge("process_open_fds", "Number of open file descriptors.", OpenFds());
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0)
    Gauge("process_max_fds", "Maximum number of open file descriptors.",
          static_cast<double>(limit.rlim_cur));
}

std::vector<MetricFamily> MetricFamilies::Take() {
  impl_->index.clear();
  return std::move(impl_->families);
}

std::string MetricOpLabel(const char* op_name) {
  std::string out;
  for (const char* p = op_name; *p != '\0'; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (std::isupper(c)) {
      if (!out.empty()) out += '_';
      out += static_cast<char>(std::tolower(c));
    } else if (std::isalnum(c)) {
      out += static_cast<char>(c);
    } else {
      out += '_';
    }
  }
  return out;
}

std::string MetricCodeLabel(Code code) {
  std::string out;
  for (const char* p = CodeName(code); *p != '\0'; ++p) {
    if (*p == '/') continue;  // "i/o error" -> "io_error"
    out += *p == ' ' ? '_' : *p;
  }
  return out;
}

Result<std::string> ParseMetricsListen(const std::string& text) {
  const size_t colon = text.rfind(':');
  const std::string host =
      colon == std::string::npos ? "127.0.0.1" : text.substr(0, colon);
  const std::string port =
      colon == std::string::npos ? text : text.substr(colon + 1);
  const auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument,
                  "metrics listen address '" + text + "': " + why +
                      " (want PORT for loopback, or HOST:PORT)");
  };
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    return bad("the port must be a number from 0 to 65535");
  if (host.empty()) return bad("the host is empty");
  if (host.find_first_of(" /") != std::string::npos)
    return bad("the host is not an address or a name");
  return host + ":" + port;
}

namespace {

// civetweb's accept loop polls its socket for up to 2 s between looks at
// its stop flag, so stopping an exposer takes up to 2 s unless a connection
// wakes it. This connects to the endpoint and closes at once, every few
// milliseconds until `done`; each connection closes before any byte is
// sent, so no worker waits on it.
void WakeUntil(const sockaddr_storage& address, socklen_t length,
               const std::atomic<bool>& done) {
  while (!done.load(std::memory_order_acquire)) {
    const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    (void)::connect(fd, reinterpret_cast<const sockaddr*>(&address), length);
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Where to connect to reach an endpoint bound to host:port (loopback for a
// wildcard bind); false when the host does not resolve.
bool WakeAddress(const std::string& host, int port, sockaddr_storage* out,
                 socklen_t* length) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  const bool wildcard = host == "0.0.0.0" || host == "[::]" || host == "::";
  std::string name = wildcard ? "127.0.0.1" : host;
  if (name.size() > 2 && name.front() == '[')
    name = name.substr(1, name.size() - 2);
  addrinfo* found = nullptr;
  if (::getaddrinfo(name.c_str(), std::to_string(port).c_str(), &hints,
                    &found) != 0)
    return false;
  std::memcpy(out, found->ai_addr, found->ai_addrlen);
  *length = found->ai_addrlen;
  ::freeaddrinfo(found);
  return true;
}

}  // namespace

std::string MetricsAsText(MetricLabels constant,
                          const std::function<void(MetricFamilies&)>& collect) {
  MetricFamilies families(std::move(constant));
  collect(families);
  return prometheus::TextSerializer().Serialize(families.Take());
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen, MetricLabels constant, Collect collect) {
  auto address = ParseMetricsListen(listen);
  if (!address.ok()) return address.status();
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  try {
    // Two threads: a scrape in progress never delays the next one, and
    // Prometheus scrapes a target at most once at a time.
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(*address, 2);
  } catch (const std::exception& e) {
    return Status(Code::kIoError,
                  "cannot serve metrics on " + *address + ": " + e.what());
  }
  const std::vector<int> ports = endpoint->exposer_->GetListeningPorts();
  if (ports.empty())
    return Status(Code::kIoError,
                  "cannot serve metrics on " + *address + ": no port bound");
  endpoint->port_ = ports[0];
  const std::string host = address->substr(0, address->rfind(':'));
  endpoint->url_ =
      "http://" + host + ":" + std::to_string(endpoint->port_) + "/metrics";
  // Resolved now: a lookup at shutdown may take long (NSS).
  if (!WakeAddress(host, endpoint->port_, &endpoint->wake_address_,
                   &endpoint->wake_length_))
    endpoint->wake_length_ = 0;
  endpoint->collectable_ = std::make_shared<CallbackCollectable>(
      std::move(constant), std::move(collect));
  endpoint->exposer_->RegisterCollectable(endpoint->collectable_);
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() {
  if (wake_length_ == 0) return;  // exposer_ stops in its own time
  std::atomic<bool> stopped{false};
  std::thread waker(
      [this, &stopped] { WakeUntil(wake_address_, wake_length_, stopped); });
  // The exposer first: its threads may be inside Collect.
  exposer_.reset();
  stopped.store(true, std::memory_order_release);
  waker.join();
}

}  // namespace shardps
