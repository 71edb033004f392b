#include "tally/common/query_fn.h"

namespace tally {

std::optional<Fn> parse_fn(std::string_view name) {
  for (Fn fn : kAllFns)
    if (name == fn_name(fn)) return fn;
  return std::nullopt;
}

const char* fn_name(Fn fn) {
  switch (fn) {
    case Fn::kSum:
      return "sum";
    case Fn::kRate:
      return "rate";
    case Fn::kAvg:
      return "avg";
    case Fn::kMin:
      return "min";
    case Fn::kMax:
      return "max";
    case Fn::kCount:
      return "count";
    case Fn::kP50:
      return "p50";
    case Fn::kP90:
      return "p90";
    case Fn::kP99:
      return "p99";
  }
  return "?";
}

}  // namespace tally
