// SelfMetrics: the collector's own health counters, exposed at /metrics in Prometheus text format
// and fed back into Tally itself as `tally.collector.*` series (the "Collector health" dashboard).
// Thread-safety: every field is an atomic; any thread may update and read.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "aggregate/catalog.h"
#include "ingest/statsd_parser.h"
#include "tally/common/mutex.h"

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

// The budgets and invariants the collector enforces on what it is sent; each hit is counted as
// tally_limit_hits_total{limit="<name>"} (docs/CORRECTNESS.md lists them).
enum class Limit {
  kBucketSum,          // a bucket's sum would pass +-DBL_MAX: held there
  kBucketCount,        // a bucket's count would overflow uint64: the value is refused
  kBucketValue,        // a NaN or infinite value reached a bucket: refused
  kQueryRange,         // /api/query from/to outside the accepted range
  kQueryPoints,        // points per series of one query
  kQuerySeries,        // series one query reads
  kQuerySamples,       // stored buckets one query reads
  kQueryDeadline,      // a query ran past its deadline
  kBatchPoints,        // points in one SDK batch
  kBatchDefs,          // series definitions in one SDK batch
  kSketchBins,         // bins in one distribution point
  kSketchKeySpan,      // key span (highest - lowest key) of one distribution point
  kBatchBytes,         // an SDK batch larger than max_batch_bytes
  kSeriesPerMetric,    // a new series beyond max_series_per_metric: folded into __overflow__
  kSeriesTotal,        // a new series beyond max_series_total: folded
  kSeriesPerProducer,  // a producer's new series beyond max_new_series_per_minute: folded
  kHttpConnections,    // an HTTP connection shed: beyond http_max_connections waiting (503)
  kCount,
};
const char* limit_name(Limit l);

struct SelfMetrics {
  std::atomic<uint64_t> limit_hits[static_cast<size_t>(Limit::kCount)] = {};
  void hit(Limit l, uint64_t n = 1) {
    limit_hits[static_cast<size_t>(l)].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t hits(Limit l) const {
    return limit_hits[static_cast<size_t>(l)].load(std::memory_order_relaxed);
  }
  // Buckets that could not be written (they did not encode, or what they merge into did not
  // decode): kept aside and logged, never a failed flush.
  std::atomic<uint64_t> buckets_quarantined{0};

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
  // StatsD samples (after aggregation per interval: one per line, sets one per bucket) routed
  // once their log record was durable, the records, and samples routed without a record
  // because the log could not be written.
  std::atomic<uint64_t> statsd_samples_logged{0};
  std::atomic<uint64_t> statsd_records_logged{0};
  std::atomic<uint64_t> statsd_samples_unlogged{0};
  std::atomic<uint64_t> statsd_rejected{0};  // all reasons together
  std::array<std::atomic<uint64_t>, kStatsdRejectReasons> statsd_rejected_by_reason{};
  std::atomic<uint64_t> statsd_events{0};
  std::atomic<uint64_t> statsd_service_checks{0};
  std::atomic<uint64_t> statsd_tags_dropped{0};
  std::atomic<uint64_t> statsd_names_mapped{0};
  // annotations (storage/annotation_store.h), by source: [0] api, [1] dogstatsd
  std::array<std::atomic<uint64_t>, 2> annotations{};           // stored
  std::array<std::atomic<uint64_t>, 2> annotations_rejected{};  // invalid, not stored
  std::atomic<uint64_t> annotations_dropped{0};                 // deleted beyond annotations_max
  std::atomic<uint64_t> annotations_expired{0};                 // deleted by retention
  std::atomic<uint64_t> annotations_queue_dropped{0};  // DogStatsD events: the queue was full
  // coverage (storage/coverage.h)
  std::atomic<uint64_t> coverage_write_errors{0};  // a start, heartbeat or stop not written
  // aggregation and storage
  std::atomic<uint64_t> late_points{0};
  std::atomic<uint64_t> buckets_written{0};
  std::atomic<uint64_t> flush_errors{0};
  std::atomic<uint64_t> retention_deleted{0};
  std::atomic<uint64_t> heap_trims{0};          // trim_heap() calls that gave memory back
  std::atomic<uint64_t> heap_trimmed_bytes{0};  // resident bytes they gave back
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> series{0};
  std::atomic<int64_t> producers{0};      // SDK producers the ingest remembers (ProducerTable)
  std::atomic<int64_t> producer_refs{0};  // their series refs
  std::atomic<uint64_t> producers_forgotten{0};  // idle, or least recent beyond producers_max
  // Idle-series expiry (aggregate/catalog.h): series written as expired by their shard, series
  // that came back after being unlinked, records freed, and records on their way out.
  std::atomic<uint64_t> series_expired{0};
  std::atomic<uint64_t> series_revived{0};
  std::atomic<uint64_t> series_freed{0};
  std::atomic<int64_t> series_expiring{0};
  std::atomic<int64_t> storage_healthy{1};
  LatencyStat flush_latency;
  // query
  std::atomic<uint64_t> queries{0};
  std::atomic<uint64_t> queries_rejected{0};
  LatencyStat query_latency;
  // live
  std::atomic<uint64_t> live_updates{0};
  std::atomic<int64_t> live_topics{0};  // topic prefixes somebody subscribes to
  // remote-write forwarding (forward/remote_write.h)
  std::atomic<uint64_t> remote_write_samples{0};  // accepted by the receiver
  std::atomic<uint64_t> remote_write_dropped{0};  // buffer full, rejected (4xx) or unsent at stop
  std::atomic<uint64_t> remote_write_failed_requests{0};  // every request that did not succeed
  std::atomic<uint64_t> remote_write_retries{0};
  std::atomic<int64_t> remote_write_queue{0};  // samples waiting or in flight

  // authentication (auth/): refused CURVE handshakes (ZAP: a key not allowed; handshake: failed
  // before ZAP, e.g. a client without keys), HTTP requests, StatsD sources
  std::atomic<uint64_t> auth_refused_ingest{0};
  std::atomic<uint64_t> auth_refused_live{0};
  std::atomic<uint64_t> auth_refused_ingest_handshake{0};
  std::atomic<uint64_t> auth_refused_live_handshake{0};
  std::atomic<uint64_t> auth_refused_http{0};
  std::atomic<uint64_t> statsd_sources_refused{0};

  // Threads that ended on an exception (thread_guard.h); the first one is /healthz's reason.
  std::atomic<uint64_t> threads_failed{0};
  void thread_failed(const std::string& thread, const std::string& error);
  std::string thread_failure() const;  // empty while no thread failed

  // Producers whose clock is far from the collector's: a batch's sent_unix_ms minus the
  // collector's time on receipt, in seconds (positive: the producer's clock is ahead; time a batch
  // waited in a queue reads as negative skew). A producer is listed once it is kSkewNoticeS off
  // and then follows every batch it sends (so a fixed clock shows as ~0); at most kSkewProducers
  // are listed. Returns true the first time a producer is listed (the caller logs it once).
  static constexpr double kSkewNoticeS = 10;
  static constexpr size_t kSkewProducers = 1000;
  bool producer_skew(uint64_t producer, double skew_s);
  std::map<uint64_t, double> producer_skews() const;

  std::string to_prometheus(int64_t uptime_s) const;

 private:
  mutable Mutex skew_mu_;
  std::map<uint64_t, double> skews_ GUARDED_BY(skew_mu_);
  std::atomic<size_t> skewed_producers_{0};  // skews_.size(), read without the lock

  mutable Mutex failure_mu_;
  std::string failure_ GUARDED_BY(failure_mu_);
};

// The collector's memory by where it is held (/metrics): the allocator's heap in use and what it
// keeps free, SQLite's own allocations (its page caches among them), and the catalog's parts.
std::string memory_to_prometheus(const SeriesCatalog::Memory& catalog);

// Gives the allocator's free heap back to the kernel (glibc malloc_trim) when it holds more than
// min_free_bytes. The collector's threads each allocate
// from their own arena and free much of it on another thread (a batch decoded by the ingest
// thread, applied and freed by a shard; a flush's updates): glibc returns free space only from the
// top of an arena, so at 500 k series 500 MB of free arena space stayed resident beside 130 MB in
// use. Called every few seconds from the main thread; true when it trimmed (counted in m).
bool trim_heap(SelfMetrics& m, uint64_t min_free_bytes = 16u << 20);

}  // namespace tally::collector
