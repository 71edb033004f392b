// The collector's HTTP/JSON API (docs/API.md) as plain values: request URLs and parsed responses.
//
// Everything here is Qt-free so the parsing is unit-tested without a network; the app's
// CollectorClient does the HTTP and hands these structs to the GUI thread.
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dashboard.h"
#include "tally/common/series_key.h"
#include "tally/common/status.h"

namespace tally::dash {

struct Point {
  int64_t t;  // bucket start, unix seconds
  double v;
  bool operator==(const Point&) const = default;
};

struct Series {
  Tags tags;  // only the group-by keys
  std::vector<Point> points;
  std::optional<int64_t> partialFrom;
  std::string label(const std::string& metric) const;  // "endpoint=/login,status=500", or metric
  bool operator==(const Series&) const = default;
};

// A metric's kind is tally::Kind (tally/common/series_key.h), parsed where the JSON comes in;
// nullopt where the source does not say (a Prometheus server without metadata).
struct QueryResult {
  std::string metric;
  std::optional<Kind> kind;
  std::optional<Fn> fn;  // nullopt for a raw PromQL expression (or an answer without a known fn)
  int64_t from = 0;
  int64_t to = 0;
  int64_t step = 0;
  int64_t resolution = 0;
  std::vector<Series> series;
};

// An event on the timeline (a deploy, an incident) as the collector keeps it (GET
// /api/annotations, docs/API.md): from `time` to `end` (unix seconds, to the millisecond).
struct Annotation {
  int64_t id = 0;
  double time = 0;
  std::optional<double> end;
  std::string title;
  std::string text;
  Tags tags;
  std::string source;  // "api", "dogstatsd"
  bool operator==(const Annotation&) const = default;
};

struct Bin {
  double lower;  // exclusive
  double upper;  // inclusive
  uint64_t count;
  bool operator==(const Bin&) const = default;
};

struct HistogramResult {
  std::string metric;
  uint64_t count = 0;
  double sum = 0, min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0;
  std::vector<Bin> buckets;
};

struct HeatmapColumn {
  int64_t time = 0;
  uint64_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0;
  std::vector<Bin> buckets;
};

struct HeatmapResult {
  std::string metric;
  int64_t step = 0;
  int64_t from = 0;
  int64_t to = 0;
  std::vector<HeatmapColumn> columns;
};

struct MetricInfo {
  std::string name;
  std::optional<Kind> kind;
  int64_t series = 0;
  bool operator==(const MetricInfo&) const = default;
};

struct Health {
  bool ok = false;
  std::string status;
  std::string reason;
  int64_t uptimeS = 0;
  int64_t series = 0;
};

using TagValues = std::map<std::string, std::vector<std::string>>;

// GET /api/cardinality: where the series are and what the cardinality limits folded.
struct Cardinality {
  struct Metric {
    std::string name;
    std::optional<Kind> kind;
    int64_t series = 0;
    int64_t overflow = 0;  // new tag combinations folded into its __overflow__ series
    bool operator==(const Metric&) const = default;
  };
  struct TagKey {
    std::string key;
    int64_t values = 0;  // distinct values over every series
    int64_t series = 0;
    bool operator==(const TagKey&) const = default;
  };
  int64_t series = 0;
  int64_t metrics = 0;
  int64_t overflowTotal = 0;
  int64_t maxPerMetric = 0, maxTotal = 0, maxNewPerMinute = 0;  // the limits
  std::vector<Metric> topMetrics;                               // largest first
  std::vector<TagKey> topTagKeys;                               // most values first
  std::vector<std::pair<int64_t, int64_t>> createdPerMinute;    // (minute start, n), oldest first
};

struct QueryRequest {
  std::string metric;
  std::vector<TagFilter> filters;
  std::vector<std::string> groupBy;
  Fn fn = Fn::kSum;
  int64_t from = 0;
  int64_t to = 0;
  int64_t step = 0;          // 0 = auto
  int histogramBuckets = 0;  // /api/histogram only; 0 = collector default
};

// RFC 3986 percent-encoding of everything but unreserved characters.
std::string percentEncode(std::string_view s);

// Path and query string, e.g. "/api/query?metric=api.errors&filter=status%3D500&from=..".
std::string queryPath(const QueryRequest& r);
std::string histogramPath(const QueryRequest& r);
std::string heatmapPath(const QueryRequest& r);
std::string tagsPath(std::string_view metric);
std::string metricsPath(std::string_view search = {});
std::string cardinalityPath(int top);
// GET /api/annotations over [from, to) (unix seconds), at most `limit`.
std::string annotationsPath(int64_t from, int64_t to, int limit = 1000);

Result<QueryResult> parseQuery(std::string_view body);
Result<HistogramResult> parseHistogram(std::string_view body);
Result<HeatmapResult> parseHeatmap(std::string_view body);
Result<std::vector<MetricInfo>> parseMetrics(std::string_view body);
Result<TagValues> parseTags(std::string_view body);
Result<Cardinality> parseCardinality(std::string_view body);
// {"annotations":[{"id","time","end"?,"title","text"?,"tags"?,"source"?}, ...]}, in the order sent.
Result<std::vector<Annotation>> parseAnnotations(std::string_view body);
// The body of POST /api/annotations for `a` (time, end, title, text, tags; not id or source).
std::string annotationBody(const Annotation& a);
// The id in POST /api/annotations' answer ({"id": 42}).
Result<int64_t> parseAnnotationId(std::string_view body);
// How many DELETE /api/annotations/<id> removed ({"deleted": 1}).
Result<int64_t> parseDeletedCount(std::string_view body);
Health parseHealth(int httpStatus, std::string_view body);
// The {"error": "..."} message of a failed call, or a description of the status.
std::string errorMessage(int httpStatus, std::string_view body);

}  // namespace tally::dash
