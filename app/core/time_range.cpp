#include "time_range.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace tally::dash {

const std::vector<RangePreset>& rangePresets() {
  static const std::vector<RangePreset> presets = {
      {"Last 5 minutes", "5m", 300},       {"Last 15 minutes", "15m", 900},
      {"Last 1 hour", "1h", 3600},         {"Last 6 hours", "6h", 6 * 3600},
      {"Last 24 hours", "24h", 86400},     {"Last 7 days", "7d", 7 * 86400},
      {"Last 30 days", "30d", 30 * 86400},
  };
  return presets;
}

TimeWindow resolveRange(const TimeRangeSpec& spec, int64_t now) {
  if (spec.isCustom()) return {*spec.from, *spec.to};
  auto len = parse_duration(spec.relative);
  int64_t seconds = len ? *len : 3600;
  return {now - seconds, now};
}

int64_t chooseStep(const TimeWindow& w, int pixelWidth, int64_t now,
                   const std::vector<Resolution>& retention, int pixelsPerPoint) {
  static const int64_t kNice[] = {1,     2,     5,     10,    15,     30,    60,
                                  120,   300,   600,   900,   1800,   3600,  7200,
                                  10800, 21600, 43200, 86400, 172800, 604800};
  int64_t minRes = 1;
  if (!retention.empty()) {
    minRes = retention.back().step_s;
    int64_t age = std::max<int64_t>(0, now - w.from);
    for (const auto& r : retention)
      if (r.retention_s >= age) {
        minRes = r.step_s;
        break;
      }
  }
  int points = std::max(1, pixelWidth / std::max(1, pixelsPerPoint));
  int64_t raw = std::max<int64_t>(1, (w.length() + points - 1) / points);
  for (int64_t s : kNice)
    if (s >= raw && s >= minRes && s % minRes == 0) return s;
  // Beyond the table: a whole multiple of the resolution.
  int64_t base = std::max(raw, minRes);
  return (base + minRes - 1) / minRes * minRes;
}

std::vector<double> niceTicks(double min, double max, int maxTicks) {
  std::vector<double> out;
  if (!(max > min) || maxTicks < 2 || !std::isfinite(min) || !std::isfinite(max)) return out;
  double raw = (max - min) / (maxTicks - 1);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  double first = std::ceil(min / step - 1e-9) * step;
  for (double v = first; v <= max + step * 1e-9 && out.size() < 1000; v += step)
    out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

double niceCeil(double max) {
  if (!(max > 0) || !std::isfinite(max)) return 1;
  double mag = std::pow(10.0, std::floor(std::log10(max)));
  for (double m : {1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0})
    if (m * mag >= max * (1 - 1e-12)) return m * mag;
  return 10 * mag;
}

std::string formatValue(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "inf" : "-inf");
  double a = std::abs(v);
  const char* suffix = "";
  double scaled = v;
  if (a >= 1e12) {
    scaled = v / 1e12;
    suffix = "T";
  } else if (a >= 1e9) {
    scaled = v / 1e9;
    suffix = "G";
  } else if (a >= 1e6) {
    scaled = v / 1e6;
    suffix = "M";
  } else if (a >= 1e4) {
    scaled = v / 1e3;
    suffix = "k";
  }
  char buf[64];
  if (a != 0 && a < 0.001)
    std::snprintf(buf, sizeof buf, "%.2g", v);
  else
    std::snprintf(buf, sizeof buf, "%.4g%s", scaled, suffix);
  return buf;
}

namespace {

std::tm localTm(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  return tm;
}

std::string fmt(int64_t t, const char* pattern) {
  std::tm tm = localTm(t);
  char buf[64];
  std::strftime(buf, sizeof buf, pattern, &tm);
  return buf;
}

}  // namespace

std::string formatLocalTime(int64_t t) {
  return fmt(t, "%Y-%m-%d %H:%M:%S");
}

std::vector<TimeTick> timeTicks(int64_t from, int64_t to, int maxTicks) {
  static const int64_t kSteps[] = {1,     2,     5,     10,    15,     30,     60,
                                   120,   300,   600,   900,   1800,   3600,   7200,
                                   10800, 21600, 43200, 86400, 172800, 604800, 2592000};
  std::vector<TimeTick> out;
  if (to <= from || maxTicks < 1) return out;
  int64_t span = to - from;
  int64_t step = kSteps[std::size(kSteps) - 1];
  for (int64_t s : kSteps)
    if (span / s <= maxTicks) {
      step = s;
      break;
    }
  // Align to local time: shift by the UTC offset so "every 6 h" falls on 00:00, 06:00, ...
  int64_t offset = localTm(from).tm_gmtoff;
  int64_t first = bucket_start(from + offset + step - 1, step) - offset;
  const char* pattern = step < 60      ? "%H:%M:%S"
                        : step < 86400 ? (span > 86400 ? "%a %H:%M" : "%H:%M")
                                       : "%b %d";
  for (int64_t t = first; t <= to && out.size() < 200; t += step)
    out.push_back({t, fmt(t, pattern)});
  return out;
}

}  // namespace tally::dash
