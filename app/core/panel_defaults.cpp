#include "panel_defaults.h"

namespace tally::dash {

namespace {

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

PanelSpec panelForMetric(const std::string& metric, std::optional<Kind> kind,
                         const std::string& source) {
  PanelSpec s;
  s.metric = metric;
  s.grid.h = 5;
  s.source = source;
  if (source.empty()) {
    s.fn = kind == Kind::kDistribution ? "p99" : kind == Kind::kGauge ? "avg" : "rate";
    return s;
  }
  if (kind == Kind::kDistribution && endsWith(metric, "_bucket")) {
    s.fn = "p99";
  } else if (kind == Kind::kDistribution) {
    s.fn = "max";  // a summary: one line per quantile (quantiles of several series do not merge)
    s.groupBy = {"quantile"};
  } else if (kind == Kind::kGauge) {
    s.fn = "avg";
  } else if (kind == Kind::kCounter) {
    s.fn = "rate";
  } else if (endsWith(metric, "_bucket")) {
    // Without metadata (VictoriaMetrics keeps none) the naming conventions say what they can.
    s.fn = "p99";
  } else if (endsWith(metric, "_total") || endsWith(metric, "_count") || endsWith(metric, "_sum")) {
    s.fn = "rate";
  } else {
    s.fn = "max";
  }
  return s;
}

void retargetPanel(PanelSpec& s, const std::string& metric, const std::string& source) {
  if (s.source != source && !chartNeedsDistribution(s.chart))
    s.fn = source.empty() ? "sum" : "rate";
  if (!source.empty() && chartNeedsDistribution(s.chart)) s.chart = ChartType::Line;
  s.source = source;
  s.promql.clear();
  s.metric = metric;
  s.filters.clear();
  s.groupBy.clear();
  s.title.clear();
}

}  // namespace tally::dash
