// The Prometheus-compatible read API (docs/PROMETHEUS.md): /api/v1/query, /api/v1/query_range,
// /api/v1/series, /api/v1/labels, /api/v1/label/<name>/values, /api/v1/metadata and
// /api/v1/status/buildinfo, GET or form-encoded POST, answering in Prometheus's JSON shapes for
// the PromQL subset promql::check() accepts.
//
// What Prometheus clients see:
//   - names: a Tally metric or tag key becomes a Prometheus name by turning every character
//     outside [a-zA-Z0-9_:] (labels: [a-zA-Z0-9_]) into '_': api.latency-ms -> api_latency_ms.
//   - a counter is cumulative since its first bucket (as statsd_exporter shows StatsD counters);
//     increase(x[w]) at t is exactly the sum of its buckets in [t - w, t), rate() that over w.
//   - a gauge is its last value (looking back 5 minutes); a distribution is a summary:
//     x{quantile="0.99"} over each step, x_count and x_sum cumulative.
// The evaluation is query/promql_eval.h, the name table query/prom_names.h.
// Thread-safety: the handlers only read the catalog and the engine; any number run at once.
#pragma once

#include <string>
#include <string_view>

#include "query/prom_names.h"  // prom_metric_name, prom_label_name
#include "query/query_engine.h"
#include "self_metrics.h"

namespace httplib {
class Server;
}

namespace tally::collector {

// Adds the /api/v1/* routes to an HTTP server (HttpApi::routes() calls this once).
void register_prom_routes(httplib::Server& server, const QueryEngine& engine,
                          const SeriesCatalog& catalog, const Clock& clock, SelfMetrics& metrics);

}  // namespace tally::collector
