#include "ingest/statsd_router.h"

#include <spdlog/spdlog.h>

namespace tally::collector {

void StatsdRouter::operator()(std::vector<StatsdSample>&& samples) {
  std::vector<ShardWork> work(router_.shard_count());
  const int64_t now = clock_.now_s();
  uint64_t accepted = 0, rejected = 0, old = 0, future = 0;
  // Observations of one distribution series in one second share a sketch.
  std::map<std::pair<uint64_t, int64_t>, Sketch> sketches;
  for (auto& s : samples) {
    if (s.timestamp_s < now - limits_.max_age_s) {
      ++old;
      continue;
    }
    if (s.timestamp_s > now + limits_.max_future_s) {
      ++future;
      continue;
    }
    Kind kind = s.type == StatsdType::kCounter ? Kind::kCounter
                : s.type == StatsdType::kGauge ? Kind::kGauge
                                               : Kind::kDistribution;
    bool created = false;
    Result<const SeriesInfo*> info = Status::internal("unset");
    if (guard_) {
      auto a = guard_->admit(s.metric, s.tags, kind, CardinalityGuard::kStatsdProducer, now);
      if (a) {
        info = a->series;
        created = a->created;
      } else {
        info = a.status();
      }
    } else {
      info = catalog_.get_or_create(s.metric, s.tags, kind, &created);
    }
    if (!info) {
      ++rejected;
      if (now != last_log_s_) {
        last_log_s_ = now;
        spdlog::warn("event=statsd_reject reason=kind_conflict metric={} detail=\"{}\"", s.metric,
                     info.status().message());
      }
      continue;
    }
    const SeriesInfo* si = *info;
    auto& w = work[si->shard];
    if (created) w.new_series.push_back(si);
    const int64_t t = s.timestamp_s;
    switch (kind) {
      case Kind::kCounter:
        w.counters.push_back({si, t, s.value});
        break;
      case Kind::kGauge:
        w.gauges.push_back({si, t, s.value, s.value, s.value, s.value, 1});
        break;
      case Kind::kDistribution:
        // The sampled weight: `count` observations; the sum grows by value * sum_weight
        // (statsd_parser.h: the Agent's histograms count trunc(1/rate) but sum value/rate).
        // value x weight can pass DBL_MAX (1e308 at @0.5): the sketch holds its sum there.
        switch (sketches[{si->id, t}].add_with_sum(s.value, s.count, s.value * s.sum_weight)) {
          case Sketch::Added::kExact:
            break;
          case Sketch::Added::kClamped:
            metrics_.hit(Limit::kBucketSum);
            break;
          case Sketch::Added::kRefused:
            metrics_.hit(Limit::kBucketValue);
            break;
        }
        break;
    }
    ++accepted;
  }
  for (auto& [key, sketch] : sketches) {
    const SeriesInfo* si = catalog_.by_id(key.first);
    work[si->shard].dists.push_back({si, key.second, std::move(sketch)});
  }
  router_.route(std::move(work));
  metrics_.points_received.fetch_add(accepted, std::memory_order_relaxed);
  rejected_.fetch_add(rejected, std::memory_order_relaxed);
  metrics_.points_rejected_old.fetch_add(old, std::memory_order_relaxed);
  metrics_.points_rejected_future.fetch_add(future, std::memory_order_relaxed);
}

}  // namespace tally::collector
