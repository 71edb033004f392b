// StatsD / DogStatsD line parser: one datagram in, samples and per-line outcomes out.
//
//   api.errors:1|c|@0.5|#region:eu,status:500
//   name:value[:value...]|type[|@rate][|#k:v,k2:v2][|T<unix seconds>][|c:...][|e:...][|x...]
//   _e{title_len,text_len}:title|text[|d:ts][|h:host][|p:prio][|t:alert][|#tags]   (event)
//   _sc|name|status[|d:ts][|h:host][|#tags][|m:message]                             (check)
//
// Two dialects (docs/format/statsd.md has the table, line by line):
//   kDogStatsd  as the Datadog Agent reads it: gauges are absolute ("-3" sets -3), sample rates
//               weight histograms by trunc(1/rate) and "|T" lines are not scaled, origin tags and
//               fields are dropped, unknown fields are ignored;
//   kEtsy       as Etsy StatsD reads it: a signed gauge value ("+5", "-3") is a delta, timer and
//               histogram weights are round(1/rate).
// Names and tag keys Tally's rules do not allow are mapped (tally/common/name_mapping.h), never
// rejected; a tag that still cannot be stored is dropped and counted, and the line is kept. Only
// a line that cannot mean anything is rejected, with one StatsdReject reason.
//
// Thread-safety: pure functions; they allocate only what they append.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tally/common/series_key.h"

namespace tally::collector {

enum class StatsdDialect : uint8_t { kDogStatsd, kEtsy };
const char* statsd_dialect_name(StatsdDialect d);  // "dogstatsd", "etsy"
std::optional<StatsdDialect> parse_statsd_dialect(std::string_view name);

enum class StatsdType : uint8_t {
  kCounter,       // "c"
  kGauge,         // "g"
  kDistribution,  // "ms", "h", "d"
  kSet,           // "s": the listener counts unique members per 1 s bucket (statsd_listener.h)
};
const char* statsd_type_name(StatsdType type);  // "counter", "gauge", "distribution", "set"

struct StatsdSample {
  std::string metric;  // mapped (name_mapping.h)
  Tags tags;           // mapped, valid and canonical (sorted by key)
  StatsdType type = StatsdType::kCounter;
  // counter: the increment, already scaled by the sample rate where the dialect scales it;
  // gauge: the new value, or the change when `delta`; distribution: one observation; set: 0.
  double value = 0;
  // distribution: how many observations this sample stands for, and the factor its value adds
  // to the sum (the Agent's histograms add value/rate to the sum but trunc(1/rate) to the
  // count). Both 1 when unsampled. counter: `count` is the number of lines whose increments
  // `value` sums (the listener's line cache, statsd_line_cache.h); 1 from the parser.
  uint64_t count = 1;
  double sum_weight = 1;
  bool delta = false;       // gauge only (etsy dialect): "+N" / "-N" adds to the current gauge
  std::string set_member;   // set only: the member as sent (opaque bytes)
  int64_t timestamp_s = 0;  // "|T<unix s>"; 0 = not given (the listener stamps it)

  bool operator==(const StatsdSample&) const = default;
};

// A well-formed DogStatsD event, as the collector stores it (an annotation, source "dogstatsd"):
//   _e{17,16}:Deploy web 1.4 ok|rolled\\nout by ci|d:1700000000|h:web-1|p:low|#service:web
// The Agent's "\\n" (backslash, n) in the text is a newline; in the title, which is one line,
// it is a space. Tags follow the metric lines' rules; h:, p:, t:, k: and s: become the tags
// host, priority, alert_type, aggregation_key and source_type_name (they win over a "#" tag of
// the same key). A p: other than low/normal or a t: other than error/warning/info/success is
// ignored, as the Agent ignores it.
struct StatsdEvent {
  int64_t time_ms = 0;  // d: (unix seconds) * 1000; 0 = not given (the listener stamps it)
  std::string title;
  std::string text;
  Tags tags;  // canonical

  bool operator==(const StatsdEvent&) const = default;
};

// Why a line was rejected; each reason is one series of tally_statsd_rejected_total{reason}.
enum class StatsdReject : uint8_t {
  kSyntax,           // no ':' in name:value, no '|type', an empty name or value
  kMetricName,       // the name is not UTF-8, or longer than kMaxMetricBytes once mapped
  kValue,            // not a finite number, or non-finite once scaled
  kType,             // unknown type
  kSampleRate,       // not a number, or not in [kMinSampleRate, +inf)
  kTimestamp,        // "|T" not followed by a positive integer
  kTimestampTooOld,  // "|T" older than the collector keeps (max_age_s)
  kTimestampTooNew,  // "|T" further ahead than allowed (max_future_s)
  kValuesPerLine,    // more values than max_values_per_line
  kDatagramBudget,   // the datagram's samples would decode to more than max_decoded_bytes
  kEvent,            // an "_e{" line that is not a well-formed event
  kServiceCheck,     // an "_sc|" line that is not a well-formed service check
  kTruncated,        // the datagram was cut by the receive buffer (listener only)
  kKindConflict,     // the metric exists with another kind (router only)
};
inline constexpr size_t kStatsdRejectReasons = 14;
const char* statsd_reject_name(StatsdReject reason);  // "syntax", "metric_name", ... (snake_case)

// Smallest sample rate taken: 1/rate weights stay below 1e9 observations, so a count and a sum
// stay exact integers and finite (@1e-300 would make 1e300 observations of one line).
inline constexpr double kMinSampleRate = 1e-9;

struct StatsdParseOptions {
  StatsdDialect dialect = StatsdDialect::kDogStatsd;
  // "|T" checks: when now_s > 0, a timestamp before now_s - max_age_s or after
  // now_s + max_future_s rejects the line (kTimestampTooOld / kTimestampTooNew).
  int64_t now_s = 0;
  int64_t max_age_s = 0;
  int64_t max_future_s = 0;
  size_t max_values_per_line = 1024;  // DogStatsD multi-value "x:1:2:3|h"
  // Decoded bytes one datagram may produce (per sample: its struct, metric and tags); a 64 KiB
  // datagram of one line with 30,000 values and 32 tags would otherwise copy ~300 MB of tags.
  size_t max_decoded_bytes = 8u << 20;
};

struct StatsdLineError {
  size_t line_number = 0;  // 1-based within the datagram
  std::string_view line;   // points into the parsed datagram; valid only while it is
  StatsdReject reason = StatsdReject::kSyntax;
  std::string message;
};

struct StatsdPacketCounts {
  size_t lines_ok = 0;        // metric lines that produced samples (a multi-value line once)
  size_t lines_rejected = 0;  // == errors appended
  size_t events = 0;          // well-formed "_e{" lines
  size_t service_checks = 0;  // well-formed "_sc|" lines
  size_t tags_dropped = 0;    // tags left out of an accepted line (see docs/format/statsd.md)
  size_t names_mapped = 0;    // metric names or tag keys stored under a mapped spelling
  size_t cached = 0;          // lines_ok counted into the line cache instead of appended
};

class StatsdLineCache;

// Parses a datagram of lines separated by "\n" or "\r\n" (a trailing newline and empty lines
// are fine and not counted). Appends samples and errors; every good line counts even when
// others in the datagram are bad. With a cache (statsd_line_cache.h), a counter line whose key
// it holds is counted into it instead of appended (`cached`), and a good line that may be is
// kept there; what the cache sums comes out of StatsdLineCache::take().
// With `events`, every well-formed event is appended there too.
StatsdPacketCounts parse_statsd_packet(std::string_view packet, const StatsdParseOptions& options,
                                       std::vector<StatsdSample>& samples,
                                       std::vector<StatsdLineError>& errors,
                                       StatsdLineCache* cache = nullptr,
                                       std::vector<StatsdEvent>* events = nullptr);

}  // namespace tally::collector
