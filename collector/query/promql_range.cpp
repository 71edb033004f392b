#include "query/promql_range.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace tally::collector::prom {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr std::array<std::string_view, 23> kRangeFunctions = {"rate",
                                                              "increase",
                                                              "irate",
                                                              "idelta",
                                                              "delta",
                                                              "deriv",
                                                              "predict_linear",
                                                              "changes",
                                                              "resets",
                                                              "avg_over_time",
                                                              "min_over_time",
                                                              "max_over_time",
                                                              "sum_over_time",
                                                              "count_over_time",
                                                              "last_over_time",
                                                              "stddev_over_time",
                                                              "stdvar_over_time",
                                                              "quantile_over_time",
                                                              "mad_over_time",
                                                              "present_over_time",
                                                              "double_exponential_smoothing",
                                                              "holt_winters",
                                                              "first_over_time"};

}  // namespace

double prom_quantile(double phi, std::vector<double> v) {
  if (v.empty() || std::isnan(phi)) return kNaN;
  if (phi < 0) return -std::numeric_limits<double>::infinity();
  if (phi > 1) return std::numeric_limits<double>::infinity();
  std::sort(v.begin(), v.end());
  const double rank = phi * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::max(0.0, std::floor(rank)));
  const size_t hi = std::min(v.size() - 1, lo + 1);
  const double w = rank - std::floor(rank);
  return v[lo] * (1 - w) + v[hi] * w;
}

namespace {

// Kahan-compensated running sum, as Prometheus adds samples.
struct KahanSum {
  double sum = 0, c = 0;
  void add(double x) {
    const double t = sum + x;
    if (std::fabs(sum) >= std::fabs(x))
      c += (sum - t) + x;
    else
      c += (x - t) + sum;
    sum = t;
  }
  double value() const { return std::isinf(sum) ? sum : sum + c; }
};

// Least squares of the samples against time in seconds since intercept_ms: (slope, intercept).
std::pair<double, double> linear_regression(std::span<const Sample> s, int64_t intercept_ms) {
  KahanSum sx, sy, sxy, sx2;
  const double init_y = s[0].v;
  bool const_y = true;
  for (size_t i = 0; i < s.size(); ++i) {
    if (const_y && i > 0 && s[i].v != init_y) const_y = false;
    const double x = static_cast<double>(s[i].t_ms - intercept_ms) / 1e3;
    sx.add(x);
    sy.add(s[i].v);
    sxy.add(x * s[i].v);
    sx2.add(x * x);
  }
  if (const_y) {
    if (std::isinf(init_y)) return {kNaN, kNaN};
    return {0, init_y};
  }
  const double n = static_cast<double>(s.size());
  const double cov_xy = sxy.value() - sx.value() * sy.value() / n;
  const double var_x = sx2.value() - sx.value() * sx.value() / n;
  const double slope = cov_xy / var_x;
  return {slope, sy.value() / n - slope * sx.value() / n};
}

// delta(): the change from the first to the last sample, extrapolated towards the window's edges
// as Prometheus extrapolates it (a gauge's delta; counters use the exact increase instead).
std::optional<double> extrapolated_delta(const Window& w) {
  const auto& s = w.samples;
  if (s.size() < 2) return std::nullopt;
  const double result = s.back().v - s.front().v;
  const double sampled = static_cast<double>(s.back().t_ms - s.front().t_ms) / 1e3;
  if (sampled <= 0) return std::nullopt;
  const double average = sampled / static_cast<double>(s.size() - 1);
  const double threshold = average * 1.1;
  double to_start = static_cast<double>(s.front().t_ms - (w.end_ms - w.range_ms)) / 1e3;
  double to_end = static_cast<double>(w.end_ms - s.back().t_ms) / 1e3;
  double interval = sampled;
  interval += to_start < threshold ? to_start : average / 2;
  interval += to_end < threshold ? to_end : average / 2;
  return result * (interval / sampled);
}

// A counter's growth over the window: each drop is a reset, after which the value is new growth.
double exact_increase(std::span<const Sample> s) {
  double inc = 0;
  for (size_t i = 1; i < s.size(); ++i) inc += s[i].v >= s[i - 1].v ? s[i].v - s[i - 1].v : s[i].v;
  return inc;
}

double trend(size_t i, double tf, double s0, double s1, double b) {
  if (i == 0) return b;
  return tf * (s1 - s0) + (1 - tf) * b;
}

}  // namespace

bool is_range_function(std::string_view name) {
  return std::find(kRangeFunctions.begin(), kRangeFunctions.end(), name) != kRangeFunctions.end();
}

std::optional<double> eval_range_function(std::string_view fn, const Window& w,
                                          std::span<const double> params) {
  const auto& s = w.samples;
  if (fn == "present_over_time") return s.empty() ? std::nullopt : std::optional<double>(1);
  if (s.empty()) return std::nullopt;
  if (fn == "count_over_time") return static_cast<double>(s.size());
  if (fn == "last_over_time") return s.back().v;
  if (fn == "first_over_time") return s.front().v;
  if (fn == "sum_over_time" || fn == "avg_over_time") {
    KahanSum sum;
    for (const auto& x : s) sum.add(x.v);
    return fn == "sum_over_time" ? sum.value() : sum.value() / static_cast<double>(s.size());
  }
  if (fn == "max_over_time" || fn == "min_over_time") {
    const bool max = fn == "max_over_time";
    double acc = s[0].v;
    for (const auto& x : s)
      if (std::isnan(acc) || (max ? x.v > acc : x.v < acc)) acc = x.v;
    return acc;
  }
  if (fn == "stddev_over_time" || fn == "stdvar_over_time") {
    double count = 0, mean = 0, m2 = 0;
    for (const auto& x : s) {
      count += 1;
      const double d = x.v - mean;
      mean += d / count;
      m2 += d * (x.v - mean);
    }
    const double var = m2 / count;
    return fn == "stdvar_over_time" ? var : std::sqrt(var);
  }
  if (fn == "quantile_over_time" || fn == "mad_over_time") {
    std::vector<double> v;
    v.reserve(s.size());
    for (const auto& x : s) v.push_back(x.v);
    if (fn == "quantile_over_time") return prom_quantile(params.empty() ? kNaN : params[0], v);
    const double median = prom_quantile(0.5, v);
    for (double& x : v) x = std::fabs(x - median);
    return prom_quantile(0.5, v);
  }
  if (fn == "changes" || fn == "resets") {
    double n = 0;
    for (size_t i = 1; i < s.size(); ++i) {
      const double prev = s[i - 1].v, cur = s[i].v;
      if (fn == "resets" ? cur < prev : !(cur == prev || (std::isnan(cur) && std::isnan(prev))))
        n += 1;
    }
    return n;
  }
  if (s.size() < 2) return std::nullopt;
  if (fn == "increase" || fn == "rate") {
    const double inc = exact_increase(s);
    return fn == "rate" ? inc / (static_cast<double>(w.range_ms) / 1e3) : inc;
  }
  if (fn == "irate" || fn == "idelta") {
    const Sample& prev = s[s.size() - 2];
    const Sample& last = s.back();
    const double dt = static_cast<double>(last.t_ms - prev.t_ms) / 1e3;
    if (dt <= 0) return std::nullopt;
    if (fn == "idelta") return last.v - prev.v;
    return (last.v < prev.v ? last.v : last.v - prev.v) / dt;
  }
  if (fn == "delta") return extrapolated_delta(w);
  if (fn == "deriv") return linear_regression(s, s[0].t_ms).first;
  if (fn == "predict_linear") {
    const auto [slope, intercept] = linear_regression(s, w.end_ms);
    return slope * (params.empty() ? kNaN : params[0]) + intercept;
  }
  if (fn == "double_exponential_smoothing" || fn == "holt_winters") {
    const double sf = params.size() > 0 ? params[0] : kNaN;
    const double tf = params.size() > 1 ? params[1] : kNaN;
    double s0 = 0, s1 = s[0].v, b = s[1].v - s[0].v;
    for (size_t i = 1; i < s.size(); ++i) {
      const double x = sf * s[i].v;
      b = trend(i - 1, tf, s0, s1, b);
      const double y = (1 - sf) * (s1 + b);
      s0 = s1;
      s1 = x + y;
    }
    return s1;
  }
  return std::nullopt;
}

}  // namespace tally::collector::prom
