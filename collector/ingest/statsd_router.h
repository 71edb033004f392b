// StatsdRouter: turns StatsD samples (already parsed, gauge deltas resolved, sets turned into
// gauges by the StatsdListener) into shard work: counters add, gauges become one-sample gauge
// points, timers/histograms/distributions become sketch observations of the sample's weight.
// A sample whose metric already exists with another kind is dropped, counted and logged.
// Thread-safety: called on the listener thread; the catalog and router are thread-safe.
#pragma once

#include <atomic>
#include <map>

#include "aggregate/cardinality.h"
#include "aggregate/catalog.h"
#include "aggregate/router.h"
#include "ingest/batch_decoder.h"
#include "ingest/statsd_parser.h"
#include "self_metrics.h"

namespace tally::collector {

class StatsdRouter {
 public:
  // New series are created through `guard` when given (cardinality limits), else directly.
  StatsdRouter(SeriesCatalog& catalog, Router& router, SelfMetrics& metrics, IngestLimits limits,
               const Clock& clock, CardinalityGuard* guard = nullptr)
      : catalog_(catalog),
        router_(router),
        metrics_(metrics),
        limits_(limits),
        clock_(clock),
        guard_(guard) {}

  void operator()(std::vector<StatsdSample>&& samples);
  // Samples dropped here (kind conflicts: tally_statsd_rejected_total{reason="kind_conflict"}),
  // beside the lines the listener rejected.
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  SeriesCatalog& catalog_;
  Router& router_;
  SelfMetrics& metrics_;
  const IngestLimits limits_;
  const Clock& clock_;
  CardinalityGuard* const guard_;
  int64_t last_log_s_ = 0;
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace tally::collector
