// LiveLimits: the budgets and retention a reload may change while the collector runs
// (docs/OPERATIONS.md, "Change settings without a restart"). Each component that checks a budget
// holds a pointer to the one LiveLimits the Server owns and reads it instead of copying the
// values at construction, so a reload (Server::reload_settings) changes what the next batch, query,
// new series, StatsD packet or retention sweep sees.
//
// The values are an immutable snapshot swapped whole: set() publishes a new one, get() returns
// the current one. A reader takes one snapshot per unit of work (a batch, a StatsD packet or
// interval, a new series, a budget check of a query, a retention sweep) and uses it throughout,
// so one check never mixes values from before and after a reload; a query that checks several
// budgets reads each check's snapshot afresh.
//
// Thread-safety: get() and set() from any thread (the pointer is swapped under a mutex held only
// to copy it; libstdc++ 12's std::atomic<std::shared_ptr> is reported by ThreadSanitizer); a
// snapshot is never changed once published, and stays valid for as long as its reader holds it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "config.h"
#include "tally/common/mutex.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

struct LiveLimitValues {
  InputLimits input;
  uint64_t max_batch_bytes = 4u << 20;     // CollectorConfig::max_batch_bytes
  uint64_t max_queued_bytes = 256u << 20;  // CollectorConfig::max_queued_bytes
  int64_t max_future_s = 600;              // CollectorConfig::max_future_s
  // The configured resolutions: their steps are fixed at start, how long each is kept may change.
  std::vector<Resolution> resolutions;

  // Points older than the longest retention are dropped on arrival.
  int64_t max_age_s() const { return resolutions.empty() ? 0 : resolutions.back().retention_s; }
  static LiveLimitValues from(const CollectorConfig& c) {
    return {c.limits, c.max_batch_bytes, c.max_queued_bytes, c.max_future_s, c.resolutions};
  }
};

class LiveLimits {
 public:
  explicit LiveLimits(LiveLimitValues v)
      : current_(std::make_shared<const LiveLimitValues>(std::move(v))) {}

  std::shared_ptr<const LiveLimitValues> get() const {
    MutexLock lock(mu_);
    return current_;
  }
  void set(LiveLimitValues v) {
    auto next = std::make_shared<const LiveLimitValues>(std::move(v));
    MutexLock lock(mu_);
    current_.swap(next);
  }  // the previous snapshot goes when its last reader lets go of it

 private:
  mutable Mutex mu_;
  std::shared_ptr<const LiveLimitValues> current_ GUARDED_BY(mu_);
};

}  // namespace tally::collector
