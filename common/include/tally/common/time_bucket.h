// Time buckets, durations, the retention list and an injectable clock.
//
// All times are unix seconds (int64). A bucket of resolution r starting at t covers [t, t + r).
// The retention list is Graphite-style "1s:6h,10s:7d,1m:30d,1h:2y": each resolution must divide
// the next one so coarser buckets are exact rollups of finer ones.
// Thread-safety: pure functions; SystemClock is thread-safe; ManualClock is atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tally/common/status.h"

namespace tally {

// Floor of t to a multiple of res (res > 0), correct for negative t.
constexpr int64_t bucket_start(int64_t t, int64_t res) {
  int64_t q = t / res;
  if ((t % res != 0) && (t < 0)) --q;
  return q * res;
}

// "10s", "5m", "6h", "7d", "2w", "2y" (365 d), or a bare number of seconds.
Result<int64_t> parse_duration(std::string_view text);
// The shortest exact rendering: 3600 -> "1h", 90 -> "90s".
std::string format_duration(int64_t seconds);
// "250ms", or anything parse_duration takes, in milliseconds. Strict: the whole text is a
// positive whole number and one unit ("12xms", "1.5s" and "5 ms" are errors).
Result<int64_t> parse_duration_ms(std::string_view text);
// The inverse, shortest form: 1500 -> "1500ms", 5000 -> "5s".
std::string format_duration_ms(int64_t ms);

struct Resolution {
  int64_t step_s = 1;
  int64_t retention_s = 0;
  bool operator==(const Resolution&) const = default;
};

inline constexpr std::string_view kDefaultRetention = "1s:6h,10s:7d,1m:30d,1h:2y";

Result<std::vector<Resolution>> parse_retention(std::string_view text);
std::string format_retention(const std::vector<Resolution>& list);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() const = 0;
  int64_t now_s() const { return now_ms() / 1000; }
};

class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override;
  static SystemClock& instance();
};

// A clock tests set by hand; never moves by itself.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t now_ms() const override { return now_ms_.load(std::memory_order_relaxed); }
  void set_ms(int64_t ms) { now_ms_.store(ms, std::memory_order_relaxed); }
  void advance_ms(int64_t ms) { now_ms_.fetch_add(ms, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace tally
