#include "aggregate/cardinality.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

namespace tally::collector {
namespace {

// A Prometheus label value: backslash, quote and newline escaped.
std::string label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

const Tags& overflow_tags() {
  static const Tags kTags = {
      {std::string(CardinalityGuard::kOverflowKey), std::string(CardinalityGuard::kOverflowValue)}};
  return kTags;
}

}  // namespace

bool CardinalityGuard::is_overflow(const SeriesInfo& s) {
  auto t = s.tags();
  return t.size() == 1 && t[0].key == kOverflowKey && t[0].value == kOverflowValue;
}

Result<CardinalityGuard::Admitted> CardinalityGuard::admit(std::string_view metric,
                                                           const Tags& tags, Kind kind,
                                                           uint64_t producer, int64_t now_s,
                                                           bool rate_limited) {
  // Existing series keep working whatever the limits.
  auto found = catalog_.find(metric, tags, kind);
  if (found) return Admitted{*found, false, false};
  if (found.status().code() != StatusCode::kNotFound) return found.status();

  const CardinalityLimits limits = this->limits();
  const int64_t minute = now_s - now_s % 60;
  if (rate_limited && limits.max_new_series_per_minute > 0) {
    bool over = false;
    {
      MutexLock lock(mu_);
      if (minute > minute_) {  // a caller a moment behind never resets the new minute
        minute_ = minute;
        created_by_producer_.clear();
      }
      auto it = created_by_producer_.find(producer);
      over = it != created_by_producer_.end() && it->second >= limits.max_new_series_per_minute;
    }
    if (over) return fold(metric, kind, Limit::kSeriesPerProducer, producer, now_s);
  }

  CreateBounds bounds;
  bounds.max_per_metric = static_cast<size_t>(std::max<int64_t>(0, limits.max_series_per_metric));
  bounds.max_total = static_cast<size_t>(std::max<int64_t>(0, limits.max_series_total));
  bool created = false;
  CreateRefusal refused = CreateRefusal::kNone;
  auto r = catalog_.get_or_create(metric, tags, kind, bounds, &created, &refused);
  if (!r) return r.status();
  if (refused != CreateRefusal::kNone)
    return fold(
        metric, kind,
        refused == CreateRefusal::kPerMetric ? Limit::kSeriesPerMetric : Limit::kSeriesTotal,
        producer, now_s);
  if (created) {
    MutexLock lock(mu_);
    if (minute > minute_) {
      minute_ = minute;
      created_by_producer_.clear();
    }
    ++created_by_producer_[producer];
    count_created(now_s);
  }
  return Admitted{*r, created, false};
}

CardinalityLimits CardinalityGuard::limits() const {
  const auto l = limits_.get();
  return {l->input.series_max_per_metric, l->input.series_max_total,
          l->input.series_max_new_per_minute};
}

void CardinalityGuard::count_created(int64_t now_s) {
  const int64_t minute = now_s - now_s % 60;
  auto& slot = per_minute_[static_cast<size_t>(minute / 60) % kMinutes];
  if (slot.first != minute) slot = {minute, 0};
  ++slot.second;
  ++created_;
}

Result<CardinalityGuard::Admitted> CardinalityGuard::fold(std::string_view metric, Kind kind,
                                                          Limit why, uint64_t producer,
                                                          int64_t now_s) {
  metrics_.hit(why);
  bool created = false;
  auto r = catalog_.get_or_create(metric, overflow_tags(), kind, &created);
  if (!r) return r.status();
  MutexLock lock(mu_);
  if (created) count_created(now_s);
  ++overflow_total_;
  auto it = overflow_.find(metric);
  if (it == overflow_.end()) it = overflow_.emplace(std::string(metric), 0).first;
  ++it->second;
  ++unlogged_;
  if (now_s != last_log_s_) {
    last_log_s_ = now_s;
    spdlog::warn(
        "event=series_overflow metric={} limit={} producer={} folded={} note=\"new tag "
        "combinations go to the metric's {}=\\\"{}\\\" series\"",
        metric, limit_name(why),
        producer == kStatsdProducer ? std::string("statsd") : std::to_string(producer), unlogged_,
        kOverflowKey, kOverflowValue);
    unlogged_ = 0;
  }
  return Admitted{*r, created, true};
}

CardinalityGuard::Snapshot CardinalityGuard::snapshot(int64_t now_s) const {
  Snapshot s;
  MutexLock lock(mu_);
  s.created = created_;
  s.overflow = overflow_total_;
  s.overflow_by_metric.assign(overflow_.begin(), overflow_.end());
  std::sort(s.overflow_by_metric.begin(), s.overflow_by_metric.end(),
            [](const auto& a, const auto& b) {
              return a.second != b.second ? a.second > b.second : a.first < b.first;
            });
  const int64_t minute = now_s - now_s % 60;
  for (size_t i = kMinutes; i-- > 0;) {
    const int64_t m = minute - static_cast<int64_t>(i) * 60;
    const auto& slot = per_minute_[static_cast<size_t>(m / 60) % kMinutes];
    s.created_per_minute.emplace_back(m, slot.first == m ? slot.second : 0);
  }
  return s;
}

std::string CardinalityGuard::to_prometheus() const {
  std::ostringstream o;
  MutexLock lock(mu_);
  o << "# HELP tally_series_created_total Series created by the ingest paths within the "
       "cardinality limits.\n# TYPE tally_series_created_total counter\n"
    << "tally_series_created_total " << created_ << '\n';
  o << "# HELP tally_series_overflow_total New tag combinations folded into their metric's "
       "__overflow__=\"true\" series by a cardinality limit, by metric.\n"
       "# TYPE tally_series_overflow_total counter\n";
  for (const auto& [metric, n] : overflow_)
    o << "tally_series_overflow_total{metric=\"" << label_value(metric) << "\"} " << n << '\n';
  return o.str();
}

}  // namespace tally::collector
