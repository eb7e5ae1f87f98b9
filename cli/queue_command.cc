// `shardps queue create|inspect|close`: manage batch queue files.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/json.h"
#include "shardps/batch_queue.h"

namespace shardps::cli {

namespace {

struct QueueFlags {
  std::string path;
  uint32_t slots = 16;
  uint64_t slot_bytes = 1 << 20;
  uint32_t producers = 0;
  bool json = false;
};

void PrintStats(const std::string& path, const QueueStats& s,
                const std::string& meta, bool json) {
  if (json) {
    std::printf(
        "{\"queue\": %s, \"slots\": %u, \"slot_bytes\": %llu, \"produced\": "
        "%llu, \"consumed\": %llu, \"queued\": %llu, \"skipped\": %llu, "
        "\"refused\": %llu, \"producer_blocked_s\": %s, "
        "\"consumer_starved_s\": %s, \"closed\": %s, \"producers\": %u, "
        "\"ended_producers\": %u, \"meta\": %s}\n",
        JsonString(path).c_str(), s.slots,
        static_cast<unsigned long long>(s.slot_bytes),
        static_cast<unsigned long long>(s.produced),
        static_cast<unsigned long long>(s.consumed),
        static_cast<unsigned long long>(s.queued),
        static_cast<unsigned long long>(s.skipped),
        static_cast<unsigned long long>(s.refused),
        JsonNumber(s.producer_blocked_s).c_str(),
        JsonNumber(s.consumer_starved_s).c_str(), s.closed ? "true" : "false",
        s.producers, s.ended_producers, JsonString(meta).c_str());
    return;
  }
  std::printf("queue            %s%s\n", path.c_str(),
              s.closed ? " (closed)" : "");
  std::printf("slots            %u x %llu bytes\n", s.slots,
              static_cast<unsigned long long>(s.slot_bytes));
  std::printf("batches          %llu produced, %llu consumed, %llu queued\n",
              static_cast<unsigned long long>(s.produced),
              static_cast<unsigned long long>(s.consumed),
              static_cast<unsigned long long>(s.queued));
  std::printf(
      "dropped          %llu dead-producer claims skipped, %llu "
      "pushes refused after close\n",
      static_cast<unsigned long long>(s.skipped),
      static_cast<unsigned long long>(s.refused));
  std::printf(
      "waiting          producers blocked %.3f s, consumers starved "
      "%.3f s\n",
      s.producer_blocked_s, s.consumer_starved_s);
  if (s.producers > 0)
    std::printf("producers        %u of %u ended\n", s.ended_producers,
                s.producers);
  if (!meta.empty()) std::printf("meta             %s\n", meta.c_str());
}

}  // namespace

void RegisterQueue(CLI::App& app, int* exit_code) {
  CLI::App* cmd =
      app.add_subcommand("queue", "Create, inspect or close a batch queue");
  cmd->require_subcommand(1);
  auto flags = std::make_shared<QueueFlags>();

  CLI::App* create = cmd->add_subcommand("create", "Create a queue file");
  create->add_option("path", flags->path, "Queue file (e.g. /dev/shm/q)")
      ->required();
  create->add_option("--slots", flags->slots, "Batches the queue holds")
      ->capture_default_str()
      ->check(CLI::Range(1u, 65536u));
  create
      ->add_option("--slot-bytes", flags->slot_bytes,
                   "Bytes of one batch (features + labels, float32)")
      ->capture_default_str();
  create
      ->add_option("--producers", flags->producers,
                   "Producers that mark their end (feed --end-at-eof); the "
                   "stream ends after that many marks. 0: only close ends it")
      ->capture_default_str()
      ->check(CLI::Range(0u, 1u << 20));
  create->callback([flags, exit_code] {
    auto q = BatchQueue::Create(flags->path, flags->slots, flags->slot_bytes,
                                flags->producers);
    if (!q.ok()) {
      *exit_code = ReportError("queue create", q.status());
      return;
    }
    std::printf("created %s: %u slots of %llu bytes\n", flags->path.c_str(),
                flags->slots,
                static_cast<unsigned long long>(flags->slot_bytes));
  });

  CLI::App* inspect = cmd->add_subcommand("inspect", "Show a queue's counters");
  inspect->add_option("path", flags->path, "Queue file")->required();
  inspect->add_flag("--json", flags->json, "Print JSON");
  inspect->callback([flags, exit_code] {
    auto q = BatchQueue::Open(flags->path);
    if (!q.ok()) {
      *exit_code = ReportError("queue inspect", q.status());
      return;
    }
    PrintStats(flags->path, (*q)->Stats(), (*q)->Meta(), flags->json);
  });

  CLI::App* close = cmd->add_subcommand(
      "close", "Close a queue: its producers stop with 'closed'");
  close->add_option("path", flags->path, "Queue file")->required();
  close->callback([flags, exit_code] {
    auto q = BatchQueue::Open(flags->path);
    if (!q.ok()) {
      *exit_code = ReportError("queue close", q.status());
      return;
    }
    (*q)->Close();
  });
}

}  // namespace shardps::cli
