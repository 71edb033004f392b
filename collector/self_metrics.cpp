#include "self_metrics.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <tuple>

namespace tally::collector {

void LatencyStat::record_us(uint64_t us) {
  count.fetch_add(1, std::memory_order_relaxed);
  sum_us.fetch_add(us, std::memory_order_relaxed);
  int b = us == 0 ? 0 : std::min(kBuckets - 1, static_cast<int>(std::bit_width(us)) - 1);
  buckets[b].fetch_add(1, std::memory_order_relaxed);
}

double LatencyStat::quantile_s(double q) const {
  uint64_t n = count.load(std::memory_order_relaxed);
  if (n == 0) return 0;
  auto rank = static_cast<uint64_t>(q * static_cast<double>(n - 1));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets[b].load(std::memory_order_relaxed);
    if (seen > rank) return static_cast<double>(uint64_t(1) << (b + 1)) / 1e6;
  }
  return static_cast<double>(uint64_t(1) << kBuckets) / 1e6;
}

namespace {

void family(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

template <typename T>
void sample(std::ostringstream& o, const char* name, const T& v) {
  o << name << ' ' << v.load(std::memory_order_relaxed) << '\n';
}

void summary(std::ostringstream& o, const char* name, const char* help, const LatencyStat& s) {
  family(o, name, "summary", help);
  for (double q : {0.5, 0.9, 0.99})
    o << name << "{quantile=\"" << q << "\"} " << s.quantile_s(q) << '\n';
  o << name << "_sum " << static_cast<double>(s.sum_us.load()) / 1e6 << '\n';
  o << name << "_count " << s.count.load() << '\n';
}

}  // namespace

void SelfMetrics::thread_failed(const std::string& thread, const std::string& error) {
  threads_failed.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(failure_mu_);
  if (failure_.empty())
    failure_ = "thread " + thread + " failed (" + error + "); the collector needs a restart";
}

std::string SelfMetrics::thread_failure() const {
  MutexLock lock(failure_mu_);
  return failure_;
}

const char* limit_name(Limit l) {
  switch (l) {
    case Limit::kBucketSum:
      return "bucket_sum";
    case Limit::kBucketCount:
      return "bucket_count";
    case Limit::kBucketValue:
      return "bucket_value";
    case Limit::kQueryRange:
      return "query_range";
    case Limit::kQueryPoints:
      return "query_points";
    case Limit::kQuerySeries:
      return "query_series";
    case Limit::kQuerySamples:
      return "query_samples";
    case Limit::kQueryDeadline:
      return "query_deadline";
    case Limit::kBatchPoints:
      return "batch_points";
    case Limit::kBatchDefs:
      return "batch_defs";
    case Limit::kSketchBins:
      return "sketch_bins";
    case Limit::kSketchKeySpan:
      return "sketch_key_span";
    case Limit::kBatchBytes:
      return "batch_bytes";
    case Limit::kSeriesPerMetric:
      return "series_per_metric";
    case Limit::kSeriesTotal:
      return "series_total";
    case Limit::kSeriesPerProducer:
      return "series_per_producer";
    case Limit::kHttpConnections:
      return "http_connections";
    case Limit::kCount:
      break;
  }
  return "unknown";
}

bool SelfMetrics::producer_skew(uint64_t producer, double skew_s) {
  // Every batch comes through here: while no producer is listed, a good clock costs no lock.
  if (skewed_producers_.load(std::memory_order_relaxed) == 0 && std::fabs(skew_s) < kSkewNoticeS)
    return false;
  MutexLock lock(skew_mu_);
  if (auto it = skews_.find(producer); it != skews_.end()) {
    it->second = skew_s;
    return false;
  }
  if (std::fabs(skew_s) < kSkewNoticeS || skews_.size() >= kSkewProducers) return false;
  skews_.emplace(producer, skew_s);
  skewed_producers_.store(skews_.size(), std::memory_order_relaxed);
  return true;
}

std::map<uint64_t, double> SelfMetrics::producer_skews() const {
  MutexLock lock(skew_mu_);
  return skews_;
}

std::string SelfMetrics::to_prometheus(int64_t uptime_s) const {
  std::ostringstream o;
  struct C {
    const char* name;
    const char* help;
    const std::atomic<uint64_t>* v;
  };
  const C counters[] = {
      {"tally_batches_received_total", "Batches received over ZeroMQ.", &batches_received},
      {"tally_batches_rejected_total", "Batches rejected as invalid (error Ack).",
       &batches_rejected},
      {"tally_batches_duplicate_total", "Batches already seen (same producer and sequence).",
       &batches_duplicate},
      {"tally_batches_unknown_ref_total",
       "Batches naming a series reference the collector does not know.", &batches_unknown_ref},
      {"tally_batches_unavailable_total", "Batches refused because storage was unavailable.",
       &batches_unavailable},
      {"tally_batches_overloaded_total",
       "Batches answered UNAVAILABLE with a retry-after because the collector held its limit of "
       "accepted but not yet applied bytes.",
       &batches_overloaded},
      {"tally_batch_defs_skipped_total",
       "Series definitions in batches that the collector already held and did not decode again.",
       &defs_skipped},
      {"tally_points_received_total", "Points accepted from all ingest paths.", &points_received},
      {"tally_points_rejected_old_total", "Points older than the longest retention.",
       &points_rejected_old},
      {"tally_points_rejected_future_total", "Points further in the future than allowed.",
       &points_rejected_future},
      {"tally_bytes_received_total", "Bytes of batches received.", &bytes_received},
      {"tally_sdk_dropped_batches_total", "Batches SDK producers report they dropped.",
       &sdk_dropped_batches},
      {"tally_statsd_lines_total", "StatsD metric lines accepted.", &statsd_lines},
      {"tally_statsd_samples_logged_total",
       "StatsD samples routed to the shards after their write-ahead log record was durable.",
       &statsd_samples_logged},
      {"tally_statsd_records_logged_total",
       "StatsD write-ahead log records (one per interval the ingest thread took).",
       &statsd_records_logged},
      {"tally_statsd_samples_unlogged_total",
       "StatsD samples routed without a log record because the log could not be written "
       "(a crash before the next checkpoint loses them).",
       &statsd_samples_unlogged},
      {"tally_statsd_events_total",
       "DogStatsD events (_e{...}) received well-formed (stored as annotations, source "
       "dogstatsd).",
       &statsd_events},
      {"tally_statsd_service_checks_total",
       "DogStatsD service checks (_sc|...) received well-formed; counted, not stored yet.",
       &statsd_service_checks},
      {"tally_statsd_tags_dropped_total",
       "Tags left out of accepted StatsD lines (empty value, too long, not UTF-8, beyond 32).",
       &statsd_tags_dropped},
      {"tally_statsd_names_mapped_total",
       "StatsD metric names and tag keys stored under a mapped spelling.", &statsd_names_mapped},
      {"tally_annotations_dropped_total",
       "Annotations deleted because the store held annotations_max (the oldest by time go).",
       &annotations_dropped},
      {"tally_annotations_expired_total",
       "Annotations deleted because they ended before the longest retention.",
       &annotations_expired},
      {"tally_annotations_queue_dropped_total",
       "DogStatsD events not stored because the annotation queue was full.",
       &annotations_queue_dropped},
      {"tally_coverage_write_errors_total",
       "Writes of the coverage record (when the collector ran) that failed; the next heartbeat "
       "tries again.",
       &coverage_write_errors},
      {"tally_late_points_total", "Points that arrived for a final bucket and were merged into it.",
       &late_points},
      {"tally_buckets_written_total", "Buckets written to storage.", &buckets_written},
      {"tally_flush_errors_total", "Storage transactions that failed.", &flush_errors},
      {"tally_retention_deleted_total", "Buckets deleted by retention.", &retention_deleted},
      {"tally_heap_trims_total",
       "Times the collector gave the allocator's free heap back to the kernel (malloc_trim).",
       &heap_trims},
      {"tally_heap_trimmed_bytes_total", "Resident bytes those trims gave back.",
       &heap_trimmed_bytes},
      {"tally_queries_total", "Queries answered.", &queries},
      {"tally_queries_rejected_total", "Queries rejected as invalid.", &queries_rejected},
      {"tally_live_updates_total",
       "Bucket updates published on the live stream (only for metrics somebody subscribes to).",
       &live_updates},
      {"tally_remote_write_samples_total", "Samples the remote-write receiver accepted.",
       &remote_write_samples},
      {"tally_remote_write_dropped_samples_total",
       "Samples not forwarded: buffer full (oldest dropped), rejected with a 4xx, or unsent at "
       "stop.",
       &remote_write_dropped},
      {"tally_remote_write_failed_requests_total",
       "Remote-write requests that failed (network error or HTTP error status).",
       &remote_write_failed_requests},
      {"tally_threads_failed_total",
       "Collector threads that ended on an exception (event=thread_failed); /healthz is 503.",
       &threads_failed},
      {"tally_buckets_quarantined_total",
       "Buckets that could not be encoded, or merged with what is stored: kept aside and logged, "
       "not written.",
       &buckets_quarantined},
      {"tally_producers_forgotten_total",
       "SDK producers forgotten with their refs: idle for producer_idle, or the least recently "
       "heard beyond producers_max.",
       &producers_forgotten},
      {"tally_series_expired_total",
       "Series with no point for series_idle_expiry that left memory and the catalog's indexes "
       "(their stored data stays queryable).",
       &series_expired},
      {"tally_series_revived_total",
       "Expired (or expiring) series that received a point again and came back with their id.",
       &series_revived},
      {"tally_series_freed_total",
       "Catalog records of expired series freed (no reader could still hold them).", &series_freed},
      {"tally_remote_write_retries_total",
       "Remote-write requests sent again after a 5xx, 429 or network error.",
       &remote_write_retries},
  };
  for (const auto& c : counters) {
    family(o, c.name, "counter", c.help);
    sample(o, c.name, *c.v);
  }
  family(o, "tally_statsd_rejected_total", "counter",
         "StatsD lines rejected (and samples refused by kind), by reason.");
  for (size_t i = 0; i < kStatsdRejectReasons; ++i)
    o << "tally_statsd_rejected_total{reason=\"" << statsd_reject_name(static_cast<StatsdReject>(i))
      << "\"} " << statsd_rejected_by_reason[i].load(std::memory_order_relaxed) << '\n';
  // Samples follow their own family's HELP and TYPE (the text format requires it).
  for (const auto& [name, help, values] :
       {std::tuple{"tally_annotations_total", "Annotations stored, by source.", &annotations},
        std::tuple{"tally_annotations_rejected_total",
                   "Annotations refused as invalid (nothing stored), by source.",
                   &annotations_rejected}}) {
    family(o, name, "counter", help);
    for (size_t i = 0; i < values->size(); ++i)
      o << name << "{source=\"" << (i == 0 ? "api" : "dogstatsd") << "\"} "
        << (*values)[i].load(std::memory_order_relaxed) << '\n';
  }
  family(o, "tally_auth_refused_total", "counter",
         "Connections and requests refused by authentication, by listener and reason (key: a "
         "CURVE key ZAP does not allow; handshake: a CURVE handshake that failed before ZAP, e.g. "
         "a client without keys; request: HTTP tokens / Host / Origin; source: StatsD sources "
         "outside statsd_allowed_sources).");
  struct Refused {
    const char* listener;
    const char* reason;
    const std::atomic<uint64_t>* v;
  };
  for (const Refused& r : {Refused{"ingest", "key", &auth_refused_ingest},
                           Refused{"ingest", "handshake", &auth_refused_ingest_handshake},
                           Refused{"live", "key", &auth_refused_live},
                           Refused{"live", "handshake", &auth_refused_live_handshake},
                           Refused{"http", "request", &auth_refused_http},
                           Refused{"statsd", "source", &statsd_sources_refused}})
    o << "tally_auth_refused_total{listener=\"" << r.listener << "\",reason=\"" << r.reason
      << "\"} " << r.v->load(std::memory_order_relaxed) << '\n';
  family(o, "tally_limit_hits_total", "counter",
         "Inputs that hit a budget or an invariant, by limit (refused, clamped or cut short).");
  for (size_t i = 0; i < static_cast<size_t>(Limit::kCount); ++i)
    o << "tally_limit_hits_total{limit=\"" << limit_name(static_cast<Limit>(i)) << "\"} "
      << limit_hits[i].load(std::memory_order_relaxed) << '\n';
  family(o, "tally_queue_depth", "gauge", "Work items waiting in the shard queues.");
  sample(o, "tally_queue_depth", queue_depth);
  family(o, "tally_ingest_queued_bytes", "gauge",
         "Bytes of accepted batches not yet applied by the shards (bounded by max_queued_bytes).");
  sample(o, "tally_ingest_queued_bytes", queued_bytes);
  family(o, "tally_ingest_queued_bytes_peak", "gauge",
         "The largest tally_ingest_queued_bytes since the collector started.");
  sample(o, "tally_ingest_queued_bytes_peak", queued_bytes_peak);
  family(o, "tally_series", "gauge",
         "Active series: in memory and counted by the cardinality limits.");
  sample(o, "tally_series", series);
  family(o, "tally_series_expiring", "gauge",
         "Expired series whose records are still in memory (waiting for their shard or readers).");
  sample(o, "tally_series_expiring", series_expiring);
  family(o, "tally_producers", "gauge",
         "SDK producers the collector remembers (bounded by producers_max and producer_idle).");
  sample(o, "tally_producers", producers);
  family(o, "tally_producer_refs", "gauge", "Series references of the remembered producers.");
  sample(o, "tally_producer_refs", producer_refs);
  family(o, "tally_live_topics", "gauge",
         "Topic prefixes (metric names) live-stream subscribers want; 0 when nobody listens.");
  sample(o, "tally_live_topics", live_topics);
  family(o, "tally_storage_healthy", "gauge", "1 when storage accepts writes, 0 when it does not.");
  sample(o, "tally_storage_healthy", storage_healthy);
  family(o, "tally_remote_write_queue_samples", "gauge",
         "Samples waiting to be forwarded by remote-write, or in flight.");
  sample(o, "tally_remote_write_queue_samples", remote_write_queue);
  family(o, "tally_producer_clock_skew_seconds", "gauge",
         "A producer's clock minus the collector's, for producers once 10 s or more off (their "
         "points may be dropped as old or future; docs/OPERATIONS.md).");
  for (const auto& [producer, skew] : producer_skews()) {
    char id[17];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(producer));
    o << "tally_producer_clock_skew_seconds{producer=\"" << id << "\"} " << skew << '\n';
  }
  family(o, "tally_uptime_seconds", "gauge", "Seconds since the collector started.");
  o << "tally_uptime_seconds " << uptime_s << '\n';
  summary(o, "tally_flush_latency_seconds", "Time to write one shard transaction.", flush_latency);
  summary(o, "tally_query_latency_seconds", "Time to answer one query.", query_latency);
  return o.str();
}

namespace {
uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

bool trim_heap(SelfMetrics& m, uint64_t min_free_bytes) {
  const struct mallinfo2 mi = mallinfo2();
  const uint64_t in_use = mi.uordblks + mi.hblkhd;
  if (mi.fordblks < min_free_bytes) return false;
  const uint64_t before = resident_bytes();
  malloc_trim(0);
  const uint64_t after = resident_bytes();
  m.heap_trims.fetch_add(1, std::memory_order_relaxed);
  if (before > after) m.heap_trimmed_bytes.fetch_add(before - after, std::memory_order_relaxed);
  spdlog::debug("event=heap_trimmed free_bytes={} in_use_bytes={} rss_before={} rss_after={}",
                mi.fordblks, in_use, before, after);
  return true;
}

std::string memory_to_prometheus(const SeriesCatalog::Memory& catalog) {
  std::ostringstream o;
  const struct mallinfo2 mi = mallinfo2();
  family(o, "tally_heap_bytes", "gauge",
         "The allocator's heap (glibc mallinfo2): in_use is allocated (arenas and mmapped blocks), "
         "free is held in the arenas but not allocated (fragmentation, or kept for reuse).");
  o << "tally_heap_bytes{state=\"in_use\"} " << mi.uordblks + mi.hblkhd << '\n';
  o << "tally_heap_bytes{state=\"free\"} " << mi.fordblks << '\n';
  o << "tally_heap_bytes{state=\"arena\"} " << mi.arena << '\n';
  family(o, "tally_sqlite_memory_bytes", "gauge",
         "Memory SQLite has allocated (sqlite3_memory_used): page caches, schemas, statements.");
  o << "tally_sqlite_memory_bytes " << sqlite3_memory_used() << '\n';
  family(o, "tally_catalog_bytes", "gauge",
         "The series catalog's memory by part (blocks and index capacity).");
  const std::pair<const char*, size_t> parts[] = {{"records", catalog.records},
                                                  {"strings", catalog.strings},
                                                  {"tag_pairs", catalog.tag_pairs},
                                                  {"indexes", catalog.indexes},
                                                  {"expiry", catalog.expiry}};
  for (const auto& [part, bytes] : parts)
    o << "tally_catalog_bytes{part=\"" << part << "\"} " << bytes << '\n';
  family(o, "tally_catalog_metrics", "gauge",
         "Metric names the catalog knows (also those whose series all expired).");
  o << "tally_catalog_metrics " << catalog.metrics << '\n';
  return o.str();
}

}  // namespace tally::collector
