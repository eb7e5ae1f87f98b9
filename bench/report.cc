#include "bench/report.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/posix_file.h"

namespace shardps::bench {

namespace {

std::string Json(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

std::string Number(double v) {
  if (!(v == v) || v > 1e300 || v < -1e300) return "null";
  std::ostringstream os;
  os.precision(6);
  os << v;
  return os.str();
}

std::string ConfigValue(const Figure& f, const std::string& key) {
  for (const auto& [k, v] : f.config)
    if (k == key) return v;
  return "";
}

}  // namespace

std::string Figure::ConfigString() const {
  std::string s;
  for (const auto& [k, v] : config) s += (s.empty() ? "" : " ") + k + "=" + v;
  return s;
}

void Report::PrintTable(std::FILE* out) const {
  std::fprintf(out, "%-12s %-14s %-44s %12s %-5s %12s %-22s %6s\n", "workload",
               "figure", "config", "value", "unit", "ceiling", "ceiling is",
               "ratio");
  for (const Figure& f : figures_) {
    if (!f.note.empty() && f.value == 0) {
      std::fprintf(out, "%-12s %-14s %-44s %s\n", f.workload.c_str(),
                   f.name.c_str(), f.ConfigString().c_str(), f.note.c_str());
      continue;
    }
    std::fprintf(out, "%-12s %-14s %-44s %12.3f %-5s", f.workload.c_str(),
                 f.name.c_str(), f.ConfigString().c_str(), f.value,
                 f.unit.c_str());
    if (f.ceiling > 0) {
      std::fprintf(out, " %12.3f %-22s %6.2f", f.ceiling,
                   f.ceiling_name.c_str(), f.ratio());
    }
    if (!f.note.empty()) std::fprintf(out, "  %s", f.note.c_str());
    std::fprintf(out, "\n");
  }
}

Status Report::WriteJson(const std::string& path,
                         const std::string& suite) const {
  std::ofstream out(path);
  if (!out) return ErrnoStatus("write " + path, errno);
  out << "{\n  \"suite\": " << Json(suite)
      << ",\n  \"machine\": {\"cpu\": " << Json(MachineDescription())
      << ", \"cores\": " << std::thread::hardware_concurrency()
      << "},\n  \"figures\": [";
  for (size_t i = 0; i < figures_.size(); ++i) {
    const Figure& f = figures_[i];
    out << (i ? "," : "") << "\n    {\"workload\": " << Json(f.workload)
        << ", \"name\": " << Json(f.name) << ", \"config\": {";
    for (size_t k = 0; k < f.config.size(); ++k)
      out << (k ? ", " : "") << Json(f.config[k].first) << ": "
          << Json(f.config[k].second);
    out << "}, \"value\": " << Number(f.value) << ", \"unit\": " << Json(f.unit)
        << ", \"ceiling\": " << Number(f.ceiling)
        << ", \"ceiling_name\": " << Json(f.ceiling_name)
        << ", \"ratio\": " << Number(f.ratio())
        << ", \"note\": " << Json(f.note) << "}";
  }
  out << "\n  ]\n}\n";
  out.close();
  if (!out) return Status(Code::kIoError, "write " + path + " failed");
  return Status::Ok();
}

Status Report::WritePlots(const std::string& dir) const {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return Status(Code::kUnavailable, "gnuplot not installed; no plots");
  ::mkdir(dir.c_str(), 0755);
  // Throughput vs payload: one series per op plus its ceiling, taken from
  // the transport rows with the most requests in flight over tcp, 1 shard.
  std::map<std::string, std::ofstream> series;
  for (const Figure& f : figures_) {
    if (f.workload != "transport" || ConfigValue(f, "clients") != "1" ||
        ConfigValue(f, "shards") != "1" ||
        ConfigValue(f, "transport") != "tcp" ||
        ConfigValue(f, "inflight") != "8")
      continue;
    const std::string bytes = ConfigValue(f, "bytes");
    if (f.name == "raw-copy-push") continue;  // a ceiling variant, not ours
    auto& s = series[f.name];
    if (!s.is_open()) s.open(dir + "/transport-" + f.name + ".dat");
    s << bytes << " " << f.value << " " << f.ceiling << "\n";
  }
  std::ostringstream gp;
  gp << "set terminal pngcairo size 900,560\n"
     << "set output '" << dir << "/transport.png'\n"
     << "set logscale x 2\nset xlabel 'payload'\n"
     << "set xtics ('4K' 4096, '64K' 65536, '1M' 1048576, '16M' 16777216, "
        "'64M' 67108864)\n"
     << "set ylabel 'GB/s'\nset key top left\nset grid\n"
     << "set title 'shardps vs raw ZeroMQ (tcp, 8 in flight, 1 shard)'\n"
     << "plot ";
  bool first = true;
  for (auto& [name, s] : series) {
    s.close();
    const std::string dat = dir + "/transport-" + name + ".dat";
    gp << (first ? "" : ", ") << "'" << dat << "' using 1:2 with linespoints "
       << "title '" << name << "', '" << dat << "' using 1:3 with lines dt 2 "
       << "title '" << name << " ceiling (raw zmq)'";
    first = false;
  }
  gp << "\n";
  // Step time, classic vs co-processor.
  std::ofstream steps(dir + "/coprocessor.dat");
  int row = 0;
  for (const Figure& f : figures_) {
    if (f.workload != "coprocessor" || f.name != "step") continue;
    const uint64_t floats = std::stoull(ConfigValue(f, "floats"));
    steps << row++ << " \"" << (floats >> 20) << "M floats, "
          << ConfigValue(f, "workers") << " worker(s)\" " << f.ceiling << " "
          << f.value << "\n";
  }
  steps.close();
  if (row > 0)
    gp << "set output '" << dir << "/coprocessor.png'\n"
       << "unset logscale x\nset style data histograms\n"
       << "set style fill solid 0.8\nset xlabel ''\nset ylabel 'ms per step'\n"
       << "set title 'training step: classic pull vs co-processor view'\n"
       << "plot '" << dir << "/coprocessor.dat' using 3:xtic(2) title "
       << "'classic (push + pull)', '' using 4 title "
       << "'co-processor (push + ModelView)'\n";
  const std::string script = dir + "/plots.gp";
  std::ofstream(script) << gp.str();
  if (first && row == 0) return Status::Ok();
  if (std::system(("gnuplot '" + script + "'").c_str()) != 0)
    return Status(Code::kIoError, "gnuplot failed on " + script);
  return Status::Ok();
}

std::string MachineDescription() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) +
         " cores";
}

}  // namespace shardps::bench
