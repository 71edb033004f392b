// What a new or re-targeted panel shows, once for the window's two ways in: a metric added from
// the metric browser (double-click: MainWindow) and a metric dropped on a panel (the canvas).
//
//   panelForMetric("api.errors", Kind::kCounter, "")        fn rate
//   panelForMetric("api.latency", Kind::kDistribution, "")  fn p99
//   panelForMetric("up", Kind::kGauge, "vm")                fn avg (source vm)
//   panelForMetric("http_seconds_bucket", {}, "vm")         fn p99 (the name says histogram)
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include "dashboard.h"

namespace tally::dash {

// A panel for `metric` of `kind` (nullopt when the source does not say) on `source` ("" = the
// collector). Collector: distributions p99, gauges avg, else rate. A Prometheus source: a
// histogram's _bucket p99, a summary max by quantile (its quantiles do not merge), gauges avg,
// counters rate; without metadata the names say what they can (_bucket p99; _total, _count,
// _sum rate; else max). Height 5 grid rows.
PanelSpec panelForMetric(const std::string& metric, std::optional<Kind> kind,
                         const std::string& source);

// `panel` shows `metric` of `source` instead: filters, group-by, title and a raw expression
// belonged to the old metric and go. Moving to another source resets the function (the
// collector's sum, a Prometheus source's rate) unless a distribution chart fixes it; a
// Prometheus source has no distribution charts (a line instead).
void retargetPanel(PanelSpec& panel, const std::string& metric, const std::string& source);

}  // namespace tally::dash
