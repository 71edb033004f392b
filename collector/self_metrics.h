// SelfMetrics: the collector's own health counters, exposed at /metrics in Prometheus text format
// and fed back into Tally itself as `tally.collector.*` series (the "Collector health" dashboard).
// Thread-safety: every field is an atomic; any thread may update and read.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace tally::collector {

// A latency summary: count and sum in microseconds plus a coarse log2 histogram for quantiles.
struct LatencyStat {
  static constexpr int kBuckets = 32;  // 1 us .. 2^31 us
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_us{0};
  std::atomic<uint64_t> buckets[kBuckets] = {};
  void record_us(uint64_t us);
  // Upper bound (seconds) of the bucket holding quantile q.
  double quantile_s(double q) const;
};

struct SelfMetrics {
  // ingest
  std::atomic<uint64_t> batches_received{0};
  std::atomic<uint64_t> batches_rejected{0};
  std::atomic<uint64_t> batches_duplicate{0};
  std::atomic<uint64_t> batches_unknown_ref{0};
  std::atomic<uint64_t> batches_unavailable{0};
  std::atomic<uint64_t> batches_overloaded{0};  // UNAVAILABLE: the queued-bytes budget is full
  std::atomic<uint64_t> defs_skipped{0};        // definitions of known refs not decoded again
  std::atomic<int64_t> queued_bytes{0};         // accepted, not yet applied (max_queued_bytes)
  std::atomic<int64_t> queued_bytes_peak{0};    // the largest queued_bytes seen
  std::atomic<uint64_t> points_received{0};
  std::atomic<uint64_t> points_rejected_old{0};
  std::atomic<uint64_t> points_rejected_future{0};
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> sdk_dropped_batches{0};  // as reported by producers
  std::atomic<uint64_t> statsd_lines{0};
  std::atomic<uint64_t> statsd_rejected{0};
  // aggregation and storage
  std::atomic<uint64_t> late_points{0};
  std::atomic<uint64_t> buckets_written{0};
  std::atomic<uint64_t> flush_errors{0};
  std::atomic<uint64_t> retention_deleted{0};
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> series{0};
  std::atomic<int64_t> storage_healthy{1};
  LatencyStat flush_latency;
  // query
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> queries_rejected{0};
  LatencyStat query_latency;
  // live
  std::atomic<uint64_t> live_updates{0};
  // remote-write forwarding (forward/remote_write.h)
  std::atomic<uint64_t> remote_write_samples{0};  // accepted by the receiver
  std::atomic<uint64_t> remote_write_dropped{0};  // buffer full, rejected (4xx) or unsent at stop
  std::atomic<uint64_t> remote_write_failed_requests{0};  // every request that did not succeed
  std::atomic<uint64_t> remote_write_retries{0};
  std::atomic<int64_t> remote_write_queue{0};  // samples waiting or in flight

  std::string to_prometheus(int64_t uptime_s) const;
};

}  // namespace tally::collector
