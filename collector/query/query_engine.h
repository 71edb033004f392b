// QueryEngine: range queries, histograms and heatmaps over stored (+) open buckets.
//
// The planner picks the coarsest stored resolution that divides the step and still holds the
// range's start; series are matched in memory (SeriesCatalog), read from their shards in
// parallel (Shard::read), combined per series into step buckets, then across the series of each
// group by the function (docs/API.md has the table of what each function means per kind).
// The budgets (QueryLimits) and how long each resolution is kept are read from a LiveLimits at each
// check, so a reload changes them for the next query.
// Thread-safety: const methods, callable from any number of HTTP threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "live_limits.h"
#include "storage/coverage.h"
#include "tally/common/label_matcher.h"
#include "tally/common/query_fn.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

// A filter of the query API is a LabelMatcher over a series' tags (common/label_matcher.h).
using TagFilter = LabelMatcher;

// Parses "key=value", "key!=value", "key=~regex", "key!~regex" (RE2, whole value); the key must
// be a valid tag key.
Result<TagFilter> parse_filter(std::string_view text);
// True when the tags satisfy every filter. An absent tag has the value "" for !=, =~ and !~; `=`
// never matches an absent tag (even `key=`).
bool filter_matches(const std::vector<TagFilter>& filters, const Tags& tags);
bool filter_matches(const std::vector<TagFilter>& filters, const TagsView& tags);

struct RangeQuery {
  std::string metric;
  std::vector<TagFilter> filters;
  std::vector<std::string> group_by;
  int64_t from = 0;
  int64_t to = 0;
  int64_t step = 0;      // 0 = auto
  int64_t points = 300;  // target number of points for auto step
  Fn fn = Fn::kSum;
};

struct SeriesResult {
  Tags group;  // the group-by keys present on the group's series
  std::vector<std::pair<int64_t, double>> points;
  std::optional<int64_t> partial_from;
};

struct RangeResult {
  Kind kind = Kind::kCounter;
  int64_t from = 0, to = 0, step = 0, resolution = 0;
  std::vector<SeriesResult> series;
};

struct HistogramResult {
  uint64_t count = 0;
  double sum = 0, min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0;
  std::vector<Sketch::Bin> buckets;
  int64_t from = 0, to = 0;
};

struct HeatmapColumn {
  int64_t time = 0;
  uint64_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0;
  std::vector<Sketch::Bin> buckets;
};
struct HeatmapResult {
  int64_t from = 0, to = 0, step = 0;
  std::vector<HeatmapColumn> columns;
};

// Merges adjacent bins until at most max_bins remain (for drawing).
std::vector<Sketch::Bin> coarsen_bins(const std::vector<Sketch::Bin>& bins, size_t max_bins);

// What one query may ask for (config InputLimits); over a budget it is answered
// invalid_argument (HTTP 400) with the budget named, and counted in SelfMetrics.
struct QueryLimits {
  int64_t max_points = 100000;     // steps per series
  int64_t max_series = 100000;     // series read
  int64_t max_samples = 50000000;  // stored buckets read (series x buckets at the resolution)
  int64_t timeout_ms = 30000;      // checked between the phases of a query
  // How far ahead of its arrival a point may be (config max_future): an expired series whose last
  // point arrived before from - max_future_s has no bucket at or after `from`.
  int64_t max_future_s = 600;
};

// The series of one metric a query reads: those in memory (the catalog's) and those that expired
// and are in storage only (idle-series expiry, catalog.h), each once. It keeps every series it
// points to alive (a Pin on the catalog, and a catalog of its own for the stored ones).
struct SeriesSet {
  SeriesCatalog::Pin pin;
  std::shared_ptr<SeriesCatalog> stored;
  std::vector<const SeriesInfo*> series;
};

// Query times outside [kMinQueryTime, kMaxQueryTime] (1970 .. year 9999) are clamped to it, so
// no difference of two times can overflow.
inline constexpr int64_t kMinQueryTime = 0;
inline constexpr int64_t kMaxQueryTime = 253402300799;

class QueryEngine {
 public:
  // Fixed budgets and retention.
  QueryEngine(const SeriesCatalog& catalog, Router& router, std::vector<Resolution> resolutions,
              const Clock& clock, QueryLimits limits = {}, SelfMetrics* metrics = nullptr);
  // The collector's live budgets and retention (the resolutions' steps must not change);
  // `limits` must outlive the engine.
  QueryEngine(const SeriesCatalog& catalog, Router& router, const LiveLimits& limits,
              const Clock& clock, SelfMetrics* metrics = nullptr)
      : catalog_(catalog), router_(router), clock_(clock), limits_(limits), metrics_(metrics) {}

  // The collector's coverage record (storage/coverage.h), before the first query; without one
  // every time counts as covered. Counters are zero-filled only in step buckets that overlap it.
  void set_coverage(const CoverageStore* c) { coverage_ = c; }
  // What is covered now; nullopt when there is no record (every time counts as covered).
  std::optional<CoverageSet> coverage() const {
    return coverage_ ? std::optional<CoverageSet>(coverage_->snapshot()) : std::nullopt;
  }

  Result<RangeResult> range(const RangeQuery& q) const;
  Result<HistogramResult> histogram(const RangeQuery& q, size_t max_bins) const;
  Result<HeatmapResult> heatmap(const RangeQuery& q, size_t max_bins) const;

  // The series of `metric` that may hold a bucket at or after from_s (every series when from_s is
  // kMinQueryTime or less).
  Result<std::shared_ptr<SeriesSet>> series_of(std::string_view metric, int64_t from_s) const;

  // Picks (step, resolution index) for a range; exposed for tests.
  Result<std::pair<int64_t, size_t>> plan(int64_t from, int64_t to, int64_t step,
                                          int64_t points) const;
  // The resolutions and how long each is kept, now.
  std::vector<Resolution> resolutions() const { return limits_.get()->resolutions; }

  // Stored (+) open buckets of each series at resolution index res over [from, to), out[i] for
  // series[i] in time order, for callers that combine buckets themselves (the Prometheus API).
  // Gives up with deadline_passed() once `deadline` has.
  Status read_buckets(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from,
                      int64_t to, std::vector<std::vector<StoredBucket>>* out,
                      const Deadline& deadline = {}) const {
    int64_t watermark = 0;
    return read(series, res, from, to, out, &watermark, deadline);
  }
  // A query starting now must be answered by this (query_timeout).
  Deadline deadline() const { return {clock_, clock_.now_ms() + timeout_ms()}; }
  int64_t timeout_ms() const { return limits_.get()->input.query_timeout_ms; }  // live
  // The answer to a query past its deadline (400 naming the budget), counted as query_deadline.
  Status deadline_passed() const;

 private:
  struct Matched {
    Kind kind;
    std::vector<const SeriesInfo*> series;
    std::shared_ptr<SeriesSet> keep;  // what series points to
  };
  Result<Matched> match(const RangeQuery& q) const;
  // match() for a query that only a distribution answers; `what` names it in the error.
  Result<Matched> match_distribution(const RangeQuery& q, std::string_view what) const;
  // A copy of q with its times clamped (counted as limit query_range when they were).
  RangeQuery clamp_times(const RangeQuery& q) const;
  // The series, samples and deadline budgets of one query reading `series` at resolution res
  // over [from, to); started_ms is when the query began (clock_.now_ms()).
  Status check_budget(size_t series, size_t res, int64_t from, int64_t to) const;
  Status check_deadline(int64_t started_ms) const;
  // Per step of [from, to): whether it overlaps covered time; empty when every step does.
  std::vector<char> covered_steps(int64_t from, int64_t to, int64_t step) const;
  Status over(Limit l, std::string msg) const;
  // Reads every series at resolution res over [from, to); out[i] for series[i].
  Status read(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from, int64_t to,
              std::vector<std::vector<StoredBucket>>* out, int64_t* watermark,
              const Deadline& deadline) const;
  // Counters: adds every series' bucket sums on the grid into totals[group_of[i] * steps + step],
  // shards in parallel, each decoding straight into its own grid; shard grids add up in shard
  // order.
  Status sum_counters(const std::vector<const SeriesInfo*>& series,
                      const std::vector<uint32_t>& group_of, size_t groups, size_t res,
                      const StepGrid& grid, std::vector<double>* totals, int64_t* watermark,
                      const Deadline& deadline) const;

  const SeriesCatalog& catalog_;
  Router& router_;
  const Clock& clock_;
  std::unique_ptr<LiveLimits> own_limits_;  // the fixed budgets of the first constructor
  const LiveLimits& limits_;
  SelfMetrics* metrics_;
  const CoverageStore* coverage_ = nullptr;
};

}  // namespace tally::collector
