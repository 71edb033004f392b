#include "ingest/statsd_parser.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "ingest/statsd_line_cache.h"
#include "tally/common/name_mapping.h"

namespace tally::collector {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Quotes a piece of input for an error message, cut to a readable length.
std::string quoted(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "'";
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out.append("...");
  out.push_back('\'');
  return out;
}

struct LineError {
  StatsdReject reason;
  std::string message;
};

// A decimal number with an optional sign, as Go's ParseFloat reads the common forms ("1",
// "-2.5", "+3", "1e3", ".5", "5."); hex floats, "inf" and "nan" are not taken (docs).
// `sign` is '+', '-' or 0.
std::optional<double> parse_number(std::string_view s, char* sign_out = nullptr) {
  char sign = 0;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    sign = s[0];
    s.remove_prefix(1);
  }
  if (s.empty() || !(is_digit(s[0]) || s[0] == '.')) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::general);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  if (sign_out) *sign_out = sign;
  return sign == '-' ? -v : v;
}

enum class RawType : uint8_t { kCounter, kGauge, kHistogram, kTimer, kDistribution, kSet };

std::optional<RawType> parse_type(std::string_view t) {
  if (t.size() == 1) {
    switch (t[0]) {
      case 'c':
        return RawType::kCounter;
      case 'g':
        return RawType::kGauge;
      case 'h':
        return RawType::kHistogram;
      case 'd':
        return RawType::kDistribution;
      case 's':
        return RawType::kSet;
    }
    return std::nullopt;
  }
  if (t == "ms") return RawType::kTimer;
  return std::nullopt;
}

// Tags the Agent reads as origin information and never stores as tags (enrich.go).
bool is_origin_tag(std::string_view tag) {
  return tag.starts_with("dd.internal.entity_id:") || tag.starts_with("dd.internal.card:") ||
         tag.starts_with("dd.internal.jmx_check_name:");
}

// "#k:v,flag,k2:v2" (without the '#'): split at ',' and each tag at its first ':', as the Agent
// does (no trimming). Rules in docs/format/statsd.md, "Tags".
// An event may hold several "|#" sections: `tags` then holds the earlier ones (their keys
// distinct, after the merge below), and they count against kMaxTags too.
void parse_tags(std::string_view text, Tags& tags, StatsdPacketCounts& counts) {
  size_t distinct = tags.size();
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty() || is_origin_tag(item)) continue;
    const size_t colon = item.find(':');
    std::string_view raw_key = item.substr(0, colon);
    std::string_view value =
        colon == std::string_view::npos ? std::string_view("true") : item.substr(colon + 1);
    if (value.empty()) {
      // "host:" clears the Agent's host; any other empty value has no Tally spelling.
      if (raw_key != "host") ++counts.tags_dropped;
      continue;
    }
    std::string key;
    if (name_needs_no_mapping(raw_key, NameAlphabet::kTagKey)) {
      key.assign(raw_key);
    } else {
      auto mapped = map_name(raw_key, NameAlphabet::kTagKey);
      if (!mapped) {
        ++counts.tags_dropped;
        continue;
      }
      key = std::move(*mapped);
      ++counts.names_mapped;
    }
    if (key.size() > kMaxTagKeyBytes || !validate_tag_value(value)) {
      ++counts.tags_dropped;
      continue;
    }
    bool seen = false;
    for (const Tag& t : tags) {
      if (t.key == key) {
        seen = true;
        break;
      }
    }
    if (!seen) {
      if (distinct == kMaxTags) {
        ++counts.tags_dropped;
        continue;
      }
      ++distinct;
    }
    tags.push_back(Tag{std::move(key), std::string(value)});
  }
  if (tags.size() < 2) return;
  canonicalize(tags);  // stable: values of one key stay in the order sent
  // One key, several values (legal in Datadog: "#env:a,env:b"): one tag whose value is the
  // sorted distinct values joined by ',' (a DogStatsD tag value never holds ',').
  size_t out = 0;
  for (size_t i = 0; i < tags.size();) {
    size_t j = i + 1;
    while (j < tags.size() && tags[j].key == tags[i].key) ++j;
    if (j - i == 1) {
      if (out != i) tags[out] = std::move(tags[i]);
      ++out;
    } else {
      std::vector<std::string> values;
      for (size_t k = i; k < j; ++k) values.push_back(std::move(tags[k].value));
      std::sort(values.begin(), values.end());
      values.erase(std::unique(values.begin(), values.end()), values.end());
      std::string joined;
      for (const auto& v : values) {
        if (!joined.empty()) joined.push_back(',');
        joined += v;
      }
      if (joined.size() > kMaxTagValueBytes) {
        counts.tags_dropped += j - i;
      } else {
        if (out != i) tags[out].key = std::move(tags[i].key);
        tags[out].value = std::move(joined);
        ++out;
      }
    }
    i = j;
  }
  tags.resize(out);
}

size_t decoded_bytes(const StatsdSample& s) {
  size_t n = sizeof(StatsdSample) + s.metric.size() + s.set_member.size();
  for (const Tag& t : s.tags) n += sizeof(Tag) + t.key.size() + t.value.size();
  return n;
}

// What a good line's reading was, for the line cache (statsd_line_cache.h).
struct LineReading {
  double scale = 1;
  size_t per_sample = 0;
  StatsdPacketCounts tag_counts;
};

std::optional<LineError> parse_metric_line(std::string_view line, const StatsdParseOptions& o,
                                           std::vector<StatsdSample>& out,
                                           StatsdPacketCounts& counts, size_t& budget_used,
                                           LineReading& reading) {
  // name:values|type[|field...]
  const size_t bar = line.find('|');
  if (bar == std::string_view::npos)
    return LineError{StatsdReject::kSyntax, "expected name:value|type, found no '|'"};
  std::string_view head = line.substr(0, bar);
  const size_t colon = head.find(':');
  if (colon == std::string_view::npos)
    return LineError{StatsdReject::kSyntax,
                     "expected name:value|type, found no ':' before the first '|'"};
  std::string_view name = head.substr(0, colon);
  std::string_view values = head.substr(colon + 1);
  if (name.empty()) return LineError{StatsdReject::kSyntax, "empty metric name"};
  if (values.empty()) return LineError{StatsdReject::kSyntax, "empty value"};
  std::string_view rest = line.substr(bar + 1);
  const size_t next = rest.find('|');
  std::string_view type_text = rest.substr(0, next);
  rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
  bool more_fields = next != std::string_view::npos;

  auto raw_type = parse_type(type_text);
  if (!raw_type)
    return LineError{StatsdReject::kType,
                     "unknown type " + quoted(type_text) + "; expected c, g, ms, h, d or s"};

  // Optional fields, in any order; a repeated one: the last wins (as in the Agent). Empty and
  // unknown fields are ignored (forward compatibility: "|f:x|f2:y").
  double rate = 1;
  std::optional<int64_t> timestamp;
  std::string_view tag_text;
  while (more_fields) {
    const size_t n = rest.find('|');
    std::string_view field = rest.substr(0, n);
    more_fields = n != std::string_view::npos;
    rest = more_fields ? rest.substr(n + 1) : std::string_view();
    if (field.empty()) continue;
    if (field[0] == '@') {
      auto r = parse_number(field.substr(1));
      if (!r || !(*r >= kMinSampleRate))
        return LineError{StatsdReject::kSampleRate,
                         "sample rate " + quoted(field.substr(1)) + " is not a number >= 1e-9"};
      rate = *r;
    } else if (field[0] == '#') {
      tag_text = field.substr(1);
    } else if (field[0] == 'T') {
      int64_t ts = 0;
      std::string_view digits = field.substr(1);
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ts);
      if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size() || ts <= 0)
        return LineError{
            StatsdReject::kTimestamp,
            "timestamp " + quoted(field) + " is not a positive integer of unix seconds"};
      timestamp = ts;
    }
    // "c:" container id, "e:" external data, "card:" cardinality: origin detection, which
    // Tally does not do; they are dropped, never stored as tags. Anything else: ignored.
  }
  if (timestamp && o.now_s > 0) {
    if (*timestamp < o.now_s - o.max_age_s)
      return LineError{StatsdReject::kTimestampTooOld,
                       "timestamp " + std::to_string(*timestamp) + " is older than kept"};
    if (*timestamp > o.now_s + o.max_future_s)
      return LineError{StatsdReject::kTimestampTooNew,
                       "timestamp " + std::to_string(*timestamp) + " is too far in the future"};
  }

  // The name: kept when Tally allows it, else mapped (name_mapping.h).
  std::string metric;
  size_t metric_mapped = 0;
  if (name_needs_no_mapping(name, NameAlphabet::kMetric)) {
    metric.assign(name);
  } else {
    auto mapped = map_name(name, NameAlphabet::kMetric);
    if (!mapped)
      return LineError{StatsdReject::kMetricName, "metric name " + quoted(name) + " is not UTF-8"};
    metric = std::move(*mapped);
    ++counts.names_mapped;
    metric_mapped = 1;
  }
  if (metric.size() > kMaxMetricBytes)
    return LineError{StatsdReject::kMetricName, "metric name is " + std::to_string(metric.size()) +
                                                    " bytes once mapped, the limit is " +
                                                    std::to_string(kMaxMetricBytes)};

  Tags tags;
  StatsdPacketCounts tag_counts;
  if (!tag_text.empty()) parse_tags(tag_text, tags, tag_counts);

  const bool dog = o.dialect == StatsdDialect::kDogStatsd;
  const StatsdType type = *raw_type == RawType::kCounter ? StatsdType::kCounter
                          : *raw_type == RawType::kGauge ? StatsdType::kGauge
                          : *raw_type == RawType::kSet   ? StatsdType::kSet
                                                         : StatsdType::kDistribution;
  StatsdSample proto;
  proto.metric = std::move(metric);
  proto.tags = std::move(tags);
  proto.type = type;
  proto.timestamp_s = timestamp.value_or(0);
  const size_t per_sample = decoded_bytes(proto);

  if (type == StatsdType::kSet) {
    // The member is opaque and may contain ':'; multi-value does not apply to sets.
    if (budget_used + per_sample + values.size() > o.max_decoded_bytes)
      return LineError{StatsdReject::kDatagramBudget, "datagram decodes to too many bytes"};
    budget_used += per_sample + values.size();
    proto.set_member.assign(values);
    out.push_back(std::move(proto));
    counts.tags_dropped += tag_counts.tags_dropped;
    counts.names_mapped += tag_counts.names_mapped;
    return std::nullopt;
  }

  // Values: "v" or DogStatsD 1.1 "v1:v2:..." (empty items skipped, as the Agent does).
  // Parsed into a small buffer first so a bad value leaves nothing behind.
  double scale = 1;       // counters: the increment is value * scale
  uint64_t count = 1;     // distributions: observations per value
  double sum_weight = 1;  // distributions: what each value adds to the sum, per unit
  if (type == StatsdType::kCounter) {
    // The Agent does not scale a "|T" count (it goes out as sent, no aggregation).
    if (!(dog && timestamp)) scale = 1 / rate;
  } else if (type == StatsdType::kDistribution && rate < 1) {
    const double inv = 1 / rate;
    if (dog) {
      // The Agent's histograms (pkg/metrics/histogram.go) and distribution sketches
      // (quantile.Agent.Insert) both count trunc(1/rate) observations and add value/rate to
      // the sum ("x:666|h|@0.21": 4 observations, sum 3171.43). A rate above 1 counts once.
      count = std::max<uint64_t>(1, static_cast<uint64_t>(inv));
      sum_weight = inv;
    } else {
      count = std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(inv)));
      sum_weight = static_cast<double>(count);
    }
  }

  const size_t first = out.size();
  size_t n_values = 0;
  std::optional<LineError> err;
  while (!values.empty()) {
    const size_t sep = values.find(':');
    std::string_view v = values.substr(0, sep);
    values = sep == std::string_view::npos ? std::string_view() : values.substr(sep + 1);
    if (v.empty()) continue;
    if (++n_values > o.max_values_per_line) {
      err = LineError{StatsdReject::kValuesPerLine,
                      "more than " + std::to_string(o.max_values_per_line) + " values"};
      break;
    }
    char sign = 0;
    auto number = parse_number(v, &sign);
    if (!number) {
      err = LineError{StatsdReject::kValue, "value " + quoted(v) + " is not a finite number"};
      break;
    }
    double value = *number;
    if (type == StatsdType::kCounter) value *= scale;
    if (type == StatsdType::kDistribution && !std::isfinite(value * sum_weight)) {
      err = LineError{StatsdReject::kValue, "value " + quoted(v) + " times 1/rate is not finite"};
      break;
    }
    if (!std::isfinite(value)) {
      err = LineError{StatsdReject::kValue, "value " + quoted(v) + " times 1/rate is not finite"};
      break;
    }
    if (budget_used + per_sample > o.max_decoded_bytes) {
      err = LineError{
          StatsdReject::kDatagramBudget,
          "datagram decodes to more than " + std::to_string(o.max_decoded_bytes) + " bytes"};
      break;
    }
    budget_used += per_sample;
    StatsdSample& s = out.emplace_back();  // name and tags are filled in once the line is good
    s.type = type;
    s.value = value;
    s.count = count;
    s.sum_weight = sum_weight;
    s.delta = type == StatsdType::kGauge && !dog && sign != 0;
    s.timestamp_s = proto.timestamp_s;
  }
  if (!err && out.size() == first) err = LineError{StatsdReject::kSyntax, "no value"};
  if (err) {
    for (size_t i = first; i < out.size(); ++i) budget_used -= per_sample;
    out.resize(first);
    return err;
  }
  // Every value but the last gets a copy of the name and tags; the last takes them.
  for (size_t i = first; i + 1 < out.size(); ++i) {
    out[i].metric = proto.metric;
    out[i].tags = proto.tags;
  }
  out.back().metric = std::move(proto.metric);
  out.back().tags = std::move(proto.tags);
  counts.tags_dropped += tag_counts.tags_dropped;
  counts.names_mapped += tag_counts.names_mapped;
  reading.scale = scale;
  reading.per_sample = per_sample;
  reading.tag_counts = tag_counts;
  reading.tag_counts.names_mapped += metric_mapped;
  return std::nullopt;
}

// The Agent's escaped newline ("\\n", two bytes) replaced by `with`.
std::string unescape_newlines(std::string_view s, char with) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out.push_back(with);
      ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The fields after an event's text: "|d:ts|h:host|p:prio|t:alert|k:key|s:source|#tags".
void read_event_fields(std::string_view tail, StatsdEvent& ev, StatsdPacketCounts& counts) {
  std::vector<Tag> fields;  // host, priority, ... in the order met; a later one wins
  auto field = [&](const char* key, std::string_view value) {
    for (auto& f : fields)
      if (f.key == key) {
        f.value = std::string(value);
        return;
      }
    fields.push_back(Tag{key, std::string(value)});
  };
  while (!tail.empty()) {
    if (tail[0] == '|') tail.remove_prefix(1);
    const size_t bar = tail.find('|');
    std::string_view item = tail.substr(0, bar);
    tail = bar == std::string_view::npos ? std::string_view() : tail.substr(bar);
    if (item.starts_with("#")) {
      parse_tags(item.substr(1), ev.tags, counts);
    } else if (item.starts_with("d:")) {
      int64_t ts = 0;
      std::string_view v = item.substr(2);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ts);
      // A bad or absurd d: is ignored (the receive time stands), as the Agent ignores it.
      if (ec == std::errc() && p == v.data() + v.size() && ts > 0 && ts < (int64_t{1} << 40))
        ev.time_ms = ts * 1000;
    } else if (item.starts_with("h:")) {
      field("host", item.substr(2));
    } else if (item.starts_with("p:")) {
      if (item == "p:low" || item == "p:normal") field("priority", item.substr(2));
    } else if (item.starts_with("t:")) {
      std::string_view t = item.substr(2);
      if (t == "error" || t == "warning" || t == "info" || t == "success") field("alert_type", t);
    } else if (item.starts_with("k:")) {
      field("aggregation_key", item.substr(2));
    } else if (item.starts_with("s:")) {
      field("source_type_name", item.substr(2));
    }
  }
  for (Tag& f : fields) {
    if (f.value.empty()) continue;
    if (!validate_tag_value(f.value)) {
      ++counts.tags_dropped;
      continue;
    }
    auto same =
        std::find_if(ev.tags.begin(), ev.tags.end(), [&](const Tag& t) { return t.key == f.key; });
    if (same != ev.tags.end()) {
      same->value = std::move(f.value);
    } else if (ev.tags.size() < kMaxTags) {
      ev.tags.push_back(std::move(f));
    } else {
      ++counts.tags_dropped;
    }
  }
  canonicalize(ev.tags);
}

// _e{title_len,text_len}:title|text[|field...]; the lengths are in bytes and must match.
std::optional<LineError> parse_event(std::string_view line, StatsdEvent* ev,
                                     StatsdPacketCounts& counts) {
  auto bad = [&](const std::string& why) {
    return LineError{StatsdReject::kEvent, "malformed event: " + why};
  };
  const size_t close = line.find("}:");
  if (close == std::string_view::npos) return bad("no '}:' after the lengths");
  std::string_view lens = line.substr(3, close - 3);
  const size_t comma = lens.find(',');
  if (comma == std::string_view::npos) return bad("expected {title_len,text_len}");
  size_t title_len = 0, text_len = 0;
  auto a = std::from_chars(lens.data(), lens.data() + comma, title_len);
  auto b = std::from_chars(lens.data() + comma + 1, lens.data() + lens.size(), text_len);
  if (a.ec != std::errc() || a.ptr != lens.data() + comma || b.ec != std::errc() ||
      b.ptr != lens.data() + lens.size())
    return bad("lengths are not integers");
  std::string_view body = line.substr(close + 2);
  if (title_len == 0) return bad("empty title");
  if (title_len + 1 + text_len > body.size() || body[title_len] != '|')
    return bad("title and text lengths do not match the line");
  std::string_view tail = body.substr(title_len + 1 + text_len);
  if (!tail.empty() && tail[0] != '|') return bad("text longer than its length");
  if (ev) {
    ev->title = unescape_newlines(body.substr(0, title_len), ' ');
    ev->text = unescape_newlines(body.substr(title_len + 1, text_len), '\n');
    read_event_fields(tail, *ev, counts);
  }
  return std::nullopt;
}

// _sc|name|status[|field...]; status 0 (ok), 1 (warning), 2 (critical) or 3 (unknown).
std::optional<LineError> parse_service_check(std::string_view line) {
  if (!line.starts_with("_sc|"))
    return LineError{StatsdReject::kServiceCheck,
                     "malformed service check: expected _sc|name|status"};
  std::string_view rest = line.substr(4);
  const size_t bar = rest.find('|');
  std::string_view name = rest.substr(0, bar);
  if (name.empty() || bar == std::string_view::npos)
    return LineError{StatsdReject::kServiceCheck,
                     "malformed service check: expected _sc|name|status"};
  rest = rest.substr(bar + 1);
  std::string_view status = rest.substr(0, rest.find('|'));
  if (status.size() != 1 || status[0] < '0' || status[0] > '3')
    return LineError{StatsdReject::kServiceCheck,
                     "malformed service check: status " + quoted(status) + " is not 0..3"};
  return std::nullopt;
}

}  // namespace

const char* statsd_dialect_name(StatsdDialect d) {
  return d == StatsdDialect::kEtsy ? "etsy" : "dogstatsd";
}

std::optional<StatsdDialect> parse_statsd_dialect(std::string_view name) {
  if (name == "dogstatsd") return StatsdDialect::kDogStatsd;
  if (name == "etsy") return StatsdDialect::kEtsy;
  return std::nullopt;
}

const char* statsd_type_name(StatsdType type) {
  switch (type) {
    case StatsdType::kCounter:
      return "counter";
    case StatsdType::kGauge:
      return "gauge";
    case StatsdType::kDistribution:
      return "distribution";
    case StatsdType::kSet:
      return "set";
  }
  return "unknown";
}

const char* statsd_reject_name(StatsdReject reason) {
  switch (reason) {
    case StatsdReject::kSyntax:
      return "syntax";
    case StatsdReject::kMetricName:
      return "metric_name";
    case StatsdReject::kValue:
      return "value";
    case StatsdReject::kType:
      return "type";
    case StatsdReject::kSampleRate:
      return "sample_rate";
    case StatsdReject::kTimestamp:
      return "timestamp";
    case StatsdReject::kTimestampTooOld:
      return "timestamp_too_old";
    case StatsdReject::kTimestampTooNew:
      return "timestamp_too_new";
    case StatsdReject::kValuesPerLine:
      return "values_per_line";
    case StatsdReject::kDatagramBudget:
      return "datagram_budget";
    case StatsdReject::kEvent:
      return "event";
    case StatsdReject::kServiceCheck:
      return "service_check";
    case StatsdReject::kTruncated:
      return "truncated";
    case StatsdReject::kKindConflict:
      return "kind_conflict";
  }
  return "unknown";
}

namespace {

// A counter line whose key the cache holds: only its value is read, with the parser's own rules
// (parse_number, times 1/rate, the datagram budget). False leaves the line to the full parser,
// which then says why it is bad, if it is.
bool count_cached(std::string_view line, const StatsdParseOptions& o, StatsdLineCache& cache,
                  StatsdPacketCounts& counts, size_t& budget_used) {
  std::string_view name, value, rest;
  if (!StatsdLineCache::split(line, &name, &value, &rest)) return false;
  StatsdLineCache::Entry* e = cache.find(name, rest);
  if (!e) return false;
  auto number = parse_number(value);
  if (!number) return false;
  const double increment = *number * e->scale;
  // Below 2^53 a sum of increments stays finite and, for whole numbers, exact; anything larger
  // is left to the router's saturating sum, one line at a time.
  if (!(std::fabs(increment) <= 9007199254740992.0)) return false;
  if (budget_used + e->per_sample_bytes > o.max_decoded_bytes) return false;
  budget_used += e->per_sample_bytes;
  cache.count(*e, increment);
  ++counts.lines_ok;
  ++counts.cached;
  counts.tags_dropped += e->tags_dropped;
  counts.names_mapped += e->names_mapped;
  return true;
}

// Keeps the reading of a good line in the cache when it is one counter sample without "|T".
void remember(std::string_view line, const std::vector<StatsdSample>& samples, size_t first,
              const LineReading& reading, StatsdLineCache& cache) {
  if (samples.size() != first + 1) return;
  const StatsdSample& s = samples.back();
  if (s.type != StatsdType::kCounter || s.timestamp_s != 0) return;
  std::string_view name, value, rest;
  if (!StatsdLineCache::split(line, &name, &value, &rest)) return;
  (void)cache.add(name, rest, s, reading.scale, reading.per_sample,
                  static_cast<uint32_t>(reading.tag_counts.tags_dropped),
                  static_cast<uint32_t>(reading.tag_counts.names_mapped));
}

}  // namespace

StatsdPacketCounts parse_statsd_packet(std::string_view packet, const StatsdParseOptions& options,
                                       std::vector<StatsdSample>& samples,
                                       std::vector<StatsdLineError>& errors, StatsdLineCache* cache,
                                       std::vector<StatsdEvent>* events) {
  StatsdPacketCounts counts;
  size_t line_number = 0;
  size_t budget_used = 0;
  while (!packet.empty()) {
    const size_t nl = packet.find('\n');
    std::string_view line = packet.substr(0, nl);
    packet = nl == std::string_view::npos ? std::string_view() : packet.substr(nl + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::optional<LineError> e;
    if (line.starts_with("_e{")) {
      StatsdEvent ev;
      e = parse_event(line, events ? &ev : nullptr, counts);
      if (!e) {
        ++counts.events;
        if (events) events->push_back(std::move(ev));
      }
    } else if (line.starts_with("_sc")) {
      e = parse_service_check(line);
      if (!e) ++counts.service_checks;
    } else if (cache && count_cached(line, options, *cache, counts, budget_used)) {
      continue;
    } else {
      const size_t first = samples.size();
      LineReading reading;
      e = parse_metric_line(line, options, samples, counts, budget_used, reading);
      if (!e) {
        ++counts.lines_ok;
        if (cache) remember(line, samples, first, reading, *cache);
      }
    }
    if (e) {
      errors.push_back(StatsdLineError{line_number, line, e->reason, std::move(e->message)});
      ++counts.lines_rejected;
    }
  }
  return counts;
}

}  // namespace tally::collector
