// QueryEngine: range queries, histograms and heatmaps over stored (+) open buckets.
//
// The planner picks the coarsest stored resolution that divides the step and still holds the
// range's start; series are matched in memory (SeriesCatalog), read from their shards in
// parallel (Shard::read), combined per series into step buckets, then across the series of each
// group by the function (docs/API.md has the table of what each function means per kind).
// Thread-safety: const methods, callable from any number of HTTP threads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "tally/common/label_matcher.h"
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

enum class Fn { kSum, kRate, kAvg, kMin, kMax, kCount, kP50, kP90, kP99 };
std::optional<Fn> parse_fn(std::string_view name);
const char* fn_name(Fn fn);

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

class QueryEngine {
 public:
  QueryEngine(const SeriesCatalog& catalog, Router& router, std::vector<Resolution> resolutions,
              const Clock& clock)
      : catalog_(catalog), router_(router), resolutions_(std::move(resolutions)), clock_(clock) {}

  Result<RangeResult> range(const RangeQuery& q) const;
  Result<HistogramResult> histogram(const RangeQuery& q, size_t max_bins) const;
  Result<HeatmapResult> heatmap(const RangeQuery& q, size_t max_bins) const;

  // Picks (step, resolution index) for a range; exposed for tests.
  Result<std::pair<int64_t, size_t>> plan(int64_t from, int64_t to, int64_t step,
                                          int64_t points) const;
  const std::vector<Resolution>& resolutions() const { return resolutions_; }

  // Stored (+) open buckets of each series at resolution index res over [from, to), out[i] for
  // series[i] in time order, for callers that combine buckets themselves (the Prometheus API).
  Status read_buckets(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from,
                      int64_t to, std::vector<std::vector<StoredBucket>>* out) const {
    int64_t watermark = 0;
    return read(series, res, from, to, out, &watermark);
  }

 private:
  struct Matched {
    Kind kind;
    std::vector<const SeriesInfo*> series;
  };
  Result<Matched> match(const RangeQuery& q) const;
  // Reads every series at resolution res over [from, to); out[i] for series[i].
  Status read(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from, int64_t to,
              std::vector<std::vector<StoredBucket>>* out, int64_t* watermark) const;
  // Counters: adds every series' bucket sums on the grid into totals[group_of[i] * steps + step],
  // shards in parallel, each decoding straight into its own grid; shard grids add up in shard
  // order.
  Status sum_counters(const std::vector<const SeriesInfo*>& series,
                      const std::vector<uint32_t>& group_of, size_t groups, size_t res,
                      const StepGrid& grid, std::vector<double>* totals, int64_t* watermark) const;

  const SeriesCatalog& catalog_;
  Router& router_;
  const std::vector<Resolution> resolutions_;
  const Clock& clock_;
};

}  // namespace tally::collector
