#include "series_stats.h"

#include <cmath>
#include <cstdio>

#include "tally/common/csv.h"

namespace tally::dash {

std::optional<double> SeriesStats::get(Reduce r) const {
  switch (r) {
    case Reduce::kLast:
      return last;
    case Reduce::kMin:
      return min;
    case Reduce::kMax:
      return max;
    case Reduce::kAvg:
      return avg;
    case Reduce::kTotal:
      return total;
  }
  return std::nullopt;
}

SeriesStats seriesStats(const Series& s, const std::string& metric, int64_t from) {
  SeriesStats out;
  out.label = s.label(metric);
  out.tags = s.tags;
  std::vector<double> values;
  values.reserve(s.points.size());
  for (const auto& p : s.points) {
    if (p.t < from || (s.partialFrom && p.t >= *s.partialFrom) || std::isnan(p.v)) continue;
    values.push_back(p.v);
    out.lastTime = p.t;
  }
  out.last = reduce_values(Reduce::kLast, values);
  out.min = reduce_values(Reduce::kMin, values);
  out.max = reduce_values(Reduce::kMax, values);
  out.avg = reduce_values(Reduce::kAvg, values);
  out.total = reduce_values(Reduce::kTotal, values);
  return out;
}

std::vector<SeriesStats> seriesStats(const std::vector<Series>& series, const std::string& metric,
                                     int64_t from) {
  std::vector<SeriesStats> out;
  out.reserve(series.size());
  for (const auto& s : series) out.push_back(seriesStats(s, metric, from));
  return out;
}

std::string statsToCsv(const std::vector<SeriesStats>& stats) {
  std::string out = "series,last,min,max,avg,total\n";
  for (const auto& s : stats) {
    out += csv_text(s.label);
    for (Reduce r : kAllReduces) {
      out += ',';
      if (auto v = s.get(r)) out += csv_number(*v);
    }
    out += '\n';
  }
  return out;
}

std::string formatStat(std::optional<double> value, const std::string& unit) {
  if (!value) return "–";
  const double v = *value;
  std::string text;
  const double a = std::fabs(v);
  static const struct {
    double scale;
    const char* suffix;
  } kScales[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  bool scaled = false;
  for (const auto& s : kScales)
    if (a >= s.scale) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3g%s", v / s.scale, s.suffix);
      text = buf;
      scaled = true;
      break;
    }
  if (!scaled) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    text = buf;
    if (text.find('e') != std::string::npos) text = format_number(v);
  }
  if (!unit.empty()) text += " " + unit;
  return text;
}

}  // namespace tally::dash
