#include "output.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "tally.pb.h"
#include "tally/common/csv.h"
#include "tally/common/time_text.h"
#include "tally/common/wire.h"

namespace tally::cli {

using nlohmann::json;

void write_table(const TextTable& t, std::ostream& out) {
  if (t.header.empty()) return;
  std::vector<size_t> width(t.header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  measure(t.header);
  for (const auto& r : t.rows) measure(r);
  auto line = [&](const std::vector<std::string>& row) {
    std::string s;
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      s += row[i];
      if (i + 1 < row.size()) s.append(width[i] - row[i].size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << '\n';
  };
  line(t.header);
  for (const auto& r : t.rows) line(r);
  for (const auto& n : t.notes) out << n << '\n';
}

std::string csv_field(std::string_view s) {
  return csv_cell(s);  // tally/common/csv.h: numbers as they are, text quoted, formulas made text
}

void write_csv(const TextTable& t, std::ostream& out) {
  auto line = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) out << ',';
      out << csv_field(row[i]);
    }
    out << '\n';
  };
  line(t.header);
  for (const auto& r : t.rows) line(r);
}

std::string format_number_short(double v) {
  if (std::isnan(v)) return "";  // missing, as in format_number
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e15)
    return fmt::format("{:.0f}", v);
  return fmt::format("{:.6g}", v);
}

std::string format_time_utc(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<int64_t> parse_time_utc(std::string_view text) {
  // RFC 3339 (common/time_text.h), where a date alone is its midnight and a time without a zone
  // is UTC.
  std::string s(text);
  if (s.size() == 10) s += "T00:00:00";
  if (s.size() == 19) s += 'Z';
  auto ms = parse_rfc3339_ms(s);
  if (!ms) return std::nullopt;
  return *ms >= 0 ? *ms / 1000 : -((-*ms + 999) / 1000);
}

std::string tags_label(const json& tags) {
  std::string out;
  if (!tags.is_object()) return out;
  for (auto it = tags.begin(); it != tags.end(); ++it) {
    if (!out.empty()) out += ',';
    out += it.key();
    out += '=';
    out += it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
  }
  return out;
}

TextTable metrics_table(const json& body) {
  TextTable t;
  t.header = {"NAME", "KIND", "SERIES"};
  for (const auto& m : body.value("metrics", json::array())) {
    t.rows.push_back(
        {m.value("name", ""), m.value("kind", ""), std::to_string(m.value("series", 0))});
  }
  return t;
}

TextTable cardinality_metrics_table(const json& body) {
  TextTable t;
  t.header = {"METRIC", "KIND", "SERIES", "OVERFLOW"};
  for (const auto& m : body.value("top_metrics", json::array()))
    t.rows.push_back({m.value("name", ""), m.value("kind", ""),
                      std::to_string(m.value("series", uint64_t{0})),
                      std::to_string(m.value("overflow", uint64_t{0}))});
  return t;
}

TextTable cardinality_tags_table(const json& body) {
  TextTable t;
  t.header = {"KEY", "VALUES", "SERIES"};
  for (const auto& k : body.value("top_tag_keys", json::array()))
    t.rows.push_back({k.value("key", ""), std::to_string(k.value("values", uint64_t{0})),
                      std::to_string(k.value("series", uint64_t{0}))});
  return t;
}

TextTable cardinality_minutes_table(const json& body, bool iso_time) {
  TextTable t;
  t.header = {"MINUTE", "CREATED"};
  for (const auto& m : body.value("created_per_minute", json::array())) {
    const int64_t minute = m.value("time", int64_t{0});
    t.rows.push_back({iso_time ? format_time_utc(minute) : std::to_string(minute),
                      std::to_string(m.value("created", uint64_t{0}))});
  }
  return t;
}

TextTable annotations_table(const json& body, bool iso_time) {
  TextTable t;
  t.header = {"ID", "TIME", "END", "TITLE", "TAGS", "SOURCE", "TEXT"};
  auto when = [iso_time](const json& v) -> std::string {
    if (!v.is_number()) return "";
    if (!iso_time) return v.dump();
    return format_time_utc(static_cast<int64_t>(std::floor(v.get<double>())));
  };
  for (const auto& a : body.value("annotations", json::array())) {
    std::string text = a.value("text", "");
    if (iso_time) std::replace(text.begin(), text.end(), '\n', ' ');
    t.rows.push_back({a.contains("id") ? a["id"].dump() : "", when(a.value("time", json())),
                      when(a.value("end", json())), a.value("title", ""),
                      tags_label(a.value("tags", json::object())), a.value("source", ""),
                      std::move(text)});
  }
  if (body.value("truncated", false))
    t.notes.push_back("(more annotations in the range: raise --limit or narrow --from/--to)");
  return t;
}

TextTable tags_table(const json& body) {
  TextTable t;
  t.header = {"KEY", "VALUE"};
  const json tags = body.value("tags", json::object());
  for (auto it = tags.begin(); it != tags.end(); ++it) {
    for (const auto& v : it.value())
      t.rows.push_back({it.key(), v.is_string() ? v.get<std::string>() : v.dump()});
  }
  return t;
}

namespace {

std::vector<std::string> group_keys(const json& body) {
  std::set<std::string> keys;
  for (const auto& s : body.value("series", json::array())) {
    const json tags = s.value("tags", json::object());
    for (auto it = tags.begin(); it != tags.end(); ++it) keys.insert(it.key());
  }
  return {keys.begin(), keys.end()};
}

std::string point_value(const json& v, bool full) {
  if (v.is_number())
    return full ? format_number(v.get<double>()) : format_number_short(v.get<double>());
  if (v.is_null()) return "";
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

TextTable query_long_table(const json& body, bool iso_time) {
  TextTable t;
  const auto keys = group_keys(body);
  t.header.push_back("time");
  for (const auto& k : keys) t.header.push_back(k);
  t.header.push_back("value");
  for (const auto& s : body.value("series", json::array())) {
    const json tags = s.value("tags", json::object());
    for (const auto& p : s.value("points", json::array())) {
      if (!p.is_array() || p.size() < 2) continue;
      const int64_t time = p[0].get<int64_t>();
      std::vector<std::string> row;
      row.push_back(iso_time ? format_time_utc(time) : std::to_string(time));
      for (const auto& k : keys) row.push_back(tags.contains(k) ? tags[k].get<std::string>() : "");
      row.push_back(point_value(p[1], true));
      t.rows.push_back(std::move(row));
    }
  }
  return t;
}

TextTable query_wide_table(const json& body) {
  TextTable t;
  const json series = body.value("series", json::array());
  t.header.push_back("TIME");
  std::map<int64_t, std::vector<std::string>> rows;
  int64_t partial_from = INT64_MAX;
  for (size_t i = 0; i < series.size(); ++i) {
    const json& s = series[i];
    std::string label = tags_label(s.value("tags", json::object()));
    if (label.empty()) label = body.value("fn", std::string("value"));
    t.header.push_back(label);
    if (s.contains("partial_from") && s["partial_from"].is_number())
      partial_from = std::min(partial_from, s["partial_from"].get<int64_t>());
    for (const auto& p : s.value("points", json::array())) {
      if (!p.is_array() || p.size() < 2) continue;
      auto& row = rows[p[0].get<int64_t>()];
      row.resize(series.size());
      row[i] = point_value(p[1], false);
    }
  }
  bool any_partial = false;
  for (auto& [time, cells] : rows) {
    std::vector<std::string> row;
    row.push_back(format_time_utc(time) + (time >= partial_from ? "*" : ""));
    any_partial = any_partial || time >= partial_from;
    cells.resize(series.size());
    row.insert(row.end(), cells.begin(), cells.end());
    t.rows.push_back(std::move(row));
  }
  if (any_partial) t.notes.push_back("* bucket still open: its value may still grow");
  if (series.empty()) t.notes.push_back("(no series match)");
  return t;
}

namespace {

const char* state_name(int state) {
  switch (state) {
    case wire::LiveUpdate::PARTIAL:
      return "partial";
    case wire::LiveUpdate::FINAL:
      return "final";
    case wire::LiveUpdate::CORRECTION:
      return "correction";
  }
  return "unknown";
}

const char* wire_kind_name(wire::Kind k) {
  auto kind = kind_from_proto(k);
  return kind ? kind_name(*kind) : "unknown";
}

std::string series_label(const wire::LiveUpdate& u) {
  std::string s = u.metric();
  if (u.tags_size() == 0) return s;
  s += '{';
  for (int i = 0; i < u.tags_size(); ++i) {
    if (i) s += ',';
    s += u.tags(i).key() + "=" + u.tags(i).value();
  }
  s += '}';
  return s;
}

struct Percentiles {
  double p50, p90, p99;
};

std::optional<Percentiles> percentiles(const wire::LiveUpdate& u) {
  if (u.kind() != wire::DISTRIBUTION || !u.has_sketch()) return std::nullopt;
  auto sk = sketch_from_proto(u.sketch());
  if (!sk || sk->empty()) return std::nullopt;
  return Percentiles{sk->quantile(0.5), sk->quantile(0.9), sk->quantile(0.99)};
}

}  // namespace

json live_update_json(const wire::LiveUpdate& u) {
  json tags = json::object();
  for (const auto& t : u.tags()) tags[t.key()] = t.value();
  json j = {{"metric", u.metric()},
            {"tags", tags},
            {"kind", wire_kind_name(u.kind())},
            {"resolution", u.resolution_s()},
            {"time", u.time()},
            {"state", state_name(u.state())},
            {"value", u.value()},
            {"sum", u.sum()},
            {"count", u.count()},
            {"min", u.min()},
            {"max", u.max()}};
  if (auto p = percentiles(u)) {
    j["p50"] = p->p50;
    j["p90"] = p->p90;
    j["p99"] = p->p99;
  }
  return j;
}

std::vector<std::string> live_update_header() {
  return {"time",  "state", "metric", "tags", "kind", "value", "sum",
          "count", "min",   "max",    "p50",  "p90",  "p99"};
}

std::vector<std::string> live_update_row(const wire::LiveUpdate& u, bool iso_time) {
  std::string tags;
  for (int i = 0; i < u.tags_size(); ++i) {
    if (i) tags += ',';
    tags += u.tags(i).key() + "=" + u.tags(i).value();
  }
  auto num = [&](double v) { return iso_time ? format_number_short(v) : format_number(v); };
  std::vector<std::string> row = {iso_time ? format_time_utc(u.time()) : std::to_string(u.time()),
                                  state_name(u.state()),
                                  u.metric(),
                                  tags,
                                  wire_kind_name(u.kind()),
                                  num(u.value()),
                                  num(u.sum()),
                                  std::to_string(u.count()),
                                  num(u.min()),
                                  num(u.max())};
  if (auto p = percentiles(u)) {
    row.push_back(num(p->p50));
    row.push_back(num(p->p90));
    row.push_back(num(p->p99));
  } else {
    row.insert(row.end(), 3, "");
  }
  return row;
}

std::string live_update_line(const wire::LiveUpdate& u) {
  std::string line = fmt::format("{}  {:<10}  {}  {}", format_time_utc(u.time()),
                                 state_name(u.state()), series_label(u), wire_kind_name(u.kind()));
  if (u.kind() == wire::DISTRIBUTION) {
    line += fmt::format("  count={} sum={} min={} max={}", u.count(), format_number_short(u.sum()),
                        format_number_short(u.min()), format_number_short(u.max()));
    if (auto p = percentiles(u))
      line += fmt::format(" p50={} p90={} p99={}", format_number_short(p->p50),
                          format_number_short(p->p90), format_number_short(p->p99));
  } else if (u.kind() == wire::GAUGE) {
    line += fmt::format("  last={} min={} max={} count={}", format_number_short(u.value()),
                        format_number_short(u.min()), format_number_short(u.max()), u.count());
  } else {
    line += fmt::format("  value={}", format_number_short(u.value()));
  }
  return line;
}

}  // namespace tally::cli
