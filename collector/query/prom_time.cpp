#include "query/prom_time.h"

#include <charconv>
#include <cmath>
#include <system_error>

#include "query/promql.h"

namespace tally::collector::prom {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest fixed notation that reads back exactly.
std::string prom_float(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[512];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, p);
}

// "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.250+02:00" -> unix ms.
std::optional<int64_t> parse_rfc3339_ms(std::string_view s) {
  auto num = [&](size_t pos, size_t n, int* out) {
    if (pos + n > s.size()) return false;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + n, *out);
    return ec == std::errc() && p == s.data() + pos + n;
  };
  int y, mo, d, h, mi, se;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (!num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) || !num(11, 2, &h) || !num(14, 2, &mi) ||
      !num(17, 2, &se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t i = 19;
  int64_t frac_ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100;
    size_t b = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      frac_ms += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
    if (i == b) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    int oh, om;
    if (!num(i + 1, 2, &oh) || !num(i + 4, 2, &om)) return std::nullopt;
    offset_s = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 86400 + h * 3600 + mi * 60 + se) - offset_s) * 1000 + frac_ms;
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
