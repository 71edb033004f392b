// Alert rules: a condition on one series' recent values, held for a while (docs/DASHBOARD.md,
// "Thresholds and alerts").
//
// The rule's text form is what files hold and users type, the same wherever it is evaluated (the
// dashboard today; the collector can run the same rules headless):
//
//   avg over 1m > 100 for 2m      the mean of the last minute's final buckets above 100, two
//                                 minutes in a row
//   last > 5                      the newest final bucket above 5, at once
//   total over 5m >= 1000 for 30s
//
// reduce  = last | min | max | avg | total   (over the final buckets of the last `over`; default
// 1m) compare = > | >= | < | <= A series with no final bucket in the window has no value: the
// condition does not hold. Thread-safety: values and pure functions; an AlertTracker belongs to its
// caller.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tally/common/status.h"

namespace tally {

// How a series' points become one number (stat and gauge panels, tables, alerts). NaN points
// (no data) are skipped.
enum class Reduce { kLast, kMin, kMax, kAvg, kTotal };
inline constexpr Reduce kAllReduces[] = {Reduce::kLast, Reduce::kMin, Reduce::kMax, Reduce::kAvg,
                                         Reduce::kTotal};
const char* reduce_name(Reduce r);  // "last", "min", "max", "avg", "total"
std::optional<Reduce> parse_reduce(std::string_view name);
// nullopt when `values` holds no number.
std::optional<double> reduce_values(Reduce r, std::span<const double> values);

enum class Compare { kAbove, kAtLeast, kBelow, kAtMost };
const char* compare_name(Compare c);  // ">", ">=", "<", "<="
bool compare_holds(Compare c, double value, double threshold);

inline constexpr int64_t kMaxAlertDurationS = 7 * 24 * 3600;

struct AlertRule {
  Reduce reduce = Reduce::kAvg;
  int64_t over_s = 60;  // the reduce reads the final buckets of the last over_s seconds
  Compare compare = Compare::kAbove;
  double threshold = 0;
  int64_t for_s = 0;  // how long the condition must hold before the alert fires
  bool operator==(const AlertRule&) const = default;
};

// "avg over 1m > 100 for 2m". Errors name the word that is wrong.
Result<AlertRule> parse_alert_rule(std::string_view text);
// The canonical text: parse_alert_rule(format_alert_rule(r)) == r.
std::string format_alert_rule(const AlertRule& rule);

enum class AlertState { kNormal, kPending, kFiring };
const char* alert_state_name(AlertState s);  // "normal", "pending", "firing"

// One series' alert as evaluations come in (in time order, any cadence): Normal until the
// condition holds, Pending while it has held less than for_s, Firing once it has held for_s (at
// once with for_s = 0); back to Normal as soon as it does not hold, or the value is missing.
class AlertTracker {
 public:
  enum class Change { kNone, kPending, kFired, kResolved };
  Change update(const AlertRule& rule, int64_t now, std::optional<double> value);
  AlertState state() const { return state_; }
  int64_t since() const { return since_; }  // when the condition began to hold
  std::optional<double> value() const { return value_; }

 private:
  AlertState state_ = AlertState::kNormal;
  int64_t since_ = 0;
  std::optional<double> value_;
};

}  // namespace tally
