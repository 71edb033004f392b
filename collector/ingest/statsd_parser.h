// StatsD / DogStatsD line parser: one datagram in, samples and per-line errors out.
//
//   api.errors:1|c|@0.5|#region:eu,status:500
//   name:value[:value...]|type[|@rate][|#k:v,k2:v2][|c:container][|T<unix seconds>]
//
// Types: c (counter), g (gauge; "+N"/"-N" is a delta), ms / h / d (timer, histogram,
// distribution: all three are distribution observations), s (set). The full grammar, the tag
// mapping and a must-parse / must-not-parse table are in docs/format/statsd.md.
//
// A malformed line yields one StatsdLineError and no samples; it never affects the other lines
// of the datagram. Thread-safety: pure functions; they allocate only what they append.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tally/common/series_key.h"

namespace tally::collector {

enum class StatsdType : uint8_t {
  kCounter,       // "c"
  kGauge,         // "g"
  kDistribution,  // "ms", "h", "d"
  kSet,           // "s": the listener counts unique members per 1 s bucket (statsd_listener.h)
};
const char* statsd_type_name(StatsdType type);  // "counter", "gauge", "distribution", "set"

struct StatsdSample {
  std::string metric;
  Tags tags;  // validated and canonical (sorted by key)
  StatsdType type = StatsdType::kCounter;
  // counter: the increment, already divided by sample_rate (what the aggregator adds);
  // gauge: the new value, or the change when `delta`; distribution: one observation; set: 0.
  double value = 0;
  // As sent, in (0, 1]; 1 when absent. Ignored for gauges and sets (as in StatsD).
  double sample_rate = 1;
  bool delta = false;       // gauge only: "+N" / "-N" adds to the current gauge
  std::string set_member;   // set only: the member as sent (opaque bytes)
  int64_t timestamp_s = 0;  // DogStatsD "|T<unix s>"; 0 = not given (the listener stamps it)

  // Distribution observations count 1/sample_rate times; the sketch counts in integers, so the
  // weight is rounded to the nearest integer, at least 1 (@0.5 -> 2, @0.1 -> 10, @0.3 -> 3).
  uint64_t observation_weight() const;

  bool operator==(const StatsdSample&) const = default;
};

// Why a line was rejected; each reason is a separate counter in the collector's own metrics.
enum class StatsdReject : uint8_t {
  kSyntax,        // no ':' after the name or no '|type'
  kMetricName,    // fails validate_metric_name
  kValue,         // empty, not a finite number, or an empty set member
  kType,          // unknown type
  kSampleRate,    // not a number in (0, 1]
  kTags,          // tag key or value invalid after mapping, duplicate key, too many tags
  kTimestamp,     // "|T" not followed by a positive integer
  kField,         // empty, repeated or unknown "|" field
  kEvent,         // DogStatsD event "_e{...}": not supported
  kServiceCheck,  // DogStatsD service check "_sc|...": not supported
  kTruncated,     // the datagram was cut by the receive buffer (listener only)
};
inline constexpr size_t kStatsdRejectReasons = 11;
const char* statsd_reject_name(StatsdReject reason);  // "syntax", "metric_name", ... (snake_case)

struct StatsdError {
  StatsdReject reason = StatsdReject::kSyntax;
  std::string message;  // human-readable, names the offending part
};

struct StatsdLineError {
  size_t line_number = 0;  // 1-based within the datagram
  std::string_view line;   // points into the parsed datagram; valid only while it is
  StatsdReject reason = StatsdReject::kSyntax;
  std::string message;
};

struct StatsdPacketCounts {
  size_t lines_ok = 0;        // lines that produced samples (a multi-value line counts once)
  size_t lines_rejected = 0;  // == errors appended
};

// Parses one line (without its newline). On success appends one sample per value and returns
// nullopt; on failure appends nothing and returns why.
std::optional<StatsdError> parse_statsd_line(std::string_view line, std::vector<StatsdSample>& out);

// Parses a datagram of lines separated by "\n" or "\r\n" (a trailing newline and empty lines
// are fine and not counted). Appends samples and errors; every good line counts even when
// others in the datagram are bad.
StatsdPacketCounts parse_statsd_packet(std::string_view packet, std::vector<StatsdSample>& samples,
                                       std::vector<StatsdLineError>& errors);

// Maps a DogStatsD tag key onto Tally's key alphabet [A-Za-z_][A-Za-z0-9_.-]*: every other
// character (one per UTF-8 code point) becomes '_', and a key starting with a digit, '.' or '-'
// gets a leading '_'. "app.kubernetes.io/name" -> "app.kubernetes.io_name", "2xx" -> "_2xx".
std::string map_statsd_tag_key(std::string_view key);

}  // namespace tally::collector
