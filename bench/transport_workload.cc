// transport and latency workloads: shardps Push/Pull/PushPull against raw
// ZeroMQ between the same processes, sizes and transports.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bench/child.h"
#include "bench/cluster.h"
#include "bench/workloads.h"

namespace shardps::bench {

namespace {

const char* DirectionName(Direction d) {
  switch (d) {
    case Direction::kPush:
      return "push";
    case Direction::kPull:
      return "pull";
    case Direction::kPushPull:
      return "pushpull";
  }
  return "?";
}

Direction ParseDirection(const std::string& s) {
  if (s == "pull") return Direction::kPull;
  if (s == "pushpull") return Direction::kPushPull;
  return Direction::kPush;
}

std::string SizeName(uint64_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0)
    return std::to_string(bytes >> 20) + "MiB";
  if (bytes >= 1024 && bytes % 1024 == 0)
    return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

// Runs the same load in `clients` processes at once and adds them up.
Result<LoadResult> MultiProcessLoad(const std::string& kind,
                                    const std::string& target,
                                    const LoadSpec& spec, uint32_t clients) {
  std::vector<Child> children;
  for (uint32_t i = 0; i < clients; ++i) {
    auto c = Child::Spawn(
        {"__client", kind, target, DirectionName(spec.direction),
         std::to_string(spec.bytes), std::to_string(spec.inflight),
         std::to_string(spec.seconds), spec.zero_copy ? "1" : "0"});
    if (!c.ok()) return c.status();
    children.push_back(std::move(c).value());
  }
  LoadResult total;
  for (Child& c : children) {
    auto line = c.ReadLine(std::chrono::seconds(120));
    if (!line.ok()) return line.status().WithContext("client process");
    unsigned long long bytes = 0, requests = 0;
    double seconds = 0;
    if (std::sscanf(line->c_str(), "result %llu %llu %lf", &bytes, &requests,
                    &seconds) != 3)
      return Status(Code::kInternal, "client process said: " + *line);
    total.bytes += bytes;
    total.requests += requests;
    total.seconds = std::max(total.seconds, seconds);
  }
  return total;
}

Figure Throughput(const std::string& name, const LoadSpec& spec,
                  const std::string& transport, uint32_t shards,
                  uint32_t clients, const LoadResult& r,
                  const LoadResult& ceiling, const std::string& ceiling_name) {
  Figure f;
  f.workload = "transport";
  f.name = name;
  f.config = {{"bytes", std::to_string(spec.bytes)},
              {"size", SizeName(spec.bytes)},
              {"inflight", std::to_string(spec.inflight)},
              {"shards", std::to_string(shards)},
              {"clients", std::to_string(clients)},
              {"transport", transport}};
  f.value = r.gbps();
  f.unit = "GB/s";
  f.ceiling = ceiling.gbps();
  f.ceiling_name = ceiling_name;
  f.note =
      std::to_string(static_cast<uint64_t>(r.requests / r.seconds)) + " req/s";
  return f;
}

// A CURVE twin of a plain cluster, when the suite asks for one (tcp only:
// CURVE is pointless on ipc, whose peers are this host's users).
Result<std::optional<BenchCluster>> MaybeCurveCluster(
    const SuiteOptions& o, uint64_t floats, const std::string& transport) {
  if (!o.curve || transport != "tcp") return std::optional<BenchCluster>();
  auto c = BenchCluster::Start(floats, 1, transport, 1, "", /*curve=*/true);
  if (!c.ok()) return c.status();
  return std::optional<BenchCluster>(std::move(c).value());
}

Status SizeSweep(const SuiteOptions& o, const std::string& transport,
                 const Sink& sink, Report* report) {
  for (uint64_t size : o.sizes) {
    auto cluster = BenchCluster::Start(size / sizeof(float), 1, transport);
    if (!cluster.ok()) return cluster.status();
    auto curve = MaybeCurveCluster(o, size / sizeof(float), transport);
    if (!curve.ok()) return curve.status();
    for (int inflight : o.inflight) {
      std::fprintf(stderr, "transport: %s %s, %d in flight\n",
                   transport.c_str(), SizeName(size).c_str(), inflight);
      for (Direction d :
           {Direction::kPush, Direction::kPull, Direction::kPushPull}) {
        LoadSpec spec{d, size, inflight, o.seconds, true};
        auto raw = RawLoad(sink.endpoint, spec);
        if (!raw.ok()) return raw.status();
        if (d == Direction::kPush) {
          LoadSpec copying = spec;
          copying.zero_copy = false;
          auto raw_copy = RawLoad(sink.endpoint, copying);
          if (!raw_copy.ok()) return raw_copy.status();
          report->Add(Throughput("raw-copy-push", spec, transport, 1, 1,
                                 *raw_copy, *raw, "raw zmq zero-copy"));
        }
        auto ps = ShardpsLoad(cluster->cluster_file(), "t", spec);
        if (!ps.ok()) return ps.status();
        report->Add(Throughput(DirectionName(d), spec, transport, 1, 1, *ps,
                               *raw, "raw zmq zero-copy"));
        if (*curve) {
          auto secured = ShardpsLoad((*curve)->cluster_file(), "t", spec,
                                     (*curve)->curve_key());
          if (!secured.ok()) return secured.status();
          report->Add(Throughput(std::string(DirectionName(d)) + "-curve", spec,
                                 transport, 1, 1, *secured, *ps,
                                 "shardps without CURVE"));
        }
      }
    }
  }
  return Status::Ok();
}

// Push throughput over 1..max shards and 1..max client processes, against
// raw ZeroMQ with as many client processes and one sink.
Status Scaling(const SuiteOptions& o, const Sink& sink, Report* report) {
  const uint64_t size = 4 << 20;  // 4 blocks: every shard count holds some
  for (uint32_t shards = 1; shards <= o.max_shards; ++shards) {
    auto cluster = BenchCluster::Start(size / sizeof(float), shards, "tcp");
    if (!cluster.ok()) return cluster.status();
    for (uint32_t clients = 1; clients <= o.max_clients; ++clients) {
      if (shards == 1 && clients == 1) continue;  // in the size sweep
      std::fprintf(stderr, "transport: scaling, %u shard(s), %u client(s)\n",
                   shards, clients);
      LoadSpec spec{Direction::kPush, size, 8, o.seconds, true};
      auto raw = MultiProcessLoad("raw", sink.endpoint, spec, clients);
      if (!raw.ok()) return raw.status();
      auto ps = MultiProcessLoad("ps", cluster->cluster_file(), spec, clients);
      if (!ps.ok()) return ps.status();
      report->Add(Throughput("push", spec, "tcp", shards, clients, *ps, *raw,
                             "raw zmq zero-copy, 1 sink"));
    }
  }
  return Status::Ok();
}

Figure LatencyFigure(const std::string& name, uint64_t bytes,
                     const std::string& transport, const char* stat,
                     double value, double ceiling) {
  Figure f;
  f.workload = "latency";
  f.name = name + "-" + stat;
  f.config = {{"bytes", std::to_string(bytes)},
              {"size", SizeName(bytes)},
              {"transport", transport}};
  f.value = value;
  f.unit = "us";
  f.ceiling = ceiling;
  f.ceiling_name = std::string("raw zmq req/rep ") + stat;
  return f;
}

}  // namespace

Status RunTransport(const SuiteOptions& o, Report* report) {
  for (const std::string& transport : o.transports) {
    auto dir = MakeTempDir();
    if (!dir.ok()) return dir.status();
    auto sink = StartSink(transport, *dir);
    Status s =
        sink.ok() ? SizeSweep(o, transport, *sink, report) : sink.status();
    if (s.ok() && transport == "tcp" && (o.max_shards > 1 || o.max_clients > 1))
      s = Scaling(o, *sink, report);
    if (sink.ok()) sink->child.Stop();
    RemoveTree(*dir);
    SHARDPS_RETURN_IF_ERROR(s);
  }
  return Status::Ok();
}

Status RunLatency(const SuiteOptions& o, Report* report) {
  for (const std::string& transport : o.transports) {
    auto dir = MakeTempDir();
    if (!dir.ok()) return dir.status();
    auto sink = StartSink(transport, *dir);
    if (!sink.ok()) return sink.status();
    for (uint64_t bytes : {uint64_t{64}, uint64_t{4096}}) {
      std::fprintf(stderr, "latency: %s %s\n", transport.c_str(),
                   SizeName(bytes).c_str());
      auto cluster = BenchCluster::Start(bytes / sizeof(float), 1, transport);
      if (!cluster.ok()) return cluster.status();
      auto curve = MaybeCurveCluster(o, bytes / sizeof(float), transport);
      if (!curve.ok()) return curve.status();
      for (Direction d : {Direction::kPush, Direction::kPull}) {
        const LoadSpec spec{d, bytes, 1, o.seconds, true};
        auto raw = RawLoad(sink->endpoint, spec);
        if (!raw.ok()) return raw.status();
        auto ps = ShardpsLoad(cluster->cluster_file(), "t", spec);
        if (!ps.ok()) return ps.status();
        const double raw50 = Percentile(raw->latencies_us, 0.5);
        const double raw99 = Percentile(raw->latencies_us, 0.99);
        report->Add(LatencyFigure(DirectionName(d), bytes, transport, "p50",
                                  Percentile(ps->latencies_us, 0.5), raw50));
        report->Add(LatencyFigure(DirectionName(d), bytes, transport, "p99",
                                  Percentile(ps->latencies_us, 0.99), raw99));
        if (*curve) {
          auto secured = ShardpsLoad((*curve)->cluster_file(), "t", spec,
                                     (*curve)->curve_key());
          if (!secured.ok()) return secured.status();
          for (const char* stat : {"p50", "p99"}) {
            const double p = stat[1] == '5' ? 0.5 : 0.99;
            Figure f = LatencyFigure(std::string(DirectionName(d)) + "-curve",
                                     bytes, transport, stat,
                                     Percentile(secured->latencies_us, p),
                                     Percentile(ps->latencies_us, p));
            f.ceiling_name = std::string("shardps without CURVE ") + stat;
            report->Add(f);
          }
        }
      }
    }
    sink->child.Stop();
    RemoveTree(*dir);
  }
  return Status::Ok();
}

// __client raw|ps TARGET DIRECTION BYTES INFLIGHT SECONDS ZERO_COPY
int RunClientRole(const std::vector<std::string>& args) {
  if (args.size() != 7) {
    std::fprintf(stderr, "__client: bad arguments\n");
    return 2;
  }
  LoadSpec spec;
  spec.direction = ParseDirection(args[2]);
  spec.bytes = std::stoull(args[3]);
  spec.inflight = std::stoi(args[4]);
  spec.seconds = std::stod(args[5]);
  spec.zero_copy = args[6] == "1";
  auto r = args[0] == "raw" ? RawLoad(args[1], spec)
                            : ShardpsLoad(args[1], "t", spec);
  if (!r.ok()) {
    std::fprintf(stderr, "__client: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::printf("result %llu %llu %.6f\n",
              static_cast<unsigned long long>(r->bytes),
              static_cast<unsigned long long>(r->requests), r->seconds);
  return 0;
}

}  // namespace shardps::bench
