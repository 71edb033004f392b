#include "tally/common/csv.h"

#include <charconv>
#include <cmath>
#include <system_error>

namespace tally {

std::string csv_text(std::string_view s) {
  const bool formula =
      !s.empty() && std::string_view("=+-@\t\r").find(s[0]) != std::string_view::npos;
  if (!formula && s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = formula ? "\"'" : "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string csv_cell(std::string_view s) {
  double v = 0;
  const char* begin = s.data();
  if (!s.empty() && s[0] == '+') return csv_text(s);  // "+1" is not how a number is written here
  auto [p, ec] = std::from_chars(begin, begin + s.size(), v);
  if (!s.empty() && ec == std::errc() && p == begin + s.size() && std::isfinite(v))
    return std::string(s);
  return csv_text(s);
}

std::string format_number(double v) {
  if (std::isnan(v)) return "";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  // The shortest scientific form tells the exponent (d.ddde+XX); in [-4, 16) the shortest
  // fixed form reads better (123456789, not 1.23456789e+08) and is as exact.
  auto sci = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view s(buf, sci.ptr);
  int exp = 0;
  const size_t e = s.find('e');
  std::from_chars(s.data() + e + (s[e + 1] == '+' ? 2 : 1), s.data() + s.size(), exp);
  if (exp < -4 || exp >= 16) return std::string(s);
  auto fixed = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, fixed.ptr);
}

std::string csv_number(double v) {
  return csv_cell(format_number(v));
}

}  // namespace tally
