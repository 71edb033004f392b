// The one mapping from names other protocols allow (DogStatsD, Prometheus UTF-8 names, OTLP)
// onto Tally's metric-name and tag-key alphabets, and back (docs/format/statsd.md, "Names").
//
// A name Tally's rules already allow, and that does not start with "U__", is kept as it is.
// Any other name is escaped the way Prometheus 3 escapes UTF-8 names ("U__" escaping), so that
// a Prometheus client reading Tally sees the same spelling Prometheus itself would produce:
//   - the result starts with "U__";
//   - '_' becomes "__";
//   - every other allowed character (for the first character: a letter) is copied;
//   - every other code point becomes "_" + its hex code point (lowercase) + "_".
//   "api latency"            -> "U__api_20_latency"
//   "1xx"                    -> "U___31_xx"
//   "app.kubernetes.io/name" -> "U__app.kubernetes.io_2f_name" (as a tag key)
//   "U__x" (valid, but it starts with the marker) -> "U__U____x"
//   ""  (a DogStatsD tag "#:v")                   -> "U__"
// The mapping is injective, and unmap_*() gives the original back, so the API can show and
// accept what the client sent. Input that is not valid UTF-8 is not mapped (std::nullopt).
// The length limits (kMaxMetricBytes, kMaxTagKeyBytes) apply to the result; the caller decides
// what to do with a result that is too long.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tally {

enum class NameAlphabet {
  kMetric,  // [A-Za-z_][A-Za-z0-9_.:-]*
  kTagKey,  // [A-Za-z_][A-Za-z0-9_.-]*
};

// True when `name` is kept as it is: non-empty, in the alphabet, not starting with "U__".
// (Length is not checked here.)
bool name_needs_no_mapping(std::string_view name, NameAlphabet alphabet);

// The stored spelling of `name`; nullopt when `name` is not valid UTF-8.
std::optional<std::string> map_name(std::string_view name, NameAlphabet alphabet);

// The original of a stored spelling: `stored` itself unless it starts with "U__"; nullopt when
// it starts with "U__" but is not a well-formed escape.
std::optional<std::string> unmap_name(std::string_view stored);

}  // namespace tally
