#include "promql.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "tally/common/csv.h"
#include "tally/common/time_bucket.h"

namespace tally::dash {

using nlohmann::json;

namespace {

bool isLabelStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

bool isBareLabel(std::string_view s) {
  if (s.empty() || !isLabelStart(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isLabelStart(c) || isDigit(c); });
}

// Words the PromQL lexer reads as keywords: such a metric cannot stand bare before its braces.
bool isKeyword(std::string_view s) {
  static const std::set<std::string, std::less<>> kWords = {
      "and",          "or",       "unless",     "atan2",       "by",     "without",
      "on",           "ignoring", "group_left", "group_right", "offset", "bool",
      "start",        "end",      "sum",        "avg",         "count",  "min",
      "max",          "group",    "stddev",     "stdvar",      "topk",   "bottomk",
      "count_values", "quantile", "limitk",     "limit_ratio", "inf",    "nan"};
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return kWords.count(lower) > 0;
}

bool isBareMetric(std::string_view s) {
  if (s.empty() || !(isLabelStart(s[0]) || s[0] == ':')) return false;
  if (isKeyword(s)) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return isLabelStart(c) || isDigit(c) || c == ':'; });
}

std::string groupClause(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + promLabel(k);
  return out;
}

std::string aggregate(const char* op, const std::vector<std::string>& groupBy,
                      const std::string& inner) {
  std::string out = op;
  if (!groupBy.empty()) out += " by (" + groupClause(groupBy) + ")";
  return out + " (" + inner + ")";
}

std::string replaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

Result<json> parseSuccess(std::string_view body) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    return Status::corruption(std::string("the data source answered with invalid JSON: ") +
                              e.what());
  }
  if (!j.is_object())
    return Status::corruption("the data source answered with JSON that is not an object");
  auto st = j.find("status");
  if (st != j.end() && st->is_string() && *st == "error")
    return Status::invalid_argument(promErrorMessage(200, body));
  auto data = j.find("data");
  if (data == j.end()) return Status::corruption("the data source's answer has no \"data\"");
  return json(std::move(*data));
}

}  // namespace

std::string promQuote(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

std::string promLabel(std::string_view name) {
  return isBareLabel(name) ? std::string(name) : promQuote(name);
}

std::string promSelector(std::string_view metric, const std::vector<TagFilter>& filters) {
  std::string matchers;
  auto add = [&](const std::string& m) { matchers += (matchers.empty() ? "" : ", ") + m; };
  std::string out;
  if (isBareMetric(metric))
    out = std::string(metric);
  else
    add("__name__=" + promQuote(metric));  // works in Prometheus 2 and 3 and VictoriaMetrics
  for (const auto& f : filters) add(promLabel(f.key) + filterOpName(f.op) + promQuote(f.value));
  if (!matchers.empty() || out.empty()) out += "{" + matchers + "}";
  return out;
}

Status promFunctionSupported(Fn fn, const std::string& metric,
                             const std::vector<std::string>& names) {
  if (is_percentile(fn)) {
    if (metric.ends_with("_bucket")) return Status::ok();
    if (std::find(names.begin(), names.end(), metric + "_bucket") != names.end())
      return Status::ok();
    return Status::invalid_argument(
        "percentiles need a Prometheus histogram (a '" + metric +
        "_bucket' series with 'le' labels); for a summary write PromQL such as " + metric +
        "{quantile=\"0.99\"}");
  }
  return Status::ok();
}

Result<std::string> buildPromQL(const PanelSpec& p, int64_t stepS, PromDialect dialect) {
  const std::string range = format_duration(stepS);
  if (!p.promql.empty()) {
    std::string e = replaceAll(p.promql, "$__rate_interval", range);
    return replaceAll(std::move(e), "$__interval", range);
  }
  const std::string offset = p.offsetS ? " offset " + format_duration(p.offsetS) : std::string();
  if (p.metric.empty())
    return Status::invalid_argument("choose a metric or write a PromQL expression");
  if (chartNeedsDistribution(p.chart))
    return Status::invalid_argument(std::string(chartTypeName(p.chart)) +
                                    " charts need the Tally collector's distributions");
  const std::string sel = promSelector(p.metric, p.filters) + "[" + range + "]" + offset;
  switch (p.fn) {
    case Fn::kSum:
      return aggregate("sum", p.groupBy, "increase(" + sel + ")");
    case Fn::kRate:
      return aggregate("sum", p.groupBy, "increase(" + sel + ")") + " / " + std::to_string(stepS);
    case Fn::kCount:
      return aggregate("sum", p.groupBy, "count_over_time(" + sel + ")");
    case Fn::kAvg:
    case Fn::kMin:
    case Fn::kMax:
      return aggregate(fn_name(p.fn), p.groupBy, fn_name(p.fn) + ("_over_time(" + sel + ")"));
    case Fn::kP50:
    case Fn::kP90:
    case Fn::kP99: {
      if (dialect == PromDialect::Tally)  // the collector's sketches merge exactly
        return aggregate(
            "tally_quantile", p.groupBy,
            format_number(fn_quantile(p.fn)) + ", " + promSelector(p.metric, p.filters) + offset);
      const std::string bucket = p.metric.ends_with("_bucket") ? p.metric : p.metric + "_bucket";
      std::vector<std::string> keys = p.groupBy;
      keys.erase(std::remove(keys.begin(), keys.end(), "le"), keys.end());
      keys.push_back("le");
      return "histogram_quantile(" + format_number(fn_quantile(p.fn)) + ", " +
             aggregate(
                 "sum", keys,
                 "rate(" + promSelector(bucket, p.filters) + "[" + range + "]" + offset + ")") +
             ")";
    }
  }
  return Status::invalid_argument(std::string("unknown function '") + fn_name(p.fn) + "'");
}

Result<std::string> buildPanelPromQL(const PanelSpec& p, int64_t stepS, PromDialect dialect) {
  if (p.queries.empty() && p.expression.empty()) return buildPromQL(p, stepS, dialect);
  std::map<std::string, std::string> exprs;
  PanelSpec a = p;
  a.queries.clear();
  a.expression.clear();
  auto ea = buildPromQL(a, stepS, dialect);
  if (!ea) return Status::invalid_argument("query A: " + ea.status().message());
  exprs["A"] = *ea;
  for (const auto& q : p.queries) {
    auto e = buildPromQL(p.queryAsPanel(q), stepS, dialect);
    if (!e) return Status::invalid_argument("query " + q.ref + ": " + e.status().message());
    exprs[q.ref] = *e;
  }
  if (!p.expression.empty()) {
    auto e = substituteQueryRefs(p.expression, exprs);
    if (!e) return Status::invalid_argument("expression: " + e.status().message());
    return *e;
  }
  std::string out;
  for (const auto& [ref, e] : exprs)
    out += (out.empty() ? "" : " or ") +
           ("label_replace(" + e + ", \"query\", \"" + ref + "\", \"\", \"\")");
  return out;
}

PromRange promRangeFor(int64_t from, int64_t to, int64_t step) {
  step = std::max<int64_t>(1, step);
  PromRange r;
  r.step = step;
  r.start = bucket_start(from, step) + step;
  r.end = bucket_start(std::max(from, to - 1), step) + step;
  return r;
}

std::string promQueryRangePath(const std::string& expr, const PromRange& r) {
  return "/api/v1/query_range?query=" + percentEncode(expr) + "&start=" + std::to_string(r.start) +
         "&end=" + std::to_string(r.end) + "&step=" + std::to_string(r.step);
}

std::string promLabelValuesPath(std::string_view label, std::string_view match) {
  std::string p = "/api/v1/label/" + percentEncode(label) + "/values";
  if (!match.empty()) p += "?match%5B%5D=" + percentEncode(match);
  return p;
}

std::string promLabelsPath(std::string_view match) {
  std::string p = "/api/v1/labels";
  if (!match.empty()) p += "?match%5B%5D=" + percentEncode(match);
  return p;
}

std::string promBuildInfoPath() {
  return "/api/v1/status/buildinfo";
}

std::string promInstantQueryPath(std::string_view expr) {
  return "/api/v1/query?query=" + percentEncode(expr);
}

Result<QueryResult> parsePromMatrix(std::string_view body, int64_t step) {
  auto data = parseSuccess(body);
  if (!data) return data.status();
  const json& d = *data;
  if (!d.is_object()) return Status::corruption("query_range answer: \"data\" is not an object");
  auto type = d.find("resultType");
  if (type == d.end() || !type->is_string() || *type != "matrix")
    return Status::corruption("query_range answer: expected \"resultType\": \"matrix\"");
  auto result = d.find("result");
  if (result == d.end() || !result->is_array())
    return Status::corruption("query_range answer has no \"result\" array");
  QueryResult r;
  r.step = r.resolution = step;
  std::vector<std::string> names;
  for (const auto& s : *result) {
    Series out;
    std::string name;
    if (auto m = s.find("metric"); m != s.end() && m->is_object())
      for (auto it = m->begin(); it != m->end(); ++it) {
        std::string v = it->is_string() ? it->get<std::string>() : it->dump();
        if (it.key() == "__name__")
          name = std::move(v);
        else
          out.tags.push_back({it.key(), std::move(v)});
      }
    canonicalize(out.tags);
    auto values = s.find("values");
    if (values == s.end() || !values->is_array())
      return Status::corruption("query_range answer: a series has no \"values\"");
    out.points.reserve(values->size());
    for (const auto& p : *values) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_string())
        return Status::corruption("query_range answer: a value is not [time, \"number\"]");
      const std::string v = p[1].get<std::string>();
      char* end = nullptr;
      double x = std::strtod(v.c_str(), &end);  // also reads NaN, +Inf, -Inf
      if (end == v.c_str() || *end != '\0')
        return Status::corruption("query_range answer: '" + v + "' is not a number");
      out.points.push_back({std::llround(p[0].get<double>()) - step, x});
    }
    names.push_back(std::move(name));
    r.series.push_back(std::move(out));
  }
  // __name__ is noise when every series has the same one (or none), and the only difference
  // otherwise.
  std::set<std::string> seen;
  bool clash = false;
  for (const auto& s : r.series) clash |= !seen.insert(tags_to_string(s.tags)).second;
  if (clash)
    for (size_t i = 0; i < r.series.size(); ++i)
      if (!names[i].empty()) {
        r.series[i].tags.push_back({"__name__", names[i]});
        canonicalize(r.series[i].tags);
      }
  auto tagLess = [](const Series& a, const Series& b) {
    return std::lexicographical_compare(
        a.tags.begin(), a.tags.end(), b.tags.begin(), b.tags.end(), [](const Tag& x, const Tag& y) {
          return std::tie(x.key, x.value) < std::tie(y.key, y.value);
        });
  };
  std::sort(r.series.begin(), r.series.end(), tagLess);
  if (!r.series.empty()) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (const auto& s : r.series)
      for (const auto& p : s.points) {
        lo = std::min(lo, p.t);
        hi = std::max(hi, p.t);
      }
    if (lo <= hi) {
      r.from = lo;
      r.to = hi + step;
    }
  }
  return r;
}

PromType parsePromType(std::string_view name) {
  if (name == "counter") return PromType::Counter;
  if (name == "gauge") return PromType::Gauge;
  if (name == "histogram") return PromType::Histogram;
  if (name == "summary") return PromType::Summary;
  return PromType::Other;
}

Result<PromTypes> parsePromMetadata(std::string_view body) {
  auto data = parseSuccess(body);
  if (!data) return data.status();
  if (!data->is_object()) return Status::corruption("metadata answer: \"data\" is not an object");
  PromTypes out;
  for (auto it = data->begin(); it != data->end(); ++it) {
    if (!it->is_array() || it->empty() || !(*it)[0].is_object()) continue;
    auto type = (*it)[0].find("type");
    if (type != (*it)[0].end() && type->is_string())
      out[it.key()] = parsePromType(type->get<std::string>());
  }
  return out;
}

std::vector<MetricInfo> promMetricKinds(const std::vector<std::string>& names,
                                        const PromTypes& types) {
  auto typeOf = [&](const std::string& n) -> std::optional<PromType> {
    auto it = types.find(n);
    if (it == types.end()) return std::nullopt;
    return it->second;
  };
  std::vector<MetricInfo> out;
  out.reserve(names.size());
  for (const auto& name : names) {
    std::optional<Kind> kind;
    const std::optional<PromType> t = typeOf(name);
    if (t == PromType::Counter)
      kind = Kind::kCounter;
    else if (t == PromType::Gauge)
      kind = Kind::kGauge;
    else if (t == PromType::Summary || t == PromType::Histogram)
      kind = Kind::kDistribution;
    else
      for (const char* suffix : {"_bucket", "_count", "_sum", "_total"}) {
        if (!name.ends_with(suffix)) continue;
        const std::optional<PromType> base =
            typeOf(name.substr(0, name.size() - std::strlen(suffix)));
        if (std::string_view(suffix) == "_bucket" && base == PromType::Histogram)
          kind = Kind::kDistribution;
        else if (std::string_view(suffix) == "_total" && base == PromType::Counter)
          kind = Kind::kCounter;  // OpenMetrics family
        else if ((std::string_view(suffix) == "_count" || std::string_view(suffix) == "_sum") &&
                 (base == PromType::Histogram || base == PromType::Summary))
          kind = Kind::kCounter;
      }
    out.push_back({name, kind, 0});
  }
  return out;
}

Result<std::vector<std::string>> parsePromStrings(std::string_view body) {
  auto data = parseSuccess(body);
  if (!data) return data.status();
  if (!data->is_array())
    return Status::corruption("the data source's answer: \"data\" is not a list");
  std::vector<std::string> out;
  out.reserve(data->size());
  for (const auto& v : *data)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

Status checkPromAnswer(std::string_view body) {
  auto data = parseSuccess(body);
  return data ? Status::ok() : data.status();
}

Result<std::string> parsePromBuildInfo(std::string_view body) {
  auto data = parseSuccess(body);
  if (!data) return data.status();
  if (!data->is_object()) return Status::corruption("buildinfo answer: \"data\" is not an object");
  auto v = data->find("version");
  if (v == data->end() || !v->is_string()) return std::string();  // VictoriaMetrics answers {}
  return v->get<std::string>();
}

std::string promErrorMessage(int httpStatus, std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_object()) {
    auto e = j.find("error");
    if (e != j.end() && e->is_string()) {
      std::string type;
      if (auto t = j.find("errorType"); t != j.end() && t->is_string())
        type = t->get<std::string>();
      return type.empty() ? e->get<std::string>() : type + ": " + e->get<std::string>();
    }
  }
  if (httpStatus == 0) return "no answer from the data source";
  std::string out = "HTTP " + std::to_string(httpStatus);
  // VictoriaMetrics and proxies answer some errors as plain text: its first line says what.
  std::string_view text = body.substr(0, body.find('\n'));
  if (!text.empty() && !j.is_object() && text.size() <= 300 &&
      std::none_of(text.begin(), text.end(), [](unsigned char c) { return c < 0x20 && c != '\t'; }))
    out += ": " + std::string(text);
  return out;
}

}  // namespace tally::dash
