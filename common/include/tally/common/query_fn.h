// The functions of a range query (docs/API.md, /api/query's `fn`): what the collector computes
// per step bucket and what a dashboard panel asks for.
//
// The names are the wire and file form ("sum", "rate", ..., "p99"): the HTTP parameter, the
// answer's "fn" and a dashboard file's panel "fn". Thread-safety: constants and pure functions.
#pragma once

#include <optional>
#include <string_view>

namespace tally {

enum class Fn { kSum, kRate, kAvg, kMin, kMax, kCount, kP50, kP90, kP99 };

// Every function, in the order the API documents them (and the dashboard offers them).
inline constexpr Fn kAllFns[] = {Fn::kSum,   Fn::kRate, Fn::kAvg, Fn::kMin, Fn::kMax,
                                 Fn::kCount, Fn::kP50,  Fn::kP90, Fn::kP99};

// "sum", "rate", "avg", "min", "max", "count", "p50", "p90", "p99"; nullopt for anything else
// (names are case-sensitive).
std::optional<Fn> parse_fn(std::string_view name);
const char* fn_name(Fn fn);

// sum, rate and count add up what arrived: over a counter an empty bucket is 0, and a range of
// them is zero-filled (docs/API.md).
constexpr bool is_additive(Fn fn) {
  return fn == Fn::kSum || fn == Fn::kRate || fn == Fn::kCount;
}
// p50, p90 and p99: quantiles of a distribution's sketch.
constexpr bool is_percentile(Fn fn) {
  return fn == Fn::kP50 || fn == Fn::kP90 || fn == Fn::kP99;
}
// The quantile a percentile stands for (0.5, 0.9, 0.99); requires is_percentile(fn).
constexpr double fn_quantile(Fn fn) {
  return fn == Fn::kP50 ? 0.5 : fn == Fn::kP90 ? 0.9 : 0.99;
}

}  // namespace tally
