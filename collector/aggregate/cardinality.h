// CardinalityGuard: the one door through which the ingest paths (SDK batches, StatsD) create
// series, so that no client can grow the collector without bound (docs/SECURITY.md, "Cardinality
// limits").
//
// A point for an existing series always goes to that series. A new tag combination becomes a new
// series only while its metric holds fewer than max_series_per_metric series, the collector fewer
// than max_series_total, and its producer has created fewer than max_new_series_per_minute this
// minute. Beyond a limit the combination folds into one series of the same metric and kind,
// tagged __overflow__="true": the metric's totals stay exact, only the breakdown is lost. Each
// fold is counted per metric (tally_series_overflow_total{metric=...}) and by limit
// (tally_limit_hits_total{limit="series_per_metric"|"series_total"|"series_per_producer"}), and
// logged at most once a second (event=series_overflow). An overflow series itself is created
// beyond the limits: at most one per metric.
//
// The limits are read from the collector's LiveLimits at each new tag combination, so a reload
// changes them at once; a lowered limit never touches existing series (they keep counting), only
// new combinations beyond it fold.
//
// Thread-safety: all methods are thread-safe (the catalog has its own lock, LiveLimits is
// thread-safe; the counters here are guarded by mu_).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aggregate/catalog.h"
#include "live_limits.h"
#include "self_metrics.h"
#include "tally/common/mutex.h"

namespace tally::collector {

struct CardinalityLimits {
  int64_t max_series_per_metric = 200000;
  int64_t max_series_total = 1000000;
  int64_t max_new_series_per_minute = 100000;  // per producer
};

class CardinalityGuard {
 public:
  static constexpr std::string_view kOverflowKey = "__overflow__";
  static constexpr std::string_view kOverflowValue = "true";
  // The producer StatsD samples count against (StatsD has no producer id of its own).
  static constexpr uint64_t kStatsdProducer = ~uint64_t{0};

  // `limits` must outlive the guard.
  CardinalityGuard(SeriesCatalog& catalog, const LiveLimits& limits, SelfMetrics& metrics)
      : catalog_(catalog), limits_(limits), metrics_(metrics) {}

  struct Admitted {
    const SeriesInfo* series = nullptr;
    bool created = false;   // a new series (the shard must learn it)
    bool overflow = false;  // folded into the metric's overflow series
  };
  // The series a point for metric+tags (canonical) goes to. invalid_argument on a kind
  // conflict, as SeriesCatalog::get_or_create. rate_limited = false skips the per-producer
  // limit (write-ahead log replay: the minute it was sent in has passed).
  Result<Admitted> admit(std::string_view metric, const Tags& tags, Kind kind, uint64_t producer,
                         int64_t now_s, bool rate_limited = true);

  static bool is_overflow(const SeriesInfo& s);
  // The limits now in effect.
  CardinalityLimits limits() const;

  struct Snapshot {
    uint64_t created = 0;   // series created through the guard since start
    uint64_t overflow = 0;  // folds, every metric
    std::vector<std::pair<std::string, uint64_t>> overflow_by_metric;  // largest first
    std::vector<std::pair<int64_t, uint64_t>>
        created_per_minute;  // (minute start, n), oldest first
  };
  Snapshot snapshot(int64_t now_s) const;
  // tally_series_overflow_total{metric=...} and tally_series_created_total (overflow series
  // included), Prometheus text.
  std::string to_prometheus() const;

 private:
  static constexpr size_t kMinutes = 60;  // created-per-minute history
  void count_created(int64_t now_s) REQUIRES(mu_);
  Result<Admitted> fold(std::string_view metric, Kind kind, Limit why, uint64_t producer,
                        int64_t now_s);

  SeriesCatalog& catalog_;
  const LiveLimits& limits_;
  SelfMetrics& metrics_;

  mutable Mutex mu_;
  int64_t minute_ GUARDED_BY(mu_) = 0;
  std::unordered_map<uint64_t, int64_t> created_by_producer_ GUARDED_BY(mu_);  // this minute
  std::array<std::pair<int64_t, uint64_t>, kMinutes> per_minute_ GUARDED_BY(mu_){};
  std::map<std::string, uint64_t, std::less<>> overflow_ GUARDED_BY(mu_);  // per metric
  uint64_t created_ GUARDED_BY(mu_) = 0;
  uint64_t overflow_total_ = 0;  // GUARDED_BY(mu_)
  int64_t last_log_s_ = 0;       // GUARDED_BY(mu_)
  uint64_t unlogged_ = 0;        // GUARDED_BY(mu_)
};

}  // namespace tally::collector
