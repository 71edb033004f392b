#include "self_reporter.h"

namespace tally::collector {

const SeriesInfo* SelfReporter::series(const char* name, Kind kind, std::vector<ShardWork>& work) {
  bool created = false;
  auto s = catalog_.get_or_create(name, {}, kind, &created);
  if (!s) return nullptr;  // a user claimed the name with another kind; skip it
  if (created) work[(*s)->shard].new_series.push_back(*s);
  return *s;
}

void SelfReporter::tick() {
  // Deltas go into the current second: it is still open, so they are never late.
  const int64_t t = clock_.now_s();
  std::vector<ShardWork> work(router_.shard_count());
  const std::pair<const char*, const std::atomic<uint64_t>*> counters[] = {
      {"tally.collector.points_received", &metrics_.points_received},
      {"tally.collector.batches_received", &metrics_.batches_received},
      {"tally.collector.batches_rejected", &metrics_.batches_rejected},
      {"tally.collector.duplicates", &metrics_.batches_duplicate},
      {"tally.collector.late_points", &metrics_.late_points},
      {"tally.collector.points_rejected", &metrics_.points_rejected_old},
      {"tally.collector.sdk_dropped_batches", &metrics_.sdk_dropped_batches},
      {"tally.collector.statsd_rejected", &metrics_.statsd_rejected},
      {"tally.collector.buckets_written", &metrics_.buckets_written},
      {"tally.collector.queries", &metrics_.queries},
      {"tally.collector.auth_refused_ingest", &metrics_.auth_refused_ingest},
      {"tally.collector.auth_refused_live", &metrics_.auth_refused_live},
      {"tally.collector.auth_refused_ingest_handshake", &metrics_.auth_refused_ingest_handshake},
      {"tally.collector.auth_refused_live_handshake", &metrics_.auth_refused_live_handshake},
      {"tally.collector.auth_refused_http", &metrics_.auth_refused_http},
  };
  if (last_.empty()) {
    last_.resize(std::size(counters));
    for (size_t i = 0; i < std::size(counters); ++i) last_[i] = counters[i].second->load();
  }
  for (size_t i = 0; i < std::size(counters); ++i) {
    uint64_t v = counters[i].second->load();
    uint64_t delta = v - last_[i];
    last_[i] = v;
    if (const SeriesInfo* s = series(counters[i].first, Kind::kCounter, work))
      work[s->shard].counters.push_back({s, t, static_cast<double>(delta)});
  }
  auto gauge = [&](const char* name, double v) {
    if (const SeriesInfo* s = series(name, Kind::kGauge, work))
      work[s->shard].gauges.push_back({s, t, v, v, v, v, 1});
  };
  gauge("tally.collector.series", static_cast<double>(catalog_.size()));
  gauge("tally.collector.queue_depth", static_cast<double>(metrics_.queue_depth.load()));
  gauge("tally.collector.storage_healthy", static_cast<double>(metrics_.storage_healthy.load()));
  auto mean_ms = [](uint64_t count, uint64_t sum_us, uint64_t& last_count, uint64_t& last_sum) {
    uint64_t dc = count - last_count, ds = sum_us - last_sum;
    last_count = count;
    last_sum = sum_us;
    return dc ? static_cast<double>(ds) / static_cast<double>(dc) / 1000.0 : 0.0;
  };
  gauge("tally.collector.flush_latency_ms",
        mean_ms(metrics_.flush_latency.count.load(), metrics_.flush_latency.sum_us.load(),
                last_flush_count_, last_flush_sum_));
  gauge("tally.collector.query_latency_ms",
        mean_ms(metrics_.query_latency.count.load(), metrics_.query_latency.sum_us.load(),
                last_query_count_, last_query_sum_));
  router_.route(std::move(work));
}

}  // namespace tally::collector
