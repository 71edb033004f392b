// Coverage: the intervals of time during which this collector ran and accepted data, kept in
// coverage.sqlite in the data directory (docs/format/coverage.md). A query zero-fills a counter
// only where it was covered: outside, nobody was counting, and an empty bucket there is a gap.
//
// CoverageSet is the interval logic alone (merge, cap, bounds), a value type. CoverageStore keeps
// one on disk: start() begins an interval (or continues the last one after a short gap), a
// heartbeat thread writes the running interval's end every kHeartbeatMs, finish() writes the exact
// end of a clean stop. After a kill -9 the record ends at the last heartbeat.
//
// Thread-safety: CoverageSet none (a value). CoverageStore: snapshot() from any thread; open(),
// start() and finish() from the owning thread; heartbeat() from the store's thread (or a test).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "live_limits.h"
#include "self_metrics.h"
#include "storage/sqlite.h"
#include "tally/common/mutex.h"
#include "tally/common/status.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

// [start_ms, end_ms], unix milliseconds, start_ms <= end_ms.
struct CoverageInterval {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  bool operator==(const CoverageInterval&) const = default;
};

class CoverageSet {
 public:
  CoverageSet() = default;
  // Sorted, non-overlapping intervals (as stored); overlapping or touching ones are merged.
  explicit CoverageSet(std::vector<CoverageInterval> intervals);

  // A start at now_ms: continues the last interval when now_ms is within merge_gap_ms of its end,
  // else appends [now_ms, now_ms]. A time before the last interval's end (a clock that stepped
  // back) continues the last interval too.
  void begin(int64_t now_ms, int64_t merge_gap_ms);
  // Moves the last interval's end to now_ms (never backwards); no-op when empty.
  void extend(int64_t now_ms);
  // Drops the intervals that ended before oldest_ms, then the oldest beyond max_intervals.
  // Returns how many went.
  size_t trim(int64_t oldest_ms, size_t max_intervals);

  // True when some interval shares time with [from_ms, to_ms) (a bucket partly covered is
  // covered; one that only touches an interval's end at its start instant is not).
  bool overlaps(int64_t from_ms, int64_t to_ms) const;
  // The intervals sharing time with [from_ms, to_ms), clipped to it.
  std::vector<CoverageInterval> within(int64_t from_ms, int64_t to_ms) const;

  const std::vector<CoverageInterval>& intervals() const { return intervals_; }
  bool empty() const { return intervals_.empty(); }

 private:
  std::vector<CoverageInterval> intervals_;
};

struct CoverageStoreOptions {
  std::string path;          // coverage.sqlite (created when missing)
  bool sync_commits = true;  // synchronous=FULL: a heartbeat is on disk when it returns
  // The longest retention bounds what is kept (a reload changes it); null = no age bound.
  const LiveLimits* limits = nullptr;
  int64_t heartbeat_ms = 0;  // 0 = coverage_format::kHeartbeatMs
};

class CoverageStore {
 public:
  // Opens the record. *existed says whether the file was there before (a data directory written
  // by an older collector has none).
  static Result<std::unique_ptr<CoverageStore>> open(CoverageStoreOptions o, const Clock& clock,
                                                     SelfMetrics& metrics, bool* existed = nullptr);
  ~CoverageStore();  // stops the heartbeat thread; writes nothing (finish() does)

  // Records [from_ms, to_ms] as covered (an upgrade: history from before the record existed).
  Status add_covered(int64_t from_ms, int64_t to_ms);
  // Begins (or continues) the running interval at the clock's now, writes it and starts the
  // heartbeat thread. A failed write is returned, but the store runs: the next heartbeat writes.
  Status start();
  // Writes the running interval's end at the clock's now.
  Status heartbeat();
  // Stops the heartbeat thread and writes the exact end. Idempotent.
  Status finish();

  // What is covered: the stored intervals, the running one ending now.
  CoverageSet snapshot() const;

 private:
  CoverageStore(CoverageStoreOptions o, const Clock& clock, SelfMetrics& metrics,
                std::unique_ptr<Db> db)
      : options_(std::move(o)), clock_(clock), metrics_(metrics), db_(std::move(db)) {}
  Status create_schema() REQUIRES(db_mu_);
  Status load() REQUIRES(db_mu_);
  // Applies `change` to the intervals in memory (then trims them), and writes the result: the
  // intervals' mutex only for the change, so queries never wait for the disk.
  template <typename Change>
  Status update(Change&& change);
  // Replaces the stored intervals with `set` in one transaction.
  Status save(const CoverageSet& set) REQUIRES(db_mu_);
  void run();

  const CoverageStoreOptions options_;
  const Clock& clock_;
  SelfMetrics& metrics_;

  Mutex db_mu_;  // one write at a time, in the order of the changes; taken before mu_
  std::unique_ptr<Db> db_ GUARDED_BY(db_mu_);
  mutable Mutex mu_;
  CoverageSet set_ GUARDED_BY(mu_);
  bool running_ GUARDED_BY(mu_) = false;  // between start() and finish(): the last one is open
  bool stopping_ GUARDED_BY(mu_) = false;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace tally::collector
