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

}  // namespace tally
