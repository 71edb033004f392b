// PromQL evaluation over Tally's stored and open buckets (docs/PROMETHEUS.md, "What each kind
// looks like"): a checked expression (promql::check) evaluated at a list of timestamps, giving a
// scalar or a vector per timestamp.
//
//   counter            cumulative since its first bucket; increase(x[w]) = exact bucket sum
//   gauge              last value within the lookback
//   distribution       summary: x{quantile=".."} over the step, x_count / x_sum cumulative
//
// Thread-safety: evaluate() only reads the engine and the catalog; any number run at once.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "query/prom_error.h"
#include "query/prom_names.h"
#include "query/promql.h"
#include "query/query_engine.h"

namespace tally::collector::prom {

// One series of a result: a value (or none) per evaluation timestamp.
struct Series {
  Labels labels;
  std::vector<std::optional<double>> v;
};

// An expression's value at every timestamp: a scalar (s) or an instant vector (vec).
struct Value {
  bool scalar = false;
  std::vector<double> s;  // scalar: one per timestamp
  std::vector<Series> vec;
  bool ordered = false;  // vec is in the order sort()/sort_desc() gave it, not by labels
};

struct EvalContext {
  const QueryEngine& engine;
  const SeriesCatalog& catalog;
  const Clock& clock;
  std::vector<int64_t> times_ms;  // the evaluation timestamps, ascending
  int64_t step_ms = 0;            // the range query's step, 0 for an instant query
  Deadline deadline = {};         // checked at every node and inside the reads (query_timeout)
};

// Evaluates `root` (which promql::check() accepted as a scalar or instant vector).
MaybeError evaluate(const EvalContext& ctx, const promql::Node& root, Value* out);

}  // namespace tally::collector::prom
