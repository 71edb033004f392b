// PromQL's range-vector functions over one window of one series: rate, irate, delta, deriv,
// changes, the *_over_time family, ... (docs/PROMETHEUS.md, "Range functions").
//
// A window is the samples whose time lies in (end - range, end], oldest first. Each function
// gives a value or none (too few samples), with Prometheus's formulas, except that rate and
// increase are exact: the counter's growth between the first and the last sample, never
// extrapolated to the window's edges.
//
//   Window w{samples, end_ms, range_ms};
//   auto v = eval_range_function("max_over_time", w, {});   // std::optional<double>
//
// Thread-safety: pure functions over values.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace tally::collector::prom {

struct Sample {
  int64_t t_ms;
  double v;
};

struct Window {
  std::span<const Sample> samples;  // (end_ms - range_ms, end_ms], ascending by time
  int64_t end_ms = 0;
  int64_t range_ms = 0;
};

// Prometheus's quantile of a set of values (quantile, quantile_over_time): rank φ(n-1), linear
// between neighbours; -Inf below 0, +Inf above 1, NaN for NaN or no values.
double prom_quantile(double phi, std::vector<double> values);

// Whether `name` is a function of a range vector this module evaluates.
bool is_range_function(std::string_view name);

// The function's value over the window; `params` are its scalar arguments at this evaluation
// time (quantile_over_time's φ, predict_linear's t, double_exponential_smoothing's sf and tf).
std::optional<double> eval_range_function(std::string_view name, const Window& w,
                                          std::span<const double> params);

}  // namespace tally::collector::prom
