// `shardps inspect`: what a segment holds, read without disturbing its
// server (read-only mapping, no lock, seqlock-consistent copies).
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/json.h"
#include "common/checksum.h"
#include "common/segment.h"
#include "common/seqlock.h"

namespace shardps::cli {

namespace {

// How long to wait for a consistent copy of one block before calling it
// torn: a live writer needs microseconds, a dead one forever.
constexpr std::chrono::seconds kBlockReadDeadline{1};

struct InspectFlags {
  std::string segment;
  bool json = false;
};

// This shard's part of one tensor.
struct TensorSummary {
  const TensorEntry* entry = nullptr;
  uint64_t floats_here = 0;
  uint32_t crc = 0;      // CRC-32C of the local blocks' floats, in order
  double l2 = 0;         // L2 norm of the local blocks
  uint64_t updates = 0;  // block updates applied to the local blocks
  bool torn = false;     // a block gave no consistent copy (see torn_why)
  std::string torn_why;  // the first such block and why
  // L2 norm of each optimizer state slot (e.g. Adam's m, v) on this shard,
  // read without the seqlock: a diagnostic, it may mix two updates.
  std::vector<double> state_l2;
};

double SumSquares(const float* p, uint64_t n) {
  const Eigen::Map<const Eigen::ArrayXf> a(p, static_cast<Eigen::Index>(n));
  return a.cast<double>().square().sum();
}

// This shard's rows of one sparse table. Rows are read without any
// versioning (a diagnostic; a live row may be mid-update).
struct TableSummary {
  const TableEntry* entry = nullptr;
  uint64_t rows = 0;           // in use on this shard
  uint64_t full_refusals = 0;  // requests refused because the shard was full
  double l2 = 0;               // L2 norm of the rows in use
  std::vector<double> state_l2;
};

TableSummary SummariseTable(const Segment& seg, uint32_t table) {
  TableSummary out;
  out.entry = &seg.table(table);
  const TableCounters& c = seg.table_counters(table);
  out.rows =
      std::min(c.rows.load(std::memory_order_acquire), out.entry->capacity);
  out.full_refusals = c.full_refusals.load(std::memory_order_relaxed);
  // Rows are packed in creation order, so the first `rows` are the used ones.
  const uint64_t floats = out.rows * out.entry->dim;
  out.l2 = std::sqrt(SumSquares(seg.table_rows(table), floats));
  for (uint32_t k = 0; k < out.entry->state_slots; ++k)
    out.state_l2.push_back(
        std::sqrt(SumSquares(seg.table_state(table, k), floats)));
  return out;
}

// Per-slot norms as "0.12,3.4e-05", or "-" for a stateless optimizer.
std::string StateString(const std::vector<double>& norms) {
  if (norms.empty()) return "-";
  std::string s;
  char buf[32];
  for (double n : norms) {
    std::snprintf(buf, sizeof(buf), "%.4g", n);
    s += (s.empty() ? "" : ",") + std::string(buf);
  }
  return s;
}

std::string ShapeString(const TensorEntry& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.rank; ++d)
    s += (d ? ", " : "") + std::to_string(t.shape[d]);
  return s + "]";
}

TensorSummary Summarise(const Segment& seg, uint32_t tensor) {
  TensorSummary out;
  out.entry = &seg.tensor(tensor);
  std::vector<float> copy;
  double sum_sq = 0;
  for (uint32_t i = 0; i < out.entry->local_blocks; ++i) {
    const uint32_t l = out.entry->first_local + i;
    const BlockEntry& b = seg.block(l);
    copy.resize(b.num_floats);
    uint64_t version = 0;
    // A server killed mid-update leaves a block's version odd until the next
    // server opens the segment; after a bounded wait, report it as torn
    // (its sums then include the torn copy).
    const Status read = ReadConsistent(
        seg.version(l), seg.block_data(l), copy.data(),
        b.num_floats * sizeof(float),
        std::chrono::steady_clock::now() + kBlockReadDeadline, &version);
    if (!read.ok()) {
      if (!out.torn)
        out.torn_why =
            "block " + std::to_string(b.block) + ": " + read.message();
      out.torn = true;
      version = seg.version(l).seq.load(std::memory_order_acquire);
    }
    out.crc = Crc32c(copy.data(), b.num_floats * sizeof(float), out.crc);
    const Eigen::Map<const Eigen::ArrayXf> a(
        copy.data(), static_cast<Eigen::Index>(b.num_floats));
    sum_sq += a.cast<double>().square().sum();
    out.floats_here += b.num_floats;
    out.updates += version / 2;
    out.state_l2.resize(out.entry->state_slots);
    for (uint32_t k = 0; k < out.entry->state_slots; ++k)
      out.state_l2[k] += SumSquares(seg.state_data(l, k), b.num_floats);
  }
  out.l2 = std::sqrt(sum_sq);
  for (double& n : out.state_l2) n = std::sqrt(n);
  return out;
}

// Worker clocks up to the last one that ever clocked: the segment does not
// record the worker count, and unused slots stay 0.
std::vector<int64_t> WorkerClocks(const SegmentHeader& h) {
  std::vector<int64_t> clocks;
  for (size_t w = 0; w < kMaxWorkers; ++w)
    clocks.push_back(h.worker_clocks[w].load(std::memory_order_acquire));
  while (!clocks.empty() && clocks.back() == 0) clocks.pop_back();
  return clocks;
}

std::string ClocksText(const std::vector<int64_t>& clocks, bool json) {
  std::string s;
  for (int64_t c : clocks)
    s += (s.empty() ? "" : json ? ", " : " ") + std::to_string(c);
  return json ? "[" + s + "]" : s.empty() ? "none recorded" : s;
}

// Who serves the segment, told by its flock, never by the recorded pid
// alone: a server killed with -9 leaves its pid behind, but its lock goes
// with its process.
struct ServerState {
  bool known = true;     // false: the lock could not be tested
  bool running = false;  // a process holds the segment's exclusive lock
  std::string text;      // for the "server" line
};

ServerState FindServer(const Segment& seg) {
  ServerState s;
  const SegmentHeader& h = seg.header();
  const int32_t pid = h.owner_pid.load(std::memory_order_relaxed);
  const std::string pid_text = pid > 0 ? "pid " + std::to_string(pid) : "";
  auto held = seg.HeldByServer();
  if (!held.ok()) {
    s.known = false;
    s.text = "unknown (" + held.status().ToString() + ")";
  } else if (*held) {
    s.running = true;
    s.text = "running" + (pid > 0 ? ", " + pid_text : "") +
             " (holds the segment's lock)";
  } else if (h.clean_shutdown.load(std::memory_order_acquire) != 0) {
    s.text = "none (no server holds the segment's lock; clean shutdown)";
  } else {
    s.text = "none (no server holds the segment's lock; the last one" +
             (pid > 0 ? ", " + pid_text + "," : "") +
             " died without a clean shutdown)";
  }
  return s;
}

// The header's counters are only printed: a relaxed load is enough, as no
// other memory is read on the strength of their values.
constexpr auto kShown = std::memory_order_relaxed;

void PrintText(const Segment& seg, const ServerState& server,
               const std::vector<TensorSummary>& tensors,
               const std::vector<TableSummary>& tables) {
  const SegmentHeader& h = seg.header();
  std::printf("segment        %s\n", seg.path().c_str());
  std::printf("model          %s (spec 0x%016" PRIx64 ", format %u)\n", h.model,
              h.spec_hash, h.format_version);
  std::printf("identity       %s\n", seg.identity().ToString().c_str());
  std::printf("shard          %u of %u\n", h.shard_index, h.shard_count);
  std::printf("block size     %" PRIu64 " floats\n", h.block_floats);
  std::printf("optimizer      %s lr=%g\n", h.optimizer, h.lr.load(kShown));
  std::printf("size           %" PRIu64 " bytes (%" PRIu64 " of data)\n",
              h.file_bytes, h.data_bytes);
  std::printf("blocks here    %u of tensors' %u\n", h.num_blocks,
              h.num_tensors);
  std::printf("updates        %" PRIu64 " block updates applied\n",
              h.updates_applied.load(kShown));
  std::printf("opens          %" PRIu64 " (%" PRIu64 " after a crash)\n",
              h.opens.load(kShown), h.unclean_opens.load(kShown));
  const bool bsp = seg.num_tensors() > 0 && seg.tensor(0).accum_slots > 0;
  std::printf("worker clocks  %s\n",
              ClocksText(WorkerClocks(h), false).c_str());
  if (bsp)
    std::printf("bsp            %" PRId64 " clocks applied\n",
                h.applied_clock.load(kShown));
  std::printf("server         %s\n", server.text.c_str());
  std::printf("\n%-24s %-16s %-9s %7s %12s %10s %14s %10s  %s\n", "tensor",
              "shape", "optimizer", "blocks", "floats here", "crc32c",
              "l2 norm", "updates", "state l2 (per slot)");
  for (const TensorSummary& t : tensors)
    std::printf("%-24s %-16s %-9s %3u/%-3u %12" PRIu64
                " %10.8x %14.6g %10" PRIu64 "  %s%s\n",
                t.entry->name, ShapeString(*t.entry).c_str(),
                t.entry->optimizer, t.entry->local_blocks, t.entry->num_blocks,
                t.floats_here, t.crc, t.l2, t.updates,
                StateString(t.state_l2).c_str(), t.torn ? "  (torn)" : "");
  for (const TensorSummary& t : tensors)
    if (t.torn)
      std::printf("torn: '%s' %s%s\n", t.entry->name, t.torn_why.c_str(),
                  server.running ? ""
                                 : " (a server started on the segment puts "
                                   "it back from the journal)");
  if (tables.empty()) return;
  std::printf("\n%-24s %6s %-9s %21s %9s %14s  %s\n", "table", "dim",
              "optimizer", "rows here / capacity", "refusals", "l2 norm",
              "state l2 (per slot)");
  for (const TableSummary& t : tables)
    std::printf("%-24s %6" PRIu64 " %-9s %10" PRIu64 " / %-8" PRIu64
                " %9" PRIu64 " %14.6g  %s\n",
                t.entry->name, t.entry->dim, t.entry->optimizer, t.rows,
                t.entry->capacity, t.full_refusals, t.l2,
                StateString(t.state_l2).c_str());
}

std::string StateJson(const std::vector<double>& norms) {
  std::string s;
  for (double n : norms) s += (s.empty() ? "" : ", ") + JsonNumber(n);
  return s;
}

void PrintJson(const Segment& seg, const ServerState& server,
               const std::vector<TensorSummary>& tensors,
               const std::vector<TableSummary>& tables) {
  const SegmentHeader& h = seg.header();
  std::printf(
      "{\"segment\": %s, \"model\": %s, \"spec_hash\": \"0x%016" PRIx64
      "\", \"format_version\": %u, \"identity\": \"%s\", \"shard\": %u, "
      "\"shards\": %u, "
      "\"block_floats\": %" PRIu64
      ", \"optimizer\": %s, \"lr\": %s, "
      "\"file_bytes\": %" PRIu64
      ", \"blocks\": %u, \"updates_applied\": %" PRIu64 ", \"opens\": %" PRIu64
      ", \"unclean_opens\": %" PRIu64
      ", \"owner_pid\": %d, \"server_running\": %s, \"server\": %s, "
      "\"clean_shutdown\": %s, "
      "\"worker_clocks\": %s, \"applied_clock\": %" PRId64 ", \"tensors\": [",
      JsonString(seg.path()).c_str(), JsonString(h.model).c_str(), h.spec_hash,
      h.format_version, seg.identity().ToString().c_str(), h.shard_index,
      h.shard_count, h.block_floats, JsonString(h.optimizer).c_str(),
      JsonNumber(h.lr.load(kShown)).c_str(), h.file_bytes, h.num_blocks,
      h.updates_applied.load(kShown), h.opens.load(kShown),
      h.unclean_opens.load(kShown), h.owner_pid.load(kShown),
      !server.known    ? "null"
      : server.running ? "true"
                       : "false",
      JsonString(server.text).c_str(),
      h.clean_shutdown.load(kShown) ? "true" : "false",
      ClocksText(WorkerClocks(h), true).c_str(), h.applied_clock.load(kShown));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSummary& t = tensors[i];
    std::string shape = "[";
    for (uint32_t d = 0; d < t.entry->rank; ++d)
      shape += (d ? ", " : "") + std::to_string(t.entry->shape[d]);
    shape += "]";
    std::printf(
        "%s\n  {\"name\": %s, \"shape\": %s, \"optimizer\": %s, "
        "\"state_slots\": %u, \"blocks\": %u, "
        "\"blocks_here\": %u, \"floats_here\": %" PRIu64
        ", \"crc32c\": \"%08x\", \"l2_norm\": %s, \"updates\": %" PRIu64
        ", \"torn\": %s, \"torn_reason\": %s, \"state_l2\": [%s]}",
        i == 0 ? "" : ",", JsonString(t.entry->name).c_str(), shape.c_str(),
        JsonString(t.entry->optimizer).c_str(), t.entry->state_slots,
        t.entry->num_blocks, t.entry->local_blocks, t.floats_here, t.crc,
        JsonNumber(t.l2).c_str(), t.updates, t.torn ? "true" : "false",
        JsonString(t.torn_why).c_str(), StateJson(t.state_l2).c_str());
  }
  std::printf("\n], \"tables\": [");
  for (size_t i = 0; i < tables.size(); ++i) {
    const TableSummary& t = tables[i];
    std::printf("%s\n  {\"name\": %s, \"dim\": %" PRIu64
                ", \"optimizer\": %s, \"rows\": %" PRIu64
                ", \"capacity\": %" PRIu64 ", \"full_refusals\": %" PRIu64
                ", \"l2_norm\": %s, \"state_l2\": [%s]}",
                i == 0 ? "" : ",", JsonString(t.entry->name).c_str(),
                t.entry->dim, JsonString(t.entry->optimizer).c_str(), t.rows,
                t.entry->capacity, t.full_refusals, JsonNumber(t.l2).c_str(),
                StateJson(t.state_l2).c_str());
  }
  std::printf("\n]}\n");
}

int RunInspect(const InspectFlags& flags) {
  auto seg = Segment::OpenReadOnly(flags.segment);
  if (!seg.ok()) return ReportError("inspect", seg.status());
  std::vector<TensorSummary> tensors;
  for (uint32_t i = 0; i < (*seg)->num_tensors(); ++i)
    tensors.push_back(Summarise(**seg, i));
  std::vector<TableSummary> tables;
  for (uint32_t i = 0; i < (*seg)->num_tables(); ++i)
    tables.push_back(SummariseTable(**seg, i));
  const ServerState server = FindServer(**seg);
  if (flags.json) {
    PrintJson(**seg, server, tensors, tables);
  } else {
    PrintText(**seg, server, tensors, tables);
  }
  return 0;
}

}  // namespace

void RegisterInspect(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Show a segment's header, tensors, checksums and norms");
  cmd->add_option("segment", flags->segment, "Segment file (.seg)")->required();
  cmd->add_flag("--json", flags->json, "Print JSON instead of text");
  cmd->callback([flags, exit_code] { *exit_code = RunInspect(*flags); });
}

}  // namespace shardps::cli
