// SelfReporter: once a second, turns SelfMetrics into points of `tally.collector.*` series and
// routes them like any other data, so the collector's health is queryable and chartable with the
// same API (the "Collector health" dashboard). Counters report the increase since the last tick.
// Thread-safety: tick() from one thread (the ingest thread).
#pragma once

#include <vector>

#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "self_metrics.h"

namespace tally::collector {

class SelfReporter {
 public:
  SelfReporter(SeriesCatalog& catalog, Router& router, SelfMetrics& metrics, const Clock& clock)
      : catalog_(catalog), router_(router), metrics_(metrics), clock_(clock) {}
  void tick();

 private:
  const SeriesInfo* series(const char* name, Kind kind, std::vector<ShardWork>& work);

  SeriesCatalog& catalog_;
  Router& router_;
  SelfMetrics& metrics_;
  const Clock& clock_;
  std::vector<uint64_t> last_;
  uint64_t last_flush_count_ = 0, last_flush_sum_ = 0, last_query_count_ = 0, last_query_sum_ = 0;
};

}  // namespace tally::collector
