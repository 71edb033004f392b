// Panels on a Prometheus-compatible data source (docs/DASHBOARD.md, "Data sources"): the PromQL a
// panel's settings stand for, the /api/v1 request paths, and the answers parsed into the same
// QueryResult the collector's panels use.
//
// Times: the series model has one point per bucket [b, b + step), at its start b. PromQL ranges
// are left-open, right-closed, so bucket b is the expression evaluated at b + step with a range of
// exactly one step ((b, b + step]); query_range runs over those evaluation times, aligned to the
// step, and the answer is shifted back by one step. This is also how the collector's
// remote-write stamps a 1 s bucket [t, t + 1): at t + 1.
//
// Everything here is Qt-free. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api.h"
#include "dashboard.h"

namespace tally::dash {

// A PromQL string literal: "..." with \ and " escaped and line breaks as \n.
std::string promQuote(std::string_view s);
// A label name as PromQL writes it: bare when it is [a-zA-Z_][a-zA-Z0-9_]*, else quoted
// (Prometheus 3's UTF-8 names).
std::string promLabel(std::string_view name);
// metric{k="v",k2!~"re"}; a metric name outside [a-zA-Z_:][a-zA-Z0-9_:]* goes into the braces as
// {"name", ...}, Prometheus 3's form.
std::string promSelector(std::string_view metric, const std::vector<TagFilter>& filters);

// Whether the panel's function has a PromQL form for this metric. Percentiles need a classic
// histogram: the metric is "x_bucket", or `names` holds "x_bucket". The error says why not.
Status promFunctionSupported(Fn fn, const std::string& metric,
                             const std::vector<std::string>& names);

// The expression of a panel on a Prometheus source for buckets of `stepS` seconds (R = that as a
// PromQL duration, "1m"):
//   sum   sum by (g) (increase(m{f}[R]))       what a counter added in the bucket
//   rate  sum by (g) (increase(m{f}[R])) / S   per second. Prometheus defines rate() as exactly
//         this; VictoriaMetrics' rate() divides by the time between the samples instead, which
//         multiplies a new series' first bucket by up to 1000 when it starts with a 0 sample 1 ms
//         before its first value (as the collector's remote-write sends them).
//   avg   avg by (g) (avg_over_time(m{f}[R]))  min/max likewise with min_/max_over_time
//   count sum by (g) (count_over_time(m{f}[R])) samples in the bucket
//   pNN   histogram_quantile(0.NN, sum by (g, le) (rate(m_bucket{f}[R])))
// A raw `promql` is used as written, with $__interval and $__rate_interval replaced by R.
// With an offset (panel.offsetS) every selector looks that far back: `m{f}[R] offset 1w`.
// The Tally dialect (the collector's own Prometheus API) takes percentiles from its mergeable
// sketches, tally_quantile by (g) (0.NN, m{f}), instead of a classic histogram's buckets.
enum class PromDialect { Prometheus, Tally };
Result<std::string> buildPromQL(const PanelSpec& panel, int64_t stepS,
                                PromDialect dialect = PromDialect::Prometheus);
// The whole panel as one expression: query A (the panel's own settings) and its other queries,
// each by buildPromQL; with an expression, its refs replaced by theirs ("B / A" ->
// "(sum(increase(...))) / (...)"); without one, every query's series tagged with the query's ref:
// label_replace(A, "query", "A", "", "") or label_replace(B, "query", "B", "", ""). A panel of one
// query is buildPromQL's.
Result<std::string> buildPanelPromQL(const PanelSpec& panel, int64_t stepS,
                                     PromDialect dialect = PromDialect::Prometheus);

struct PromRange {
  int64_t start = 0;  // first evaluation time: end of the first bucket
  int64_t end = 0;    // last evaluation time: end of the bucket holding `to - 1`
  int64_t step = 0;
};
// The evaluation times for buckets of `step` covering [from, to).
PromRange promRangeFor(int64_t from, int64_t to, int64_t step);

// Request paths below the source's base URL (which may have a path of its own).
std::string promQueryRangePath(const std::string& expr, const PromRange& r);
std::string promLabelValuesPath(std::string_view label, std::string_view match = {});
std::string promLabelsPath(std::string_view match = {});
std::string promBuildInfoPath();
std::string promInstantQueryPath(std::string_view expr);

// A query_range answer ({"status":"success","data":{"resultType":"matrix","result":[...]}}) as
// series whose points are at their bucket's start (evaluation time - step). Tags are the labels
// without __name__ (kept only where it is what tells series apart); series sorted by tags.
Result<QueryResult> parsePromMatrix(std::string_view body, int64_t step);
// {"status":"success","data":["a","b"]}: label names or values.
Result<std::vector<std::string>> parsePromStrings(std::string_view body);
// A metric family's Prometheus type, as /api/v1/metadata names it ("counter", "gauge",
// "histogram", "summary"); Other for the types that say nothing about a dashboard kind (unknown,
// info, stateset, gaugehistogram).
enum class PromType { Counter, Gauge, Histogram, Summary, Other };
PromType parsePromType(std::string_view name);
using PromTypes = std::map<std::string, PromType>;  // metric family -> type
// /api/v1/metadata. VictoriaMetrics answers {} (it keeps no metadata); Prometheus knows what it
// scraped.
Result<PromTypes> parsePromMetadata(std::string_view body);
// Metric names with the dashboard's kinds from those types: counters (and a histogram's or
// summary's _count and _sum) counters, gauges gauges, a histogram's _bucket series and a summary
// distributions; nullopt when the server does not say.
std::vector<MetricInfo> promMetricKinds(const std::vector<std::string>& names,
                                        const PromTypes& types);

// Any answer: ok for {"status":"success","data":...}, else what is wrong.
Status checkPromAnswer(std::string_view body);
// The version in /api/v1/status/buildinfo; "" when the server leaves it out.
Result<std::string> parsePromBuildInfo(std::string_view body);
// An error answer's "errorType: error", else a description of the HTTP status.
std::string promErrorMessage(int httpStatus, std::string_view body);

}  // namespace tally::dash
