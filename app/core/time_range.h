// Time-range math for panels: presets, resolving a range against "now", choosing a query step
// that follows the chart's pixel width, and axis ticks (nice numbers, local-time labels).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dashboard.h"
#include "tally/common/time_bucket.h"

namespace tally::dash {

struct RangePreset {
  const char* label;  // "Last 15 minutes"
  const char* text;   // "15m", as stored in a dashboard
  int64_t seconds;
};
const std::vector<RangePreset>& rangePresets();  // 5m, 15m, 1h, 6h, 24h, 7d, 30d

// A half-open window [from, to) of unix seconds.
struct TimeWindow {
  int64_t from = 0;
  int64_t to = 0;
  int64_t length() const { return to - from; }
  bool operator==(const TimeWindow&) const = default;
};

// Relative ranges end at `now`; custom ranges are returned as they are. Invalid relative text
// falls back to one hour.
TimeWindow resolveRange(const TimeRangeSpec& spec, int64_t now);

// The query step for a window drawn `pixelWidth` pixels wide: about one point per
// `pixelsPerPoint` pixels, rounded up to a "nice" step (1s, 2s, 5s, 10s, 15s, 30s, 1m, ...) that is
// a multiple of the finest resolution still holding data at window.from (retention), so the
// collector can answer it exactly. Zooming in therefore asks for finer data.
int64_t chooseStep(const TimeWindow& window, int pixelWidth, int64_t now,
                   const std::vector<Resolution>& retention, int pixelsPerPoint = 3);

// Up to about maxTicks "nice" values (1, 2, 5 x 10^n) covering [min, max].
std::vector<double> niceTicks(double min, double max, int maxTicks);
// Rounds max up to a nice number (for the y-axis top).
double niceCeil(double max);

// Short human value: 0.25, 12, 1.5k, 2.25M, 3G.
std::string formatValue(double v);

struct TimeTick {
  int64_t t;
  std::string label;
};
// Ticks aligned to local-time boundaries (every 10 s, 1 m, 15 m, 1 h, 6 h, 1 d, ...) with labels
// "HH:MM:SS", "HH:MM", "Tue 14:00" or "Nov 27" depending on the spacing and span.
std::vector<TimeTick> timeTicks(int64_t from, int64_t to, int maxTicks);
// "2026-11-27 14:05:00" in local time.
std::string formatLocalTime(int64_t t);

}  // namespace tally::dash
