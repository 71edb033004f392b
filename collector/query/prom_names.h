// Names: which Tally metric and series a Prometheus name and selector mean (docs/PROMETHEUS.md,
// "Names").
//
//   api.latency-ms (distribution)  ->  api_latency_ms{quantile=..}, api_latency_ms_count, _sum
//   tag http.method                ->  label http_method
//
// Thread-safety: a NameTable is a snapshot of the catalog's metrics, immutable once built.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/catalog.h"
#include "query/prom_error.h"
#include "query/promql.h"
#include "query/query_engine.h"

namespace tally::collector {

// The Prometheus metric name of a Tally metric: '.', '-' (anything outside [a-zA-Z0-9_:]) -> '_'.
std::string prom_metric_name(std::string_view tally_metric);
// The Prometheus label name of a Tally tag key: anything outside [a-zA-Z0-9_] -> '_'.
std::string prom_label_name(std::string_view tally_key);

namespace prom {

using Labels = std::map<std::string, std::string>;

// The quantiles a bare distribution name shows.
inline constexpr const char* kDefaultQuantiles[] = {"0.5", "0.9", "0.99"};

bool valid_label_name(std::string_view s);

// What one Prometheus metric name shows of a Tally metric: its values (counter total, gauge,
// distribution quantiles), or a distribution's cumulative observation count or sum.
enum class Variant { kValue, kCount, kSum };

struct Exposed {
  std::string name;    // Prometheus name
  std::string metric;  // Tally metric
  Kind kind = Kind::kCounter;
  Variant variant = Variant::kValue;
  bool summary() const { return kind == Kind::kDistribution && variant == Variant::kValue; }
};

// Prometheus name -> Exposed for every metric in the catalog. When several Tally metrics map to
// one name, the first claim wins: names that need no mapping, then mapped names, then the
// _count/_sum of distributions, each in Tally's name order (docs/PROMETHEUS.md, "Names").
class NameTable {
 public:
  explicit NameTable(const SeriesCatalog& catalog);

  // The names a selector's metric name and __name__ matchers choose. A name that is no
  // Prometheus name but a Tally metric's own ({"api.errors"}, {__name__="api.errors"}) selects
  // that metric, which is how a metric that lost a name collision stays reachable.
  std::vector<Exposed> select(const promql::Node& sel) const;

  const std::map<std::string, Exposed>& all() const { return by_name_; }

 private:
  void add(const std::string& name, const MetricSummary& m, Variant v);
  std::map<std::string, Exposed> by_name_;
  std::map<std::string, Kind> kinds_;
};

// The series of one exposed name that a selector's label matchers choose.
struct Leaf {
  Exposed exposed;
  std::vector<const SeriesInfo*> series;
  std::shared_ptr<SeriesSet> keep;     // what series points to
  std::vector<Labels> labels;          // per series, with __name__, without quantile
  std::vector<std::string> quantiles;  // summaries: the quantile label values asked for
};

// Fills *out with the series of `e` that selector `sel` matches. quantile_label: a summary's
// quantile matchers choose its quantiles (false: tally_quantile, where they are refused).
// Series that expired are read from storage when they may hold a bucket at or after from_s.
MaybeError select_leaf(const QueryEngine& engine, int64_t from_s, const promql::Node& sel,
                       const Exposed& e, bool quantile_label, Leaf* out);

// Narrows series look-ups to series with data in [from_s, to_s] (/api/v1/series, /labels,
// /label/<name>/values with start or end), read from the coarsest resolution's buckets (one per
// hour by default), so a series that had data within the hour of an edge also counts, as
// Prometheus counts a whole block. A look-up over more than max_series series is not narrowed
// (it answers every matching series, as without start and end).
struct TimeNarrowing {
  const QueryEngine* engine = nullptr;
  int64_t from_s = 0, to_s = 0;
  size_t max_series = 20000;
  size_t read = 0;  // series read so far in this request
};

// Every series (label set) a series selector matches; summaries give one per quantile.
MaybeError series_of(const QueryEngine& engine, const NameTable& names, const promql::Node& sel,
                     std::set<Labels>* out, TimeNarrowing* narrow = nullptr);

}  // namespace prom
}  // namespace tally::collector
