#include "query/prom_time.h"

#include <charconv>
#include <cmath>
#include <system_error>

#include "query/promql.h"
#include "tally/common/time_text.h"

namespace tally::collector::prom {

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest fixed notation that reads back exactly.
std::string prom_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[512];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, p);
}

// Unix seconds (with a fraction) or RFC 3339, as Prometheus's parseTime.
std::optional<int64_t> parse_time_ms(const std::string& s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) {
    if (!std::isfinite(v) || std::abs(v) > 9.2e12) return std::nullopt;
    return std::llround(v * 1000);
  }
  return parse_rfc3339_ms(s);
}

// Seconds (with a fraction) or a duration ("15s", "1m"), as Prometheus's parseDuration.
std::optional<int64_t> parse_step_ms(const std::string& s) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) {
    if (!std::isfinite(v) || std::abs(v) > 9.2e12) return std::nullopt;
    return std::llround(v * 1000);
  }
  auto d = promql::parse_prom_duration(s);
  if (!d) return std::nullopt;
  return *d;
}

}  // namespace tally::collector::prom
