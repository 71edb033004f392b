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
    s.fn = kind == Kind::kDistribution ? Fn::kP99 : kind == Kind::kGauge ? Fn::kAvg : Fn::kRate;
    return s;
  }
  if (kind == Kind::kDistribution && endsWith(metric, "_bucket")) {
    s.fn = Fn::kP99;
  } else if (kind == Kind::kDistribution) {
    s.fn = Fn::kMax;  // a summary: one line per quantile (quantiles of several series do not merge)
    s.groupBy = {"quantile"};
  } else if (kind == Kind::kGauge) {
    s.fn = Fn::kAvg;
  } else if (kind == Kind::kCounter) {
    s.fn = Fn::kRate;
  } else if (endsWith(metric, "_bucket")) {
    // Without metadata (VictoriaMetrics keeps none) the naming conventions say what they can.
    s.fn = Fn::kP99;
  } else if (endsWith(metric, "_total") || endsWith(metric, "_count") || endsWith(metric, "_sum")) {
    s.fn = Fn::kRate;
  } else {
    s.fn = Fn::kMax;
  }
  return s;
}

void retargetPanel(PanelSpec& s, const std::string& metric, const std::string& source) {
  if (s.source != source && !chartNeedsDistribution(s.chart))
    s.fn = source.empty() ? Fn::kSum : Fn::kRate;
  if (!source.empty() && chartNeedsDistribution(s.chart)) s.chart = ChartType::Line;
  s.source = source;
  s.promql.clear();
  s.metric = metric;
  s.filters.clear();
  s.groupBy.clear();
  s.title.clear();
}

}  // namespace tally::dash
