#include <sys/stat.h>

#include <algorithm>
#include <string>

#include "server/shard_server_impl.h"
#include "shardps/shard_stats.h"

// The shard's /metrics: what the frontend publishes once per loop turn, and
// the collector a scrape runs on the exposer's thread (docs/metrics.md).

namespace shardps {

void ShardServer::Impl::PublishGauges() {
  metrics_.parked.Set(parked_.size());
  metrics_.connected_clients.Set(admission_.connections());
  metrics_.exactly_once_clients.Set(client_slots_.used());
  metrics_.replica_subscribers.Set(replica_feed_.subscribers());
  metrics_.replica_blocks.Set(replica_feed_.blocks_sent());
  metrics_.replica_bytes.Set(replica_feed_.bytes_sent());
  metrics_.duplicates.Set(pool_.duplicates() + row_duplicates_ +
                          queues_->duplicates());
  metrics_.applied_clock.Set(clocks_.applied());
  std::vector<ShardMetrics::Worker>& workers = metrics_.workers;
  for (size_t w = 0; w < workers.size(); ++w) {
    workers[w].clock.Set(clocks_.clock_of(static_cast<int>(w)));
    workers[w].state.Set(
        static_cast<uint8_t>(clocks_.state_of(static_cast<int>(w))));
  }
}

Status ShardServer::Impl::StartMetrics() {
  if (options_.metrics_listen.empty()) return Status::Ok();
  {
    // The scrape's own queue objects: a BatchQueue object serves one thread
    // and the frontend's belong to the frontend.
    MutexLock lock(scrape_mu_);
    for (const QueueOption& q : options_.queues) {
      const std::string dir = segment_path_.substr(0, segment_path_.rfind('/'));
      auto queue = BatchQueue::Open(dir + "/" + q.name + ".queue");
      if (!queue.ok()) return queue.status().WithContext("metrics: queue");
      scrape_queues_.emplace_back(q.name, std::move(queue).value());
    }
  }
  const SegmentHeader& h = segment_->header();
  auto endpoint = MetricsEndpoint::Start(
      options_.metrics_listen,
      {{"model", h.model}, {"shard", std::to_string(h.shard_index)}},
      [this](MetricFamilies& out) { CollectMetrics(out); });
  if (!endpoint.ok()) return endpoint.status();
  metrics_endpoint_ = std::move(endpoint).value();
  return Status::Ok();
}

const std::string& ShardServer::Impl::metrics_url() const {
  static const std::string kNone;
  return metrics_endpoint_ ? metrics_endpoint_->url() : kNone;
}

namespace {

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

void ShardServer::Impl::CollectMetrics(MetricFamilies& out) const {
  const SegmentHeader& h = segment_->header();
  out.Gauge("shardps_shard_info",
            "Always 1; the labels say how this shard is configured.", 1,
            {{"consistency", clocks_.spec().ModeName()},
             {"shards", std::to_string(h.shard_count)},
             {"threads", std::to_string(pool_.writers())}});
  metrics_.replies.Collect(ShardMetrics::kReplyNames, out);
  out.Counter("shardps_received_bytes_total",
              "Bytes of request frames received (headers and payloads).",
              static_cast<double>(metrics_.bytes_in.value()));
  out.Counter("shardps_sent_bytes_total",
              "Bytes of reply payloads sent (pulled blocks, rows, and the "
              "stream to host replicas).",
              static_cast<double>(metrics_.bytes_out.value()));
  out.Counter(
      "shardps_block_updates_total",
      "Optimizer steps applied to a block, since the segment was "
      "created.",
      static_cast<double>(h.updates_applied.load(std::memory_order_relaxed)));
  out.Histogram("shardps_apply_duration_seconds",
                "Time to apply one block update in place (optimizer step, "
                "journal included).",
                pool_.ApplyLatency());
  out.Counter("shardps_duplicate_pushes_total",
              "Retried exactly-once pushes skipped because the shard already "
              "had them (per block for dense pushes).",
              static_cast<double>(metrics_.duplicates.value()));
  out.Gauge("shardps_parked_requests",
            "Requests waiting for slower workers (bsp/ssp).",
            static_cast<double>(metrics_.parked.value()));
  out.Gauge("shardps_connected_clients",
            "Connections that have sent a request and not disconnected.",
            static_cast<double>(metrics_.connected_clients.value()));
  out.Gauge("shardps_exactly_once_clients",
            "Clients holding an exactly-once slot on this shard.",
            static_cast<double>(metrics_.exactly_once_clients.value()));
  out.Counter("shardps_refused_handshakes_total",
              "CURVE handshakes refused (unknown key or no CURVE).",
              static_cast<double>(zap_ != nullptr ? zap_->refusals() : 0));

  // Workers: clock, staleness (how far behind the fastest worker, in
  // clocks) and whether connected.
  const auto& workers = metrics_.workers;
  int64_t newest = 0;
  for (const auto& w : workers) newest = std::max(newest, w.clock.value());
  for (size_t i = 0; i < workers.size(); ++i) {
    const MetricLabels worker = {{"worker", std::to_string(i)}};
    out.Gauge("shardps_worker_clock", "Clock calls this shard recorded.",
              static_cast<double>(workers[i].clock.value()), worker);
    out.Gauge("shardps_worker_staleness_clocks",
              "How many clocks this worker is behind the fastest worker.",
              static_cast<double>(newest - workers[i].clock.value()), worker);
    out.Gauge("shardps_worker_connected",
              "1 while the worker is connected, 0 once gone or never seen.",
              workers[i].state.value() ==
                      static_cast<uint8_t>(WorkerStats::State::kConnected)
                  ? 1
                  : 0,
              worker);
  }
  if (clocks_.bsp())
    out.Gauge("shardps_applied_clock", "bsp: clocks applied on every block.",
              static_cast<double>(metrics_.applied_clock.value()));

  out.Gauge("shardps_replica_subscribers",
            "Host replicas subscribed to this shard.",
            static_cast<double>(metrics_.replica_subscribers.value()));
  out.Counter("shardps_replica_streamed_blocks_total",
              "Blocks streamed to host replicas, summed over replicas.",
              static_cast<double>(metrics_.replica_blocks.value()));
  out.Counter("shardps_replica_streamed_bytes_total",
              "Bytes of blocks streamed to host replicas.",
              static_cast<double>(metrics_.replica_bytes.value()));

  struct stat st {};
  if (::stat(segment_path_.c_str(), &st) == 0) {
    out.Gauge("shardps_segment_bytes", "Size of the shard's segment file.",
              static_cast<double>(st.st_size));
    out.Gauge("shardps_segment_resident_bytes",
              "Segment pages held in memory (tmpfs blocks allocated).",
              static_cast<double>(st.st_blocks) * 512);
  }
  out.Gauge("shardps_segment_blocks", "Blocks of this shard.", h.num_blocks);

  if (checkpointer_) {
    const Checkpointer::Record r = checkpointer_->record();
    out.Counter("shardps_checkpoints_total", "Checkpoints written.",
                static_cast<double>(r.written), {{"result", "ok"}});
    out.Counter("shardps_checkpoints_total", "Checkpoints written.",
                static_cast<double>(r.failed), {{"result", "failed"}});
    if (r.last_ok_unix_ms != 0) {
      out.Gauge("shardps_last_checkpoint_timestamp_seconds",
                "When the last successful checkpoint finished (Unix time).",
                static_cast<double>(r.last_ok_unix_ms) * 1e-3);
      out.Gauge("shardps_last_checkpoint_age_seconds",
                "Seconds since the last successful checkpoint finished.",
                static_cast<double>(UnixMs() - r.last_ok_unix_ms) * 1e-3);
      out.Gauge("shardps_last_checkpoint_duration_seconds",
                "How long the last successful checkpoint took.",
                r.last_duration_s);
    }
  }

  {
    MutexLock lock(scrape_mu_);
    for (const auto& [name, queue] : scrape_queues_) {
      const QueueStats q = queue->Stats();
      const MetricLabels l = {{"queue", name}};
      out.Gauge("shardps_queue_depth_batches",
                "Batches committed and not yet taken.",
                static_cast<double>(q.queued), l);
      out.Gauge("shardps_queue_slots", "Slots of the queue.", q.slots, l);
      out.Counter("shardps_queue_produced_batches_total", "Batches committed.",
                  static_cast<double>(q.produced), l);
      out.Counter("shardps_queue_consumed_batches_total", "Batches released.",
                  static_cast<double>(q.consumed), l);
      out.Counter("shardps_queue_producer_blocked_seconds_total",
                  "Time producers waited for a free slot.",
                  q.producer_blocked_s, l);
      out.Counter("shardps_queue_consumer_starved_seconds_total",
                  "Time consumers waited for a batch.", q.consumer_starved_s,
                  l);
      out.Gauge("shardps_queue_closed", "1 once the queue is closed.",
                q.closed ? 1 : 0, l);
    }
  }
  out.Gauge("shardps_uptime_seconds", "Seconds since this server started.",
            Seconds(std::chrono::steady_clock::now() - started_));
  out.ProcessMetrics();
}

}  // namespace shardps
