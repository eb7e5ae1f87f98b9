#include "common/metrics_export.h"

#include <catch2/catch.hpp>
#include <string>

#include "common/metric_counters.h"
#include "common/op_metrics.h"
#include "tests/metrics_scrape.h"

namespace shardps {
namespace {

using test::HttpGet;
using test::ParseMetrics;

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE(
    "a latency histogram puts each observation in the first bucket "
    "whose bound holds it",
    "[metrics]") {
  LatencyHistogram h;
  h.ObserveNs(1);               // bucket 0 (<= 10 us)
  h.ObserveNs(10'000);          // bucket 0: bounds are inclusive
  h.ObserveNs(10'001);          // bucket 1 (<= 25 us)
  h.ObserveNs(3'000'000);       // bucket 8 (<= 5 ms)
  h.ObserveNs(20'000'000'000);  // +Inf
  const LatencyHistogram::Snapshot s = h.Read();
  CHECK(s.count == 5);
  CHECK(s.counts[0] == 2);
  CHECK(s.counts[1] == 1);
  CHECK(s.counts[8] == 1);
  CHECK(s.counts[LatencyHistogram::kBounds] == 1);
  CHECK(s.sum_seconds == Approx(20.003020002).epsilon(1e-9));

  LatencyHistogram::Snapshot merged = s;
  merged.Merge(s);
  CHECK(merged.count == 10);
  CHECK(merged.counts[0] == 4);
}

TEST_CASE(
    "metric families serialise as the Prometheus text format, "
    "histograms cumulative with +Inf",
    "[metrics]") {
  LatencyHistogram h;
  h.ObserveNs(5'000);
  h.ObserveNs(30'000);
  h.ObserveNs(30'000);
  const std::string text =
      MetricsAsText({{"model", "m"}}, [&](MetricFamilies& out) {
        out.Counter("t_total", "help t", 3, {{"op", "push"}});
        out.Counter("t_total", "ignored", 4, {{"op", "pull"}});
        out.Gauge("g", "help g", 1.5);
        out.Histogram("lat_seconds", "help lat", h.Read(), {{"op", "push"}});
      });
  INFO(text);
  CHECK(Has(text, "# TYPE t_total counter"));
  CHECK(Has(text, "# HELP t_total help t"));
  CHECK(!Has(text, "ignored"));  // one family, the first help text
  const auto series = ParseMetrics(text);
  CHECK(series.at(R"(t_total{model="m",op="push"})") == 3);
  CHECK(series.at(R"(t_total{model="m",op="pull"})") == 4);
  CHECK(series.at(R"(g{model="m"})") == 1.5);
  CHECK(series.at(R"(lat_seconds_bucket{model="m",op="push",le="1e-05"})") ==
        1);
  CHECK(series.at(R"(lat_seconds_bucket{model="m",op="push",le="2.5e-05"})") ==
        1);
  CHECK(series.at(R"(lat_seconds_bucket{model="m",op="push",le="5e-05"})") ==
        3);
  CHECK(series.at(R"(lat_seconds_bucket{model="m",op="push",le="+Inf"})") == 3);
  CHECK(series.at(R"(lat_seconds_count{model="m",op="push"})") == 3);
  CHECK(series.at(R"(lat_seconds_sum{model="m",op="push"})") == Approx(65e-6));
}

TEST_CASE("op metrics label ops and codes the Prometheus way", "[metrics]") {
  CHECK(MetricOpLabel("PushPull") == "push_pull");
  CHECK(MetricOpLabel("Hello") == "hello");
  CHECK(MetricCodeLabel(Code::kIoError) == "io_error");
  CHECK(MetricCodeLabel(Code::kSizeMismatch) == "size_mismatch");

  OpMetrics ops;
  ops.Count(wire::Op::Push, Code::kOk, MetricNowNs());
  ops.Count(wire::Op::Push, Code::kSizeMismatch, 0);
  ops.Count(static_cast<wire::Op>(200), Code::kBadMessage, 0);
  CHECK(ops.count(wire::Op::Push) == 2);
  CHECK(ops.errors() == 2);
  const std::string text = MetricsAsText({}, [&](MetricFamilies& out) {
    ops.Collect({"r_total", "h", "d_seconds", "h"}, out);
  });
  INFO(text);
  const auto series = ParseMetrics(text);
  CHECK(series.at(R"(r_total{op="push",code="ok"})") == 1);
  CHECK(series.at(R"(r_total{op="push",code="size_mismatch"})") == 1);
  CHECK(series.at(R"(r_total{op="other",code="bad_message"})") == 1);
  // Ops a worker uses appear before they are used; others only once seen.
  CHECK(series.at(R"(r_total{op="pull",code="ok"})") == 0);
  CHECK(series.count(R"(r_total{op="stats",code="ok"})") == 0);
  // Only the timed request has a latency.
  CHECK(series.at(R"(d_seconds_count{op="push"})") == 1);
}

TEST_CASE("a metrics listen address is PORT for loopback or HOST:PORT",
          "[metrics]") {
  CHECK(*ParseMetricsListen("9400") == "127.0.0.1:9400");
  CHECK(*ParseMetricsListen("0") == "127.0.0.1:0");
  CHECK(*ParseMetricsListen("0.0.0.0:9400") == "0.0.0.0:9400");
  CHECK(*ParseMetricsListen("node3:9400") == "node3:9400");
  for (const char* bad :
       {"", "abc", "70000", "host:", ":9400", "1.2.3.4:x", "a b:1", "123456"}) {
    auto parsed = ParseMetricsListen(bad);
    INFO(bad);
    REQUIRE(!parsed.ok());
    CHECK(parsed.status().code() == Code::kInvalidArgument);
    CHECK(Has(parsed.status().message(), "HOST:PORT"));
  }
}

TEST_CASE(
    "a metrics endpoint serves what its collector gathers, and a "
    "taken port is an error",
    "[metrics]") {
  int scrapes = 0;
  auto endpoint = MetricsEndpoint::Start(
      "127.0.0.1:0", {{"model", "m"}}, [&scrapes](MetricFamilies& out) {
        out.Counter("scrapes_total", "Scrapes so far.", ++scrapes);
        out.ProcessMetrics();
      });
  REQUIRE(endpoint.ok());
  REQUIRE((*endpoint)->port() > 0);
  CHECK((*endpoint)->url() ==
        "http://127.0.0.1:" + std::to_string((*endpoint)->port()) + "/metrics");
  for (int i = 1; i <= 2; ++i) {
    const auto body = HttpGet((*endpoint)->url());
    REQUIRE(body.has_value());
    const auto series = ParseMetrics(*body);
    CHECK(series.at(R"(scrapes_total{model="m"})") == i);
    CHECK(series.at(R"(process_resident_memory_bytes{model="m"})") > 0);
    CHECK(series.at(R"(process_open_fds{model="m"})") > 0);
    CHECK(series.at(R"(process_start_time_seconds{model="m"})") > 1.7e9);
  }

  auto taken =
      MetricsEndpoint::Start("127.0.0.1:" + std::to_string((*endpoint)->port()),
                             {}, [](MetricFamilies&) {});
  REQUIRE(!taken.ok());
  CHECK(taken.status().code() == Code::kIoError);
  CHECK(Has(taken.status().message(), "cannot serve metrics on 127.0.0.1:"));

  auto bad = MetricsEndpoint::Start("nope", {}, [](MetricFamilies&) {});
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace shardps
