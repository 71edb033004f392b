// StatsdRouter: turns StatsD samples (already parsed, gauge deltas resolved, sets turned into
// gauges by the StatsdListener) into shard work, pre-aggregated per (series, 1 s bucket) until the
// ingest thread takes it for the write-ahead log:
//   - counters add up into one counter point per (series, second);
//   - gauges merge into one gauge point per (series, second) (last, min, max, sum, count), which
//     is what the shard's bucket makes of them one by one;
//   - timers/histograms/distributions become one sketch per (series, second).
// A sample whose metric already exists with another kind is dropped, counted and logged.
//
// Durability (docs/CORRECTNESS.md): nothing goes to the shards from here. The ingest thread
// (ZmqIngest) take()s what has gathered since its last take as one interval, logs it as one
// StatsD record (statsd_record.h), syncs it with its group of SDK batches and only then routes
// it, so a query never shows a StatsD count that a crash can take back. While the ingest thread
// syncs, the next interval gathers here: the slower the disk, the larger (and fewer) the records.
//
// Thread-safety: operator() on the listener thread; take(), wake_fd() and rejected() from any
// thread (the ingest thread). The catalog is thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <unordered_map>

#include "aggregate/cardinality.h"
#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "ingest/batch_decoder.h"
#include "ingest/statsd_parser.h"
#include "live_limits.h"
#include "self_metrics.h"
#include "tally/common/mutex.h"

namespace tally::collector {

// What the listener accepted since the previous take(): per-shard work (index = shard, each item
// aggregated per (series, second)) and the number of samples it holds.
struct StatsdInterval {
  std::vector<ShardWork> per_shard;
  uint64_t samples = 0;
  bool empty() const {
    for (const auto& w : per_shard)
      if (w.points() || !w.new_series.empty()) return false;
    return true;
  }
};

class StatsdRouter {
 public:
  // New series are created through `guard` when given (cardinality limits), else directly. With
  // `live` (it must outlive the router) the age and future bounds are read from it for every call
  // instead of from `limits` (a reload changes them).
  StatsdRouter(SeriesCatalog& catalog, size_t shard_count, SelfMetrics& metrics,
               IngestLimits limits, const Clock& clock, CardinalityGuard* guard = nullptr,
               const LiveLimits* live = nullptr);
  ~StatsdRouter();
  StatsdRouter(const StatsdRouter&) = delete;
  StatsdRouter& operator=(const StatsdRouter&) = delete;

  // Listener thread: validates and aggregates samples into the open interval, and wakes the
  // ingest thread (wake_fd()) when the interval was empty.
  void operator()(std::vector<StatsdSample>&& samples);
  // Ingest thread: takes the open interval (possibly empty) and starts a new one; clears wake_fd.
  StatsdInterval take();
  // An eventfd that is readable while an interval waits to be taken.
  int wake_fd() const { return wake_fd_; }
  // Samples dropped here (kind conflicts: tally_statsd_rejected_total{reason="kind_conflict"}),
  // beside the lines the listener rejected.
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  // Position of a (series, second) point in its shard's work of the open interval.
  struct Key {
    const SeriesInfo* series;
    int64_t time;
    bool operator==(const Key& o) const { return series == o.series && time == o.time; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<const void*>()(k.series) ^
             (std::hash<int64_t>()(k.time) * 0x9e3779b97f4a7c15ULL);
    }
  };

  SeriesCatalog& catalog_;
  const size_t shard_count_;
  SelfMetrics& metrics_;
  const IngestLimits limits_;
  const Clock& clock_;
  CardinalityGuard* const guard_;
  const LiveLimits* const live_;
  int64_t last_log_s_ = 0;  // listener thread
  std::atomic<uint64_t> rejected_{0};
  int wake_fd_ = -1;

  Mutex mu_;
  StatsdInterval open_ GUARDED_BY(mu_);
  std::unordered_map<Key, size_t, KeyHash> at_ GUARDED_BY(mu_);  // index into counters/gauges/dists
};

}  // namespace tally::collector
