#include "tally/common/time_bucket.h"

#include <charconv>
#include <chrono>

namespace tally {
namespace {

struct Unit {
  char suffix;
  int64_t seconds;
};
constexpr Unit kUnits[] = {{'y', 365 * 86400}, {'w', 7 * 86400}, {'d', 86400},
                           {'h', 3600},        {'m', 60},        {'s', 1}};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<int64_t> parse_duration(std::string_view text) {
  text = trim(text);
  if (text.empty()) return Status::invalid_argument("empty duration");
  int64_t mult = 1;
  char last = text.back();
  if (last < '0' || last > '9') {
    bool found = false;
    for (const auto& u : kUnits) {
      if (u.suffix == last) {
        mult = u.seconds;
        found = true;
      }
    }
    if (!found)
      return Status::invalid_argument("duration '" + std::string(text) +
                                      "' has an unknown unit; use s, m, h, d, w or y");
    text.remove_suffix(1);
  }
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || ptr != text.data() + text.size() || n <= 0)
    return Status::invalid_argument("duration '" + std::string(text) +
                                    "' is not a positive whole number");
  if (n > INT64_MAX / mult) return Status::invalid_argument("duration is too large");
  return n * mult;
}

std::string format_duration(int64_t seconds) {
  for (const auto& u : kUnits) {
    if (u.suffix == 'w') continue;  // "7d" reads better than "1w"

    if (seconds >= u.seconds && seconds % u.seconds == 0)
      return std::to_string(seconds / u.seconds) + u.suffix;
  }
  return std::to_string(seconds) + "s";
}

Result<int64_t> parse_duration_ms(std::string_view text) {
  if (text.size() > 2 && text.substr(text.size() - 2) == "ms") {
    int64_t ms = 0;
    auto digits = text.substr(0, text.size() - 2);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || ms <= 0)
      return Status::invalid_argument("duration '" + std::string(text) +
                                      "' is not a positive whole number of ms");
    return ms;
  }
  auto s = parse_duration(text);
  if (!s) return s.status();
  if (*s > INT64_MAX / 1000) return Status::invalid_argument("duration is too large");
  return *s * 1000;
}

std::string format_duration_ms(int64_t ms) {
  if (ms > 0 && ms % 1000 == 0) return format_duration(ms / 1000);
  return std::to_string(ms) + "ms";
}

Result<std::vector<Resolution>> parse_retention(std::string_view text) {
  std::vector<Resolution> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string_view item =
        trim(text.substr(pos, comma == std::string_view::npos ? comma : comma - pos));
    size_t colon = item.find(':');
    if (colon == std::string_view::npos)
      return Status::invalid_argument("retention item '" + std::string(item) +
                                      "' must be resolution:retention, e.g. 10s:7d");
    auto step = parse_duration(item.substr(0, colon));
    if (!step) return step.status();
    auto keep = parse_duration(item.substr(colon + 1));
    if (!keep) return keep.status();
    if (*keep < *step)
      return Status::invalid_argument("retention '" + std::string(item) +
                                      "' keeps less than one bucket");
    if (!out.empty()) {
      const auto& prev = out.back();
      if (*step <= prev.step_s || *step % prev.step_s != 0)
        return Status::invalid_argument("resolution " + format_duration(*step) +
                                        " must be a larger multiple of " +
                                        format_duration(prev.step_s));
      if (*keep < prev.retention_s)
        return Status::invalid_argument("retention of " + format_duration(*step) +
                                        " must not be shorter than that of " +
                                        format_duration(prev.step_s));
    }
    out.push_back({*step, *keep});
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  if (out.empty()) return Status::invalid_argument("retention list is empty");
  if (out.front().step_s != 1)
    return Status::invalid_argument("the finest resolution must be 1s (the SDK's bucket)");
  return out;
}

std::string format_retention(const std::vector<Resolution>& list) {
  std::string s;
  for (const auto& r : list) {
    if (!s.empty()) s.push_back(',');
    s += format_duration(r.step_s) + ":" + format_duration(r.retention_s);
  }
  return s;
}

int64_t SystemClock::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

}  // namespace tally
