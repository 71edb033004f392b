#include "ingest/statsd_parser.h"

#include <charconv>
#include <cmath>

namespace tally::collector {
namespace {

bool is_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
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

StatsdError error(StatsdReject reason, std::string message) {
  return {reason, std::move(message)};
}

// A finite decimal number with an optional sign: "1", "-2.5", "+3", "1e3", ".5".
// from_chars alone would also take "inf" and "nan", and no leading '+'.
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

std::optional<StatsdType> parse_type(std::string_view t) {
  if (t == "c") return StatsdType::kCounter;
  if (t == "g") return StatsdType::kGauge;
  if (t == "ms" || t == "h" || t == "d") return StatsdType::kDistribution;
  if (t == "s") return StatsdType::kSet;
  return std::nullopt;
}

// "#k:v,flag,k2:v2" (without the '#'). Empty elements are skipped; a tag without ':' gets the
// value "true"; keys are mapped by map_statsd_tag_key; values are kept as sent (spaces around
// key and value trimmed) and must pass validate_tag_value.
std::optional<StatsdError> parse_tags(std::string_view text, Tags& tags) {
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    item = trim_spaces(item);
    if (item.empty()) continue;
    size_t colon = item.find(':');
    std::string_view raw_key = trim_spaces(item.substr(0, colon));
    std::string_view value = colon == std::string_view::npos ? std::string_view("true")
                                                             : trim_spaces(item.substr(colon + 1));
    if (raw_key.empty())
      return error(StatsdReject::kTags, "tag " + quoted(item) + " has an empty key");
    if (value.empty())
      return error(StatsdReject::kTags, "tag " + quoted(item) + " has an empty value");
    std::string key = map_statsd_tag_key(raw_key);
    if (auto s = validate_tag_key(key); !s)
      return error(StatsdReject::kTags, s.message() + ": " + quoted(raw_key));
    if (auto s = validate_tag_value(value); !s)
      return error(StatsdReject::kTags, s.message() + " (key " + quoted(key) + ")");
    if (tags.size() == kMaxTags)
      return error(StatsdReject::kTags, "more than " + std::to_string(kMaxTags) + " tags");
    tags.push_back(Tag{std::move(key), std::string(value)});
  }
  canonicalize(tags);
  for (size_t i = 1; i < tags.size(); ++i) {
    if (tags[i].key == tags[i - 1].key)
      return error(StatsdReject::kTags, "tag key " + quoted(tags[i].key) + " appears twice");
  }
  return std::nullopt;
}

}  // namespace

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
    case StatsdReject::kTags:
      return "tags";
    case StatsdReject::kTimestamp:
      return "timestamp";
    case StatsdReject::kField:
      return "field";
    case StatsdReject::kEvent:
      return "event";
    case StatsdReject::kServiceCheck:
      return "service_check";
    case StatsdReject::kTruncated:
      return "truncated";
  }
  return "unknown";
}

uint64_t StatsdSample::observation_weight() const {
  if (!(sample_rate > 0) || sample_rate >= 1) return 1;
  double w = std::round(1.0 / sample_rate);
  return w < 1 ? 1 : static_cast<uint64_t>(w);
}

std::string map_statsd_tag_key(std::string_view key) {
  std::string out;
  out.reserve(key.size() + 1);
  if (!key.empty() && (is_digit(key[0]) || key[0] == '.' || key[0] == '-')) out.push_back('_');
  for (size_t i = 0; i < key.size(); ++i) {
    auto c = static_cast<unsigned char>(key[i]);
    if (c >= 0x80) {
      // One '_' per UTF-8 code point: skip the continuation bytes of this sequence.
      out.push_back('_');
      while (i + 1 < key.size() && (static_cast<unsigned char>(key[i + 1]) & 0xc0) == 0x80) ++i;
    } else {
      out.push_back(is_key_char(key[i]) ? key[i] : '_');
    }
  }
  return out;
}

std::optional<StatsdError> parse_statsd_line(std::string_view line,
                                             std::vector<StatsdSample>& out) {
  if (line.starts_with("_e{"))
    return error(StatsdReject::kEvent, "DogStatsD events (_e{) are not supported");
  if (line.starts_with("_sc|"))
    return error(StatsdReject::kServiceCheck, "DogStatsD service checks (_sc|) are not supported");

  // name:values|type[|field...]
  size_t bar = line.find('|');
  std::string_view head = line.substr(0, bar);
  size_t colon = head.find(':');
  if (colon == std::string_view::npos)
    return error(StatsdReject::kSyntax,
                 "expected name:value|type, found no ':' before the first '|'");
  if (bar == std::string_view::npos)
    return error(StatsdReject::kSyntax, "expected '|type' after the value");
  std::string_view name = head.substr(0, colon);
  std::string_view values = head.substr(colon + 1);
  std::string_view rest = line.substr(bar + 1);
  size_t next = rest.find('|');
  std::string_view type_text = rest.substr(0, next);
  rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
  bool more_fields = next != std::string_view::npos;

  if (auto s = validate_metric_name(name); !s)
    return error(StatsdReject::kMetricName, s.message() + ": " + quoted(name));
  auto type = parse_type(type_text);
  if (!type)
    return error(StatsdReject::kType,
                 "unknown type " + quoted(type_text) + "; expected c, g, ms, h, d or s");

  // Optional fields, in any order, each at most once.
  std::optional<double> rate;
  std::optional<int64_t> timestamp;
  bool have_tags = false;
  bool have_container = false;
  Tags tags;
  while (more_fields) {
    next = rest.find('|');
    std::string_view field = rest.substr(0, next);
    more_fields = next != std::string_view::npos;
    rest = more_fields ? rest.substr(next + 1) : std::string_view();
    if (field.empty()) return error(StatsdReject::kField, "empty '|' field");
    if (field[0] == '@') {
      if (rate) return error(StatsdReject::kField, "sample rate given twice");
      auto r = parse_number(field.substr(1));
      if (!r || !(*r > 0 && *r <= 1))
        return error(StatsdReject::kSampleRate,
                     "sample rate " + quoted(field.substr(1)) + " is not a number in (0, 1]");
      rate = *r;
    } else if (field[0] == '#') {
      if (have_tags) return error(StatsdReject::kField, "tags given twice");
      have_tags = true;
      if (auto e = parse_tags(field.substr(1), tags)) return e;
    } else if (field[0] == 'T' && field.size() > 1 && is_digit(field[1])) {
      if (timestamp) return error(StatsdReject::kField, "timestamp given twice");
      int64_t ts = 0;
      std::string_view digits = field.substr(1);
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ts);
      if (ec != std::errc() || ptr != digits.data() + digits.size() || ts <= 0)
        return error(StatsdReject::kTimestamp,
                     "timestamp " + quoted(field) + " is not a positive integer of unix seconds");
      timestamp = ts;
    } else if (field[0] == 'T') {
      return error(StatsdReject::kTimestamp,
                   "timestamp " + quoted(field) + " is not a positive integer of unix seconds");
    } else if (field.starts_with("c:")) {
      // DogStatsD container id (origin detection): accepted and not turned into a tag.
      if (have_container) return error(StatsdReject::kField, "container id given twice");
      have_container = true;
    } else {
      // Later DogStatsD versions add "|x:..." fields (e: external data, card: cardinality);
      // they carry no measurement, so any lowercase-prefixed "name:" field is skipped.
      size_t p = 0;
      while (p < field.size() && is_lower(field[p])) ++p;
      if (p == 0 || p >= field.size() || field[p] != ':')
        return error(StatsdReject::kField, "unknown field " + quoted(field));
    }
  }

  const size_t rollback = out.size();
  auto fail = [&](StatsdError e) {
    out.resize(rollback);
    return std::optional<StatsdError>(std::move(e));
  };
  const double sample_rate = rate.value_or(1.0);
  auto push = [&](double value, bool delta) {
    StatsdSample& s = out.emplace_back();
    s.metric.assign(name);
    s.tags = tags;
    s.type = *type;
    s.value = value;
    s.sample_rate = sample_rate;
    s.delta = delta;
    s.timestamp_s = timestamp.value_or(0);
  };

  if (*type == StatsdType::kSet) {
    // The member is opaque and may contain ':'; DogStatsD multi-value does not apply to sets.
    if (values.empty()) return error(StatsdReject::kValue, "empty set member");
    push(0, false);
    out.back().set_member.assign(values);
    return std::nullopt;
  }

  // DogStatsD 1.1 multi-value: "name:1:2:3|h" is three samples of the same series.
  while (true) {
    size_t sep = values.find(':');
    std::string_view v = values.substr(0, sep);
    if (v.empty()) return fail(error(StatsdReject::kValue, "empty value"));
    char sign = 0;
    auto number = parse_number(v, &sign);
    if (!number)
      return fail(error(StatsdReject::kValue, "value " + quoted(v) + " is not a finite number"));
    switch (*type) {
      case StatsdType::kCounter:
        push(*number / sample_rate, false);
        break;
      case StatsdType::kGauge:
        push(*number, sign != 0);
        break;
      default:
        push(*number, false);
        break;
    }
    if (sep == std::string_view::npos) break;
    values = values.substr(sep + 1);
  }
  return std::nullopt;
}

StatsdPacketCounts parse_statsd_packet(std::string_view packet, std::vector<StatsdSample>& samples,
                                       std::vector<StatsdLineError>& errors) {
  StatsdPacketCounts counts;
  size_t line_number = 0;
  while (!packet.empty()) {
    size_t nl = packet.find('\n');
    std::string_view line = packet.substr(0, nl);
    packet = nl == std::string_view::npos ? std::string_view() : packet.substr(nl + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (auto e = parse_statsd_line(line, samples)) {
      errors.push_back(StatsdLineError{line_number, line, e->reason, std::move(e->message)});
      ++counts.lines_rejected;
    } else {
      ++counts.lines_ok;
    }
  }
  return counts;
}

}  // namespace tally::collector
