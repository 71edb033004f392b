// Series reduced to numbers: what stat, gauge and table panels, the legend table and alerts show
// of each series (docs/DASHBOARD.md, "Stat, gauge and table panels").
//
// Only final buckets count: the bucket still filling (at or after the series' partial_from)
// would make `last` and `min` of a rate dip each second, as it made lines dip. Missing buckets
// (gauges without data) are skipped. Thread-safety: values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/api.h"
#include "tally/common/alert_rule.h"

namespace tally::dash {

struct SeriesStats {
  std::string label;  // Series::label(metric)
  Tags tags;
  std::optional<double> last, min, max, avg, total;  // nullopt: no final bucket
  int64_t lastTime = 0;                              // the bucket `last` is from
  std::optional<double> get(Reduce r) const;
  bool operator==(const SeriesStats&) const = default;
};

// Each series' final buckets with t >= from (all of them for the default).
SeriesStats seriesStats(const Series& series, const std::string& metric, int64_t from = INT64_MIN);
std::vector<SeriesStats> seriesStats(const std::vector<Series>& series, const std::string& metric,
                                     int64_t from = INT64_MIN);

// CSV of a table panel: series,last,min,max,avg,total; an empty cell where there is no value.
std::string statsToCsv(const std::vector<SeriesStats>& stats);

// A value for a stat, a gauge or a table cell: the shortest of "1.23k", "0.5", "12M" that keeps
// three significant digits, with the unit after it ("250 ms"); "–" for no value.
std::string formatStat(std::optional<double> value, const std::string& unit);

}  // namespace tally::dash
