#include "ingest/statsd_router.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmath>
#include <stdexcept>

#include "aggregate/bucket.h"

namespace tally::collector {

StatsdRouter::StatsdRouter(SeriesCatalog& catalog, size_t shard_count, SelfMetrics& metrics,
                           IngestLimits limits, const Clock& clock, CardinalityGuard* guard,
                           const LiveLimits* live)
    : catalog_(catalog),
      shard_count_(shard_count),
      metrics_(metrics),
      limits_(limits),
      clock_(clock),
      guard_(guard),
      live_(live),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (wake_fd_ < 0) throw std::runtime_error("statsd: eventfd failed");
  open_.per_shard.resize(shard_count_);
}

StatsdRouter::~StatsdRouter() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

StatsdInterval StatsdRouter::take() {
  StatsdInterval out;
  {
    MutexLock lock(mu_);
    out = std::move(open_);
    open_ = StatsdInterval{};
    open_.per_shard.resize(shard_count_);
    at_.clear();
    uint64_t drained;
    (void)!::read(wake_fd_, &drained, sizeof drained);
  }
  return out;
}

void StatsdRouter::operator()(std::vector<StatsdSample>&& samples) {
  const int64_t now = clock_.now_s();
  int64_t max_age_s = limits_.max_age_s, max_future_s = limits_.max_future_s;
  if (live_) {
    const auto l = live_->get();
    max_age_s = l->max_age_s();
    max_future_s = l->max_future_s;
  }
  uint64_t accepted = 0, rejected = 0, old = 0, future = 0, clamped = 0, refused = 0;
  bool was_empty = false;
  {
    MutexLock lock(mu_);
    was_empty = open_.samples == 0 && open_.empty();
    for (auto& s : samples) {
      // A counter sample from the listener's line cache stands for `count` lines.
      const uint64_t lines = s.type == StatsdType::kCounter ? std::max<uint64_t>(1, s.count) : 1;
      if (s.timestamp_s < now - max_age_s) {
        old += lines;
        continue;
      }
      if (s.timestamp_s > now + max_future_s) {
        future += lines;
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
        rejected += lines;
        if (now != last_log_s_) {
          last_log_s_ = now;
          spdlog::warn("event=statsd_reject reason=kind_conflict metric={} detail=\"{}\"", s.metric,
                       info.status().message());
        }
        continue;
      }
      const SeriesInfo* si = *info;
      auto& w = open_.per_shard[si->shard];
      if (created) w.new_series.push_back(si);
      const int64_t t = s.timestamp_s;
      auto [it, fresh] = at_.try_emplace(Key{si, t}, 0);
      switch (kind) {
        case Kind::kCounter: {
          if (!std::isfinite(s.value)) {
            refused += lines;
            continue;
          }
          if (fresh) {
            it->second = w.counters.size();
            w.counters.push_back({si, t, s.value});
          } else {
            // Summed here as the bucket would sum them, held at +-DBL_MAX like the bucket.
            auto how = BucketAgg::Added::kExact;
            double& sum = w.counters[it->second].value;
            sum = BucketAgg::saturating_add(sum, s.value, &how);
            if (how == BucketAgg::Added::kClamped) ++clamped;
          }
          break;
        }
        case Kind::kGauge: {
          if (!std::isfinite(s.value)) {
            ++refused;
            continue;
          }
          if (fresh) {
            it->second = w.gauges.size();
            w.gauges.push_back({si, t, s.value, s.value, s.value, s.value, 1});
          } else {
            GaugeIn& g = w.gauges[it->second];
            auto how = BucketAgg::Added::kExact;
            g.last = s.value;
            g.min = std::min(g.min, s.value);
            g.max = std::max(g.max, s.value);
            g.sum = BucketAgg::saturating_add(g.sum, s.value, &how);
            if (how == BucketAgg::Added::kClamped) ++clamped;
            ++g.count;
          }
          break;
        }
        case Kind::kDistribution: {
          if (fresh) {
            it->second = w.dists.size();
            w.dists.push_back({si, t, Sketch()});
          }
          // The sampled weight: `count` observations; the sum grows by value * sum_weight
          // (statsd_parser.h: the Agent's histograms count trunc(1/rate) but sum value/rate).
          // value x weight can pass DBL_MAX (1e308 at @0.5): the sketch holds its sum there.
          switch (
              w.dists[it->second].sketch.add_with_sum(s.value, s.count, s.value * s.sum_weight)) {
            case Sketch::Added::kExact:
              break;
            case Sketch::Added::kClamped:
              ++clamped;
              break;
            case Sketch::Added::kRefused:
              ++refused;
              break;
          }
          break;
        }
      }
      accepted += lines;
    }
    open_.samples += accepted;
    if (was_empty && !open_.empty()) {
      const uint64_t one = 1;
      (void)!::write(wake_fd_, &one, sizeof one);
    }
  }
  if (clamped) metrics_.hit(Limit::kBucketSum, clamped);
  if (refused) metrics_.hit(Limit::kBucketValue, refused);
  rejected_.fetch_add(rejected, std::memory_order_relaxed);
  metrics_.points_rejected_old.fetch_add(old, std::memory_order_relaxed);
  metrics_.points_rejected_future.fetch_add(future, std::memory_order_relaxed);
}

}  // namespace tally::collector
