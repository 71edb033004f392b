// Errors of the Prometheus API as values, in Prometheus's shape:
// {"status":"error","errorType":"bad_data","error":"..."} with its HTTP status.
// Thread-safety: plain values.
#pragma once

#include <optional>
#include <string>

#include "tally/common/status.h"

namespace tally::collector::prom {

struct PromError {
  int http = 400;
  std::string type = "bad_data";
  std::string message;
};
// MaybeError: nullopt on success.
using MaybeError = std::optional<PromError>;

inline PromError bad_data(std::string m) {
  return {400, "bad_data", std::move(m)};
}
// Valid PromQL that Tally does not answer (or a limit it exceeds): 422, naming what.
inline PromError unsupported(std::string m) {
  return {422, "execution", std::move(m)};
}
inline PromError from_status(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return bad_data(s.message());
    case StatusCode::kUnavailable:
      return {503, "unavailable", s.message()};
    default:
      return {500, "internal", s.message()};
  }
}

}  // namespace tally::collector::prom
