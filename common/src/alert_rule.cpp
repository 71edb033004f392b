#include "tally/common/alert_rule.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

#include "tally/common/csv.h"
#include "tally/common/time_bucket.h"

namespace tally {

const char* reduce_name(Reduce r) {
  switch (r) {
    case Reduce::kLast:
      return "last";
    case Reduce::kMin:
      return "min";
    case Reduce::kMax:
      return "max";
    case Reduce::kAvg:
      return "avg";
    case Reduce::kTotal:
      return "total";
  }
  return "last";
}

std::optional<Reduce> parse_reduce(std::string_view name) {
  for (Reduce r : kAllReduces)
    if (name == reduce_name(r)) return r;
  return std::nullopt;
}

std::optional<double> reduce_values(Reduce r, std::span<const double> values) {
  size_t n = 0;
  double last = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  for (double v : values) {
    if (std::isnan(v)) continue;
    ++n;
    last = v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  if (n == 0) return std::nullopt;
  switch (r) {
    case Reduce::kLast:
      return last;
    case Reduce::kMin:
      return lo;
    case Reduce::kMax:
      return hi;
    case Reduce::kAvg:
      return sum / static_cast<double>(n);
    case Reduce::kTotal:
      return sum;
  }
  return std::nullopt;
}

const char* compare_name(Compare c) {
  switch (c) {
    case Compare::kAbove:
      return ">";
    case Compare::kAtLeast:
      return ">=";
    case Compare::kBelow:
      return "<";
    case Compare::kAtMost:
      return "<=";
  }
  return ">";
}

bool compare_holds(Compare c, double value, double threshold) {
  switch (c) {
    case Compare::kAbove:
      return value > threshold;
    case Compare::kAtLeast:
      return value >= threshold;
    case Compare::kBelow:
      return value < threshold;
    case Compare::kAtMost:
      return value <= threshold;
  }
  return false;
}

namespace {

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

Result<int64_t> duration_word(std::string_view word, const char* what) {
  auto d = parse_duration(word);
  if (!d) return Status::invalid_argument(std::string(what) + ": " + d.status().message());
  if (*d > kMaxAlertDurationS)
    return Status::invalid_argument(std::string(what) + ": '" + std::string(word) +
                                    "' is longer than 7d");
  return *d;
}

}  // namespace

Result<AlertRule> parse_alert_rule(std::string_view text) {
  static const char* kShape = " (e.g. \"avg over 1m > 100 for 2m\")";
  const auto w = words(text);
  AlertRule rule;
  size_t i = 0;
  if (w.empty()) return Status::invalid_argument(std::string("empty alert rule") + kShape);
  auto reduce = parse_reduce(w[i]);
  if (!reduce)
    return Status::invalid_argument("'" + std::string(w[i]) +
                                    "' is not last, min, max, avg or total" + kShape);
  rule.reduce = *reduce;
  ++i;
  if (i < w.size() && w[i] == "over") {
    if (++i == w.size())
      return Status::invalid_argument("'over' needs a duration" + std::string(kShape));
    auto d = duration_word(w[i++], "over");
    if (!d) return d.status();
    rule.over_s = *d;
  }
  if (i == w.size())
    return Status::invalid_argument("a comparison is missing (>, >=, <, <=)" + std::string(kShape));
  bool found = false;
  for (Compare c : {Compare::kAbove, Compare::kAtLeast, Compare::kBelow, Compare::kAtMost})
    if (w[i] == compare_name(c)) {
      rule.compare = c;
      found = true;
    }
  if (!found)
    return Status::invalid_argument("'" + std::string(w[i]) +
                                    "' is not a comparison (>, >=, <, <=)" + kShape);
  if (++i == w.size())
    return Status::invalid_argument("a threshold is missing" + std::string(kShape));
  const std::string_view num = w[i++];
  double v = 0;
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  if (ec != std::errc() || ptr != num.data() + num.size() || !std::isfinite(v))
    return Status::invalid_argument("threshold '" + std::string(num) + "' is not a number");
  rule.threshold = v;
  if (i < w.size() && w[i] == "for") {
    if (++i == w.size())
      return Status::invalid_argument("'for' needs a duration" + std::string(kShape));
    auto d = duration_word(w[i++], "for");
    if (!d) return d.status();
    rule.for_s = *d;
  }
  if (i < w.size())
    return Status::invalid_argument("unexpected '" + std::string(w[i]) + "'" + kShape);
  return rule;
}

std::string format_alert_rule(const AlertRule& r) {
  std::string out = reduce_name(r.reduce);
  out += " over " + format_duration(r.over_s);
  out += std::string(" ") + compare_name(r.compare) + " " + format_number(r.threshold);
  if (r.for_s > 0) out += " for " + format_duration(r.for_s);
  return out;
}

const char* alert_state_name(AlertState s) {
  switch (s) {
    case AlertState::kNormal:
      return "normal";
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
  }
  return "normal";
}

AlertTracker::Change AlertTracker::update(const AlertRule& rule, int64_t now,
                                          std::optional<double> value) {
  value_ = value;
  const bool holds = value && compare_holds(rule.compare, *value, rule.threshold);
  if (!holds) {
    const bool was_firing = state_ == AlertState::kFiring;
    state_ = AlertState::kNormal;
    return was_firing ? Change::kResolved : Change::kNone;
  }
  if (state_ == AlertState::kNormal) {
    since_ = now;
    state_ = AlertState::kPending;
    if (rule.for_s > 0) return Change::kPending;
  }
  if (state_ == AlertState::kPending && now - since_ >= rule.for_s) {
    state_ = AlertState::kFiring;
    return Change::kFired;
  }
  return Change::kNone;
}

}  // namespace tally
