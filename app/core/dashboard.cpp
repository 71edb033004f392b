#include "dashboard.h"

#include "variables.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "tally/common/csv.h"
#include "tally/common/time_bucket.h"

namespace tally::dash {

using nlohmann::json;

const char* chartTypeName(ChartType type) {
  switch (type) {
    case ChartType::Line:
      return "line";
    case ChartType::StackedArea:
      return "stacked";
    case ChartType::Bars:
      return "bars";
    case ChartType::Histogram:
      return "histogram";
    case ChartType::Heatmap:
      return "heatmap";
    case ChartType::Stat:
      return "stat";
    case ChartType::Gauge:
      return "gauge";
    case ChartType::Table:
      return "table";
    case ChartType::Row:
      return "row";
  }
  return "line";
}

std::optional<ChartType> parseChartType(std::string_view name) {
  for (auto t :
       {ChartType::Line, ChartType::StackedArea, ChartType::Bars, ChartType::Histogram,
        ChartType::Heatmap, ChartType::Stat, ChartType::Gauge, ChartType::Table, ChartType::Row})
    if (name == chartTypeName(t)) return t;
  return std::nullopt;
}

bool chartNeedsDistribution(ChartType type) {
  return type == ChartType::Histogram || type == ChartType::Heatmap;
}

bool chartIsReduced(ChartType type) {
  return type == ChartType::Stat || type == ChartType::Gauge || type == ChartType::Table;
}

bool chartIsVersion4(ChartType type) {
  return chartIsReduced(type) || type == ChartType::Row;
}

bool isHexColor(std::string_view t) {
  if (t.size() != 7 || t[0] != '#') return false;
  for (char c : t.substr(1))
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

Result<std::vector<Threshold>> parseThresholds(std::string_view text) {
  static const struct {
    const char* name;
    const char* hex;
  } kNames[] = {{"red", "#d93025"},   {"orange", "#f29900"}, {"yellow", "#f9ab00"},
                {"green", "#188038"}, {"blue", "#1a73e8"},   {"purple", "#8e24aa"},
                {"grey", "#80868b"},  {"gray", "#80868b"}};
  std::vector<Threshold> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string item(text.substr(pos, comma - pos));
    pos = comma + 1;
    const auto first = item.find_first_not_of(" \t");
    if (first == std::string::npos) {
      if (comma == text.size()) break;
      continue;
    }
    const auto last = item.find_last_not_of(" \t");
    item = item.substr(first, last - first + 1);
    const auto space = item.find_first_of(" \t");
    if (space == std::string::npos)
      return Status::invalid_argument("threshold '" + item +
                                      "' needs a value and a colour (80 red)");
    const std::string num = item.substr(0, space);
    std::string color = item.substr(item.find_first_not_of(" \t", space));
    char* end = nullptr;
    const double v = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size() || !std::isfinite(v))
      return Status::invalid_argument("threshold value '" + num + "' is not a number");
    for (const auto& n : kNames)
      if (strcasecmp(color.c_str(), n.name) == 0) color = n.hex;
    if (!isHexColor(color))
      return Status::invalid_argument("'" + color + "' is not a colour (#rrggbb, red, orange, " +
                                      "yellow, green, blue, purple, grey)");
    std::transform(color.begin(), color.end(), color.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    out.push_back({v, color});
    if (out.size() > kMaxThresholds)
      return Status::invalid_argument("at most " + std::to_string(kMaxThresholds) + " thresholds");
  }
  std::sort(out.begin(), out.end(),
            [](const Threshold& a, const Threshold& b) { return a.value < b.value; });
  for (size_t i = 1; i < out.size(); ++i)
    if (out[i].value == out[i - 1].value)
      return Status::invalid_argument("two thresholds at " + format_number(out[i].value));
  return out;
}

std::string formatThresholds(const std::vector<Threshold>& thresholds) {
  std::string out;
  for (const auto& t : thresholds) {
    if (!out.empty()) out += ", ";
    out += format_number(t.value) + " " + t.color;
  }
  return out;
}

std::string thresholdColor(const std::vector<Threshold>& thresholds, double value,
                           const std::string& base) {
  std::string out = base;
  for (const auto& t : thresholds)
    if (value >= t.value) out = t.color;
  return out;
}

const char* filterOpName(FilterOp op) {
  switch (op) {
    case FilterOp::Eq:
      return "=";
    case FilterOp::NotEq:
      return "!=";
    case FilterOp::Regex:
      return "=~";
    case FilterOp::NotRegex:
      return "!~";
  }
  return "=";
}

std::optional<FilterOp> parseFilterOp(std::string_view op) {
  if (op == "=") return FilterOp::Eq;
  if (op == "!=") return FilterOp::NotEq;
  if (op == "=~") return FilterOp::Regex;
  if (op == "!~") return FilterOp::NotRegex;
  return std::nullopt;
}

std::string TagFilter::toString() const {
  return key + filterOpName(op) + value;
}

Result<LabelMatcher> TagFilter::compile() const {
  LabelMatcher::Op o = LabelMatcher::Op::kEq;
  switch (op) {
    case FilterOp::Eq:
      o = LabelMatcher::Op::kEq;
      break;
    case FilterOp::NotEq:
      o = LabelMatcher::Op::kNe;
      break;
    case FilterOp::Regex:
      o = LabelMatcher::Op::kRe;
      break;
    case FilterOp::NotRegex:
      o = LabelMatcher::Op::kNre;
      break;
  }
  return LabelMatcher::make(key, o, value);
}

bool matchesTags(const LabelMatcher& m, const Tags& tags) {
  const std::string* found = nullptr;
  for (const auto& t : tags)
    if (t.key == m.name()) found = &t.value;
  if (m.op() == LabelMatcher::Op::kEq && !found) return false;  // = never matches an absent key
  return m.matches(found ? std::string_view(*found) : std::string_view());
}

bool TagFilter::matches(const Tags& tags) const {
  auto m = compile();
  return m && matchesTags(*m, tags);
}

PanelSpec PanelSpec::queryAsPanel(const QuerySpec& q) const {
  PanelSpec p = *this;
  p.title.clear();
  p.promql = q.promql;
  p.metric = q.metric;
  p.filters = q.filters;
  p.groupBy = q.groupBy;
  p.fn = q.fn;
  p.offsetS = q.offsetS;
  p.queries.clear();
  p.expression.clear();
  return p;
}

std::string PanelSpec::displayTitle() const {
  if (!title.empty()) return title;
  auto cut = [](std::string t) { return t.size() > 100 ? t.substr(0, 97) + "..." : t; };
  if (!queries.empty() || !expression.empty()) {
    // "B / A: A = sum(api.requests), B = sum(api.errors)"
    PanelSpec a = *this;
    a.queries.clear();
    a.expression.clear();
    std::string t = expression.empty() ? std::string() : expression + ": ";
    t += "A = " + a.displayTitle();
    for (const auto& q : queries) t += ", " + q.ref + " = " + queryAsPanel(q).displayTitle();
    return cut(t);
  }
  const std::string off = offsetS ? " offset " + format_duration(offsetS) : std::string();
  if (!promql.empty()) return cut(promql) + off;
  if (metric.empty()) return "New panel";
  std::string what = metric;
  if (!filters.empty()) {
    what += "{";
    for (size_t i = 0; i < filters.size(); ++i) what += (i ? "," : "") + filters[i].toString();
    what += "}";
  }
  std::string t = chartNeedsDistribution(chart) ? what : fn_name(fn) + ("(" + what + ")");
  if (!groupBy.empty()) {
    t += " by ";
    for (size_t i = 0; i < groupBy.size(); ++i) t += (i ? "," : "") + groupBy[i];
  }
  return t + off;
}

Result<std::string> substituteQueryRefs(std::string_view e,
                                        const std::map<std::string, std::string>& exprs) {
  std::string out;
  auto isWord = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  };
  size_t i = 0;
  bool any = false;
  while (i < e.size()) {
    const char c = e[i];
    if (c == '"' || c == '\'' || c == '`') {  // a string literal, copied as it is
      size_t j = i + 1;
      while (j < e.size() && e[j] != c) j += (e[j] == '\\' && c != '`') ? 2 : 1;
      if (j >= e.size()) return Status::invalid_argument("a string is not closed");
      out.append(e.substr(i, j + 1 - i));
      i = j + 1;
      continue;
    }
    if (isWord(c)) {
      size_t j = i;
      while (j < e.size() && isWord(e[j])) ++j;
      const std::string_view word = e.substr(i, j - i);
      if (word.size() == 1 && word[0] >= 'A' && word[0] <= 'Z') {
        auto it = exprs.find(std::string(word));
        if (it == exprs.end()) {
          std::string names;
          for (const auto& [k, v] : exprs) names += (names.empty() ? "" : ", ") + k;
          return Status::invalid_argument("'" + std::string(word) +
                                          "' is not one of the panel's queries (" + names + ")");
        }
        out += "(" + it->second + ")";
        any = true;
      } else {
        out.append(word);
      }
      i = j;
      continue;
    }
    out += c;
    ++i;
  }
  if (!any) return Status::invalid_argument("names none of the queries (A, B, ...)");
  return out;
}

Result<std::vector<TagFilter>> parseFilterList(std::string_view text) {
  std::vector<TagFilter> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    pos = comma + 1;
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.empty()) {
      if (comma == text.size()) break;
      continue;
    }
    const size_t at = item.find_first_of("=!");
    if (at == std::string_view::npos || at == 0)
      return Status::invalid_argument("filter '" + std::string(item) +
                                      "' needs a key, an operator (=, !=, =~, !~) and a value");
    TagFilter f;
    f.key = std::string(item.substr(0, at));
    std::string_view rest = item.substr(at);
    std::optional<FilterOp> op;
    for (const char* o : {"!~", "=~", "!=", "="})
      if (rest.starts_with(o)) {
        op = parseFilterOp(o);
        rest.remove_prefix(std::string_view(o).size());
        break;
      }
    if (!op)
      return Status::invalid_argument("filter '" + std::string(item) +
                                      "': the operator is one of =, !=, =~, !~");
    f.op = *op;
    f.value = std::string(rest);
    out.push_back(std::move(f));
  }
  return out;
}

std::string formatFilterList(const std::vector<TagFilter>& filters) {
  std::string out;
  for (const auto& f : filters) out += (out.empty() ? "" : ", ") + f.toString();
  return out;
}

namespace {

bool hasControlChars(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// Prometheus names: any UTF-8 without control characters (Prometheus 3 quotes the unusual ones);
// the Tally collector's stricter rules apply to collector panels only.
}  // namespace

Status validatePromName(std::string_view name, const char* what) {
  if (name.empty()) return Status::invalid_argument(std::string(what) + " is empty");
  if (name.size() > 1024)
    return Status::invalid_argument(std::string(what) + " is longer than 1024 bytes");
  if (hasControlChars(name))
    return Status::invalid_argument(std::string(what) + " contains a control character");
  return Status::ok();
}

namespace {

// RFC 9110 token characters.
bool isHeaderName(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && !std::strchr("!#$%&'*+-.^_`|~", c)) return false;
  return true;
}

}  // namespace

Status validateDataSource(const DataSource& d, const std::string& where) {
  if (d.name.empty()) return Status::invalid_argument(where + ".name: missing");
  if (d.name.size() > 64 || hasControlChars(d.name))
    return Status::invalid_argument(where + ".name: at most 64 bytes without control characters");
  std::string_view url = d.url;
  size_t scheme = url.starts_with("http://") ? 7 : url.starts_with("https://") ? 8 : 0;
  if (scheme == 0 || url.size() == scheme || url[scheme] == '/' ||
      url.find_first_of(" \t\r\n?#") != std::string_view::npos)
    return Status::invalid_argument(
        where + ".url: '" + d.url +
        "' is not an http:// or https:// URL of a Prometheus API (no query string)");
  std::string_view path = url.substr(0, url.find_last_not_of('/') + 1);
  if (path.ends_with("/api/v1") || path.ends_with("/api/v1/query_range") ||
      path.ends_with("/api/v1/query"))
    return Status::invalid_argument(
        where + ".url: leave out the /api/v1/... part, the dashboard adds it ('" +
        std::string(path.substr(0, path.find("/api/v1"))) + "')");
  for (size_t i = 0; i < d.headers.size(); ++i) {
    const std::string& k = d.headers[i].name;
    const std::string& v = d.headers[i].value;
    if (!isHeaderName(k))
      return Status::invalid_argument(where + ".headers: '" + k + "' is not an HTTP header name");
    if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      return Status::invalid_argument(where + ".headers." + k +
                                      ": the value contains a line break");
    for (size_t j = 0; j < i; ++j)
      if (strcasecmp(d.headers[j].name.c_str(), k.c_str()) == 0)
        return Status::invalid_argument(where + ".headers: '" + k + "' is given twice");
  }
  if (d.minStepS < 1 || d.minStepS > 86400)
    return Status::invalid_argument(where + ".min_step: must be 1s..1d");
  return Status::ok();
}

std::vector<std::string> envAllowPatterns(std::string_view setting) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= setting.size()) {
    size_t comma = setting.find(',', start);
    if (comma == std::string_view::npos) comma = setting.size();
    std::string_view p = setting.substr(start, comma - start);
    while (!p.empty() && p.front() == ' ') p.remove_prefix(1);
    while (!p.empty() && p.back() == ' ') p.remove_suffix(1);
    if (!p.empty()) out.emplace_back(p);
    start = comma + 1;
  }
  if (out.empty()) out.push_back("TALLY_*");
  return out;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// scheme ("http"/"https"), host (lower case, IPv6 in brackets) and port of an http(s) URL.
struct UrlParts {
  std::string scheme, host;
  int port = 0;
};
std::optional<UrlParts> splitUrl(std::string_view url) {
  UrlParts u;
  const std::string head = lower(url.substr(0, 8));
  if (head.starts_with("https://")) {
    u.scheme = "https";
    u.port = 443;
    url.remove_prefix(8);
  } else if (head.starts_with("http://")) {
    u.scheme = "http";
    u.port = 80;
    url.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  std::string_view rest = url.substr(0, url.find_first_of("/?#"));
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = lower(rest.substr(0, close + 1));
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.find(':');
    u.host = lower(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (u.host.empty()) return std::nullopt;
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    u.port = std::stoi(std::string(port));
  }
  return u;
}

}  // namespace

std::string urlHostPort(std::string_view url) {
  auto u = splitUrl(url);
  return u ? u->host + ":" + std::to_string(u->port) : std::string();
}

std::string urlOrigin(std::string_view url) {
  auto u = splitUrl(url);
  return u ? u->scheme + "://" + u->host + ":" + std::to_string(u->port) : std::string();
}

bool isSecretHeaderName(std::string_view name) {
  const std::string n = lower(name);
  if (n == "authorization" || n == "proxy-authorization" || n == "cookie") return true;
  for (const char* part :
       {"auth", "token", "key", "secret", "password", "passwd", "session", "credential"})
    if (n.find(part) != std::string::npos) return true;
  return false;
}

bool referencesEnvironment(std::string_view v) {
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] != '$') continue;
    if (v[i + 1] == '$') {
      ++i;  // "$$" is a literal '$'
      continue;
    }
    if (v[i + 1] == '{') return true;
  }
  return false;
}

bool storedAsSecret(const Header& h) {
  return (h.secret || isSecretHeaderName(h.name)) && !referencesEnvironment(h.value);
}

std::string secretReference(const DataSource& source, const Header& header) {
  return std::string(kSecretRefPrefix) + source.name + "/" + header.name;
}

std::string secretStoreKey(const DataSource& source, const Header& header) {
  return urlOrigin(source.url) + " " + source.name + "/" + header.name;
}

Status checkCredentialsTransport(const DataSource& source) {
  if (source.headers.empty()) return Status::ok();
  auto u = splitUrl(source.url);
  if (!u)
    return Status::invalid_argument("source " + source.name + ": url must be http:// or https://");
  if (u->scheme == "https") return Status::ok();
  const std::string& host = u->host;
  const bool loopback =
      host == "localhost" || host == "[::1]" ||
      (host.starts_with("127.") && host.find_first_not_of("0123456789.") == std::string::npos);
  if (loopback) return Status::ok();
  return Status::invalid_argument("source " + source.name + " sends headers (credentials) to " +
                                  host +
                                  " over plain http: use https:// for a host beyond loopback");
}

bool envNameAllowed(std::string_view name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      if (name.starts_with(std::string_view(p).substr(0, p.size() - 1))) return true;
    } else if (name == p) {
      return true;
    }
  }
  return false;
}

Result<std::string> expandHeaderValue(
    std::string_view v, const std::function<std::optional<std::string>(const std::string&)>& lookup,
    const std::vector<std::string>* allowed) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '$' || i + 1 == v.size()) {
      out += v[i];
      continue;
    }
    if (v[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (v[i + 1] != '{') {
      out += v[i];
      continue;
    }
    size_t close = v.find('}', i + 2);
    if (close == std::string_view::npos)
      return Status::invalid_argument("unclosed ${ in a header value");
    const std::string name(v.substr(i + 2, close - i - 2));
    if (allowed && !envNameAllowed(name, *allowed))
      return Status::invalid_argument(
          "environment variable " + name +
          " is not one a dashboard file may read (allowed: TALLY_DASHBOARD_ENV_ALLOW, default "
          "TALLY_*)");
    auto value = lookup(name);
    if (!value) return Status::not_found("environment variable " + name + " is not set");
    out += *value;
    i = close;
  }
  return out;
}

const DataSource* findSource(const Dashboard& d, std::string_view name) {
  for (const auto& s : d.sources)
    if (s.name == name) return &s;
  return nullptr;
}

namespace {
bool panelNeedsVersion4(const PanelSpec& p) {
  return chartIsVersion4(p.chart) || !p.thresholds.empty() || p.alert.has_value() ||
         !p.queries.empty() || !p.expression.empty() || p.offsetS != 0 ||
         (p.source.empty() && !p.promql.empty()) || p.legend != LegendMode::List || p.minValue ||
         p.maxValue || p.reduce != Reduce::kLast;
}
}  // namespace

int dashboardFileVersion(const Dashboard& d) {
  for (const auto& p : d.panels)
    if (panelNeedsVersion4(p)) return 4;
  if (!d.variables.empty()) return 3;
  return d.sources.empty() ? 1 : 2;
}

Status validatePanel(const PanelSpec& p, const std::string& where) {
  const bool prom = !p.source.empty();
  if (!p.metric.empty()) {
    if (auto s = prom ? validatePromName(p.metric, "metric name") : validate_metric_name(p.metric);
        !s)
      return Status::invalid_argument(where + ".metric: " + s.message());
  }
  if (prom && chartNeedsDistribution(p.chart))
    return Status::invalid_argument(
        where + ".chart: " + chartTypeName(p.chart) +
        " needs the Tally collector's distributions; a Prometheus source draws line, "
        "stacked or bars");
  for (size_t i = 0; i < p.filters.size(); ++i) {
    const auto& f = p.filters[i];
    std::string w = where + ".filters[" + std::to_string(i) + "]";
    if (prom) {
      // Prometheus checks its own (RE2) regular expressions; a bad one is the panel's query error.
      if (auto s = validatePromName(f.key, "label name"); !s)
        return Status::invalid_argument(w + ".key: " + s.message());
      continue;
    }
    if (auto s = validate_tag_key(f.key); !s)
      return Status::invalid_argument(w + ".key: " + s.message());
    if (f.op == FilterOp::NotRegex)
      return Status::invalid_argument(
          w + ".op: !~ needs a Prometheus data source (the collector knows =, !=, =~)");
    if (f.op == FilterOp::Regex && !f.compile())
      return Status::invalid_argument(w + ".value: bad regular expression '" + f.value + "'");
  }
  if (p.thresholds.size() > kMaxThresholds)
    return Status::invalid_argument(where + ".thresholds: at most " +
                                    std::to_string(kMaxThresholds));
  for (size_t i = 0; i < p.thresholds.size(); ++i) {
    const auto& t = p.thresholds[i];
    const std::string w = where + ".thresholds[" + std::to_string(i) + "]";
    if (!std::isfinite(t.value)) return Status::invalid_argument(w + ".value: must be a number");
    if (!isHexColor(t.color))
      return Status::invalid_argument(w + ".color: '" + t.color + "' is not a colour like #d93025");
    if (i > 0 && !(p.thresholds[i - 1].value < t.value))
      return Status::invalid_argument(w + ".value: thresholds must rise (" +
                                      format_number(p.thresholds[i - 1].value) + " then " +
                                      format_number(t.value) + ")");
  }
  if (p.minValue && p.maxValue && !(*p.minValue < *p.maxValue))
    return Status::invalid_argument(where + ".max: must be above min");
  if ((p.minValue && !std::isfinite(*p.minValue)) || (p.maxValue && !std::isfinite(*p.maxValue)))
    return Status::invalid_argument(where + ".min/max: must be numbers");
  if (p.legendRows < 1 || p.legendRows > 1000)
    return Status::invalid_argument(where + ".legend_rows: must be in 1..1000");
  if (p.chart == ChartType::Row && (p.grid.x != 0 || p.grid.w != kGridColumns || p.grid.h != 1))
    return Status::invalid_argument(where + ".grid: a row spans the 12 columns, one row high");
  if (p.collapsed && p.chart != ChartType::Row)
    return Status::invalid_argument(where + ".collapsed: only a row collapses");
  if (p.offsetS < 0 || p.offsetS > kMaxOffsetS)
    return Status::invalid_argument(where + ".offset: must be between 0 and 2y");
  if (p.needsPromQL() && chartNeedsDistribution(p.chart))
    return Status::invalid_argument(where + ".chart: a " + chartTypeName(p.chart) +
                                    " panel has one query, without PromQL, offset or expression");
  if (p.queries.size() > kMaxPanelQueries)
    return Status::invalid_argument(where + ".queries: at most " +
                                    std::to_string(kMaxPanelQueries));
  std::vector<std::string> refs = {"A"};
  for (size_t i = 0; i < p.queries.size(); ++i) {
    const auto& q = p.queries[i];
    const std::string w = where + ".queries[" + std::to_string(i) + "]";
    if (q.ref.size() != 1 || q.ref[0] < 'B' || q.ref[0] > 'Z')
      return Status::invalid_argument(w + ".ref: '" + q.ref + "' is not a letter B to Z");
    if (std::find(refs.begin(), refs.end(), q.ref) != refs.end())
      return Status::invalid_argument(w + ".ref: '" + q.ref + "' is used twice");
    refs.push_back(q.ref);
    if (q.metric.empty() && q.promql.empty())
      return Status::invalid_argument(w + ": needs a metric or a PromQL expression");
    if (auto st = validatePanel(p.queryAsPanel(q), w); !st) return st;
  }
  if (!p.expression.empty()) {
    std::map<std::string, std::string> known;
    for (const auto& r : refs) known[r] = "x";
    if (auto e = substituteQueryRefs(p.expression, known); !e)
      return Status::invalid_argument(where + ".expression: " + e.status().message());
  }
  if (p.alert && chartNeedsDistribution(p.chart))
    return Status::invalid_argument(where + ".alert: a " + chartTypeName(p.chart) +
                                    " panel has no series to alert on");
  for (size_t i = 0; i < p.groupBy.size(); ++i)
    if (auto s =
            prom ? validatePromName(p.groupBy[i], "label name") : validate_tag_key(p.groupBy[i]);
        !s)
      return Status::invalid_argument(where + ".group_by[" + std::to_string(i) +
                                      "]: " + s.message());
  const auto& g = p.grid;
  if (g.x < 0 || g.w < 1 || g.x + g.w > kGridColumns)
    return Status::invalid_argument(where + ".grid: x and w must fit in " +
                                    std::to_string(kGridColumns) + " columns");
  if (g.y < 0 || g.h < 1 || g.h > 100)
    return Status::invalid_argument(where + ".grid: y must be >= 0 and h in 1..100");
  return Status::ok();
}

Status validateDashboard(const Dashboard& d) {
  if (d.range.isCustom()) {
    if (*d.range.to <= *d.range.from)
      return Status::invalid_argument("range: 'to' must be after 'from'");
  } else if (auto r = parse_duration(d.range.relative); !r) {
    return Status::invalid_argument("range.last: " + r.status().message());
  }
  for (size_t i = 0; i < d.sources.size(); ++i) {
    const std::string where = "sources[" + std::to_string(i) + "]";
    if (auto s = validateDataSource(d.sources[i], where); !s) return s;
    for (size_t j = 0; j < i; ++j)
      if (d.sources[j].name == d.sources[i].name)
        return Status::invalid_argument(where + ".name: '" + d.sources[i].name +
                                        "' is defined twice");
  }
  for (size_t i = 0; i < d.variables.size(); ++i) {
    const std::string where = "variables[" + std::to_string(i) + "]";
    if (auto s = validateVariable(d.variables[i], where); !s) return s;
    if (!d.variables[i].source.empty() && !findSource(d, d.variables[i].source))
      return Status::invalid_argument(where + ".source: no data source named '" +
                                      d.variables[i].source + "' in \"sources\"");
    for (size_t j = 0; j < i; ++j)
      if (d.variables[j].name == d.variables[i].name)
        return Status::invalid_argument(where + ".name: '" + d.variables[i].name +
                                        "' is defined twice");
  }
  for (size_t i = 0; i < d.panels.size(); ++i) {
    const std::string where = "panels[" + std::to_string(i) + "]";
    const auto& p = d.panels[i];
    if (!p.source.empty() && !findSource(d, p.source))
      return Status::invalid_argument(where + ".source: no data source named '" + p.source +
                                      "' in \"sources\"");
    if (auto s = validatePanel(p, where); !s) return s;
  }
  return Status::ok();
}

namespace {

// Small typed accessors that name the field when the file is wrong.
struct Reader {
  std::string error;
  const json* get(const json& obj, const char* key, const std::string& where, bool required) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (required && error.empty()) error = where + "." + key + ": missing";
      return nullptr;
    }
    return &*it;
  }
  std::string str(const json& obj, const char* key, const std::string& where, bool required = false,
                  std::string def = {}) {
    const json* v = get(obj, key, where, required);
    if (!v) return def;
    if (!v->is_string()) {
      fail(where + "." + key + ": must be a string");
      return def;
    }
    return v->get<std::string>();
  }
  int64_t integer(const json& obj, const char* key, const std::string& where, int64_t def,
                  bool required = false) {
    const json* v = get(obj, key, where, required);
    if (!v) return def;
    if (!v->is_number_integer()) {
      fail(where + "." + key + ": must be a whole number");
      return def;
    }
    return v->get<int64_t>();
  }
  std::optional<double> number(const json& obj, const char* key, const std::string& where,
                               bool required = false) {
    const json* v = get(obj, key, where, required);
    if (!v) return std::nullopt;
    if (!v->is_number()) {
      fail(where + "." + key + ": must be a number");
      return std::nullopt;
    }
    return v->get<double>();
  }
  bool boolean(const json& obj, const char* key, const std::string& where, bool def) {
    const json* v = get(obj, key, where, false);
    if (!v) return def;
    if (!v->is_boolean()) {
      fail(where + "." + key + ": must be true or false");
      return def;
    }
    return v->get<bool>();
  }
  void fail(std::string msg) {
    if (error.empty()) error = std::move(msg);
  }
};

// Calls fn(item, "where.key[i]") for each element of the array `key` of p, which must be objects
// (`shape` names their fields in the message when one is not).
template <typename Fn>
void readObjects(Reader& r, const json& p, const char* key, const std::string& where,
                 const char* shape, Fn fn) {
  const json* a = r.get(p, key, where, false);
  if (!a) return;
  if (!a->is_array()) {
    r.fail(where + "." + key + ": must be an array of " + shape);
    return;
  }
  for (size_t i = 0; i < a->size(); ++i) {
    const std::string w = where + "." + key + "[" + std::to_string(i) + "]";
    const json& item = (*a)[i];
    if (!item.is_object()) {
      r.fail(w + ": must be an object " + shape);
      continue;
    }
    fn(item, w);
  }
}

std::vector<TagFilter> readFilters(Reader& r, const json& p, const std::string& where) {
  std::vector<TagFilter> out;
  readObjects(r, p, "filters", where, "{key, op, value}",
              [&](const json& item, const std::string& w) {
                TagFilter tf;
                tf.key = r.str(item, "key", w, true);
                std::string op = r.str(item, "op", w, false, "=");
                if (auto o = parseFilterOp(op))
                  tf.op = *o;
                else
                  r.fail(w + ".op: unknown operator '" + op + "' (=, !=, =~, !~)");
                tf.value = r.str(item, "value", w, true);
                out.push_back(std::move(tf));
              });
  return out;
}

std::vector<std::string> readGroupBy(Reader& r, const json& p, const std::string& where) {
  std::vector<std::string> out;
  if (const json* g = r.get(p, "group_by", where, false)) {
    if (!g->is_array())
      r.fail(where + ".group_by: must be an array of tag keys");
    else
      for (const auto& k : *g) {
        if (!k.is_string())
          r.fail(where + ".group_by: must be an array of tag keys");
        else
          out.push_back(k.get<std::string>());
      }
  }
  return out;
}

Fn readFn(Reader& r, const json& p, const std::string& where) {
  const std::string fn = r.str(p, "fn", where, false, "sum");
  if (auto f = parse_fn(fn)) return *f;
  r.fail(where + ".fn: unknown function '" + fn + "'");
  return Fn::kSum;
}

int64_t readOffset(Reader& r, const json& p, const std::string& where) {
  const std::string text = r.str(p, "offset", where);
  if (text.empty()) return 0;
  auto d = parse_duration(text);
  if (!d) {
    r.fail(where + ".offset: " + d.status().message());
    return 0;
  }
  return *d;
}

PanelSpec readPanel(Reader& r, const json& p, const std::string& where) {
  PanelSpec out;
  if (!p.is_object()) {
    r.fail(where + ": must be an object");
    return out;
  }
  out.title = r.str(p, "title", where);
  out.source = r.str(p, "source", where);
  out.promql = r.str(p, "promql", where);
  out.metric = r.str(p, "metric", where);
  out.fn = readFn(r, p, where);
  std::string chart = r.str(p, "chart", where, false, "line");
  if (auto t = parseChartType(chart))
    out.chart = *t;
  else
    r.fail(where + ".chart: unknown chart type '" + chart +
           "' (line, stacked, bars, histogram, heatmap, stat, gauge, table)");
  out.unit = r.str(p, "unit", where);
  out.logY = r.boolean(p, "log_y", where, false);
  const std::string reduce = r.str(p, "reduce", where, false, "last");
  if (auto rd = parse_reduce(reduce))
    out.reduce = *rd;
  else
    r.fail(where + ".reduce: unknown reduction '" + reduce + "' (last, min, max, avg, total)");
  out.minValue = r.number(p, "min", where);
  out.maxValue = r.number(p, "max", where);
  readObjects(r, p, "thresholds", where, "{value, color}",
              [&](const json& item, const std::string& w) {
                Threshold th;
                if (auto v = r.number(item, "value", w, true)) th.value = *v;
                th.color = r.str(item, "color", w, true);
                out.thresholds.push_back(std::move(th));
              });
  if (const json* a = r.get(p, "alert", where, false)) {
    if (!a->is_string()) {
      r.fail(where + ".alert: must be a rule like \"avg over 1m > 100 for 2m\"");
    } else if (auto rule = parse_alert_rule(a->get<std::string>())) {
      out.alert = *rule;
    } else {
      r.fail(where + ".alert: " + rule.status().message());
    }
  }
  const std::string legend = r.str(p, "legend", where, false, "list");
  if (legend == "table")
    out.legend = LegendMode::Table;
  else if (legend != "list")
    r.fail(where + ".legend: '" + legend + "' is not list or table");
  out.legendRows = static_cast<int>(r.integer(p, "legend_rows", where, 10));
  out.collapsed = r.boolean(p, "collapsed", where, false);
  out.filters = readFilters(r, p, where);
  out.groupBy = readGroupBy(r, p, where);
  out.offsetS = readOffset(r, p, where);
  out.expression = r.str(p, "expression", where);
  readObjects(r, p, "queries", where, "{ref, metric, filters, group_by, fn, offset}",
              [&](const json& item, const std::string& w) {
                QuerySpec q;
                q.ref = r.str(item, "ref", w, true);
                q.promql = r.str(item, "promql", w);
                q.metric = r.str(item, "metric", w);
                q.filters = readFilters(r, item, w);
                q.groupBy = readGroupBy(r, item, w);
                q.fn = readFn(r, item, w);
                q.offsetS = readOffset(r, item, w);
                out.queries.push_back(std::move(q));
              });
  if (const json* g = r.get(p, "grid", where, false)) {
    if (!g->is_object())
      r.fail(where + ".grid: must be an object {x, y, w, h}");
    else {
      out.grid.x = static_cast<int>(r.integer(*g, "x", where + ".grid", 0));
      out.grid.y = static_cast<int>(r.integer(*g, "y", where + ".grid", 0));
      out.grid.w = static_cast<int>(r.integer(*g, "w", where + ".grid", 6));
      out.grid.h = static_cast<int>(r.integer(*g, "h", where + ".grid", 4));
    }
  }
  return out;
}

DataSource readSource(Reader& r, const json& s, const std::string& where) {
  DataSource out;
  if (!s.is_object()) {
    r.fail(where + ": must be an object {name, type, url, headers, min_step}");
    return out;
  }
  out.name = r.str(s, "name", where, true);
  std::string type = r.str(s, "type", where, true);
  if (r.error.empty() && type != "prometheus")
    r.fail(where + ".type: unknown data source type '" + type + "' (prometheus)");
  out.url = r.str(s, "url", where, true);
  if (const json* h = r.get(s, "headers", where, false)) {
    if (!h->is_object())
      r.fail(where + ".headers: must be an object {\"Header-Name\": \"value\"}");
    else
      for (auto it = h->begin(); it != h->end(); ++it) {
        const std::string w = where + ".headers." + it.key();
        if (it->is_string()) {
          // A value in the file itself (older files; or ${NAME} references): secret by its name.
          out.headers.push_back({it.key(), it->get<std::string>(), isSecretHeaderName(it.key())});
        } else if (it->is_object() && it->size() == 1 && it->contains("secret") &&
                   (*it)["secret"].is_string() &&
                   (*it)["secret"].get<std::string>().starts_with(kSecretRefPrefix)) {
          // {"secret": "keychain:vm/Authorization"}: the value is in the user's secret store.
          out.headers.push_back({it.key(), std::string(), true});
        } else {
          r.fail(w + ": must be a string, or {\"secret\": \"keychain:<source>/<header>\"}");
        }
      }
  }
  std::string minStep = r.str(s, "min_step", where, false, "10s");
  if (auto d = parse_duration(minStep))
    out.minStepS = *d;
  else
    r.fail(where + ".min_step: " + d.status().message());
  return out;
}

Variable readVariable(Reader& r, const json& v, const std::string& where) {
  Variable out;
  if (!v.is_object()) {
    r.fail(where + ": must be an object {name, metric, tag, multi, include_all, current}");
    return out;
  }
  out.name = r.str(v, "name", where, true);
  out.source = r.str(v, "source", where);
  out.metric = r.str(v, "metric", where, true);
  out.tag = r.str(v, "tag", where, true);
  out.multi = r.boolean(v, "multi", where, false);
  out.includeAll = r.boolean(v, "include_all", where, true);
  if (const json* c = r.get(v, "current", where, false)) {
    if (!c->is_array())
      r.fail(where + ".current: must be an array of values");
    else
      for (const auto& k : *c) {
        if (!k.is_string())
          r.fail(where + ".current: must be an array of values");
        else
          out.current.push_back(k.get<std::string>());
      }
  }
  return out;
}

}  // namespace

Result<Dashboard> parseDashboard(std::string_view text) {
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    // nlohmann's message carries the line and column. Not only parse_error: a number out of
    // range ("9999999999e999999901", found by fuzz_dashboard) throws out_of_range.
    std::string what = e.what();
    auto pos = what.find("parse error");
    return Status::corruption("not valid JSON: " +
                              (pos == std::string::npos ? what : what.substr(pos)));
  }
  if (!doc.is_object())
    return Status::corruption("not a Tally dashboard: the top level must be a JSON object");
  auto fmt = doc.find("format");
  if (fmt == doc.end() || !fmt->is_string() || fmt->get<std::string>() != kDashboardFormat)
    return Status::corruption("not a Tally dashboard: \"format\" must be \"tally-dashboard\"");
  auto ver = doc.find("version");
  if (ver == doc.end() || !ver->is_number_integer() || ver->get<int64_t>() < 1)
    return Status::corruption("\"version\" is missing or not a positive whole number");
  int64_t version = ver->get<int64_t>();
  if (version > kDashboardVersion)
    return Status::invalid_argument("written by a newer Tally: dashboard version " +
                                    std::to_string(version) + ", this build reads up to version " +
                                    std::to_string(kDashboardVersion));
  Reader r;
  Dashboard d;
  d.title = r.str(doc, "title", "dashboard", false, "Untitled");
  d.live = r.boolean(doc, "live", "dashboard", true);
  if (const json* range = r.get(doc, "range", "dashboard", false)) {
    if (!range->is_object())
      r.fail("range: must be an object {\"last\": \"1h\"} or {\"from\": t, \"to\": t}");
    else if (range->contains("from") || range->contains("to")) {
      d.range.from = r.integer(*range, "from", "range", 0, true);
      d.range.to = r.integer(*range, "to", "range", 0, true);
      d.range.relative = r.str(*range, "last", "range", false, "1h");
    } else {
      d.range.relative = r.str(*range, "last", "range", false, "1h");
    }
  }
  if (const json* sources = r.get(doc, "sources", "dashboard", false)) {
    if (!sources->is_array())
      r.fail("sources: must be an array");
    else
      for (size_t i = 0; i < sources->size(); ++i)
        d.sources.push_back(readSource(r, (*sources)[i], "sources[" + std::to_string(i) + "]"));
  }
  if (const json* vars = r.get(doc, "variables", "dashboard", false)) {
    if (!vars->is_array())
      r.fail("variables: must be an array");
    else
      for (size_t i = 0; i < vars->size(); ++i)
        d.variables.push_back(readVariable(r, (*vars)[i], "variables[" + std::to_string(i) + "]"));
  }
  if (const json* panels = r.get(doc, "panels", "dashboard", false)) {
    if (!panels->is_array())
      r.fail("panels: must be an array");
    else
      for (size_t i = 0; i < panels->size(); ++i)
        d.panels.push_back(readPanel(r, (*panels)[i], "panels[" + std::to_string(i) + "]"));
  }
  if (!r.error.empty()) return Status::corruption(r.error);
  if (auto s = validateDashboard(d); !s) return Status::corruption(s.message());
  return d;
}

namespace {
json filtersJson(const std::vector<TagFilter>& filters) {
  json out = json::array();
  for (const auto& f : filters)
    out.push_back({{"key", f.key}, {"op", filterOpName(f.op)}, {"value", f.value}});
  return out;
}
}  // namespace

std::string serializeDashboard(const Dashboard& d) {
  json doc = json::object();
  doc["format"] = kDashboardFormat;
  doc["version"] = dashboardFileVersion(d);
  doc["title"] = d.title;
  doc["live"] = d.live;
  json range = json::object();
  if (d.range.isCustom()) {
    range["from"] = *d.range.from;
    range["to"] = *d.range.to;
  } else {
    range["last"] = d.range.relative;
  }
  doc["range"] = range;
  if (!d.sources.empty()) {
    json sources = json::array();
    for (const auto& s : d.sources) {
      json headers = json::object();
      for (const auto& h : s.headers) {
        if (storedAsSecret(h))
          headers[h.name] = {{"secret", secretReference(s, h)}};  // never the value
        else
          headers[h.name] = h.value;
      }
      sources.push_back({{"name", s.name},
                         {"type", "prometheus"},
                         {"url", s.url},
                         {"headers", headers},
                         {"min_step", format_duration(s.minStepS)}});
    }
    doc["sources"] = sources;
  }
  if (!d.variables.empty()) {
    json vars = json::array();
    for (const auto& v : d.variables) {
      json jv = json::object();
      jv["name"] = v.name;
      if (!v.source.empty()) jv["source"] = v.source;
      jv["metric"] = v.metric;
      jv["tag"] = v.tag;
      jv["multi"] = v.multi;
      jv["include_all"] = v.includeAll;
      jv["current"] = v.current;
      vars.push_back(std::move(jv));
    }
    doc["variables"] = vars;
  }
  json panels = json::array();
  for (const auto& p : d.panels) {
    json jp = json::object();
    jp["title"] = p.title;
    if (!p.source.empty()) jp["source"] = p.source;
    if (!p.promql.empty()) jp["promql"] = p.promql;
    jp["metric"] = p.metric;
    jp["filters"] = filtersJson(p.filters);
    jp["group_by"] = p.groupBy;
    jp["fn"] = fn_name(p.fn);
    jp["chart"] = chartTypeName(p.chart);
    jp["unit"] = p.unit;
    jp["log_y"] = p.logY;
    if (p.reduce != Reduce::kLast || chartIsReduced(p.chart)) jp["reduce"] = reduce_name(p.reduce);
    if (p.minValue) jp["min"] = *p.minValue;
    if (p.maxValue) jp["max"] = *p.maxValue;
    if (!p.thresholds.empty()) {
      json ths = json::array();
      for (const auto& t : p.thresholds) ths.push_back({{"value", t.value}, {"color", t.color}});
      jp["thresholds"] = ths;
    }
    if (p.alert) jp["alert"] = format_alert_rule(*p.alert);
    if (p.offsetS) jp["offset"] = format_duration(p.offsetS);
    if (!p.queries.empty()) {
      json qs = json::array();
      for (const auto& q : p.queries) {
        json jq = json::object();
        jq["ref"] = q.ref;
        if (!q.promql.empty()) jq["promql"] = q.promql;
        jq["metric"] = q.metric;
        jq["filters"] = filtersJson(q.filters);
        jq["group_by"] = q.groupBy;
        jq["fn"] = fn_name(q.fn);
        if (q.offsetS) jq["offset"] = format_duration(q.offsetS);
        qs.push_back(std::move(jq));
      }
      jp["queries"] = qs;
    }
    if (!p.expression.empty()) jp["expression"] = p.expression;
    if (p.chart == ChartType::Row) jp["collapsed"] = p.collapsed;
    if (p.legend == LegendMode::Table) {
      jp["legend"] = "table";
      jp["legend_rows"] = p.legendRows;
    }
    jp["grid"] = {{"x", p.grid.x}, {"y", p.grid.y}, {"w", p.grid.w}, {"h", p.grid.h}};
    panels.push_back(std::move(jp));
  }
  doc["panels"] = panels;
  return doc.dump(2) + "\n";
}

RowLayout layoutRows(const std::vector<PanelSpec>& panels) {
  RowLayout out;
  out.hidden.assign(panels.size(), false);
  out.displayY.resize(panels.size());
  std::vector<size_t> rows;
  for (size_t i = 0; i < panels.size(); ++i)
    if (panels[i].chart == ChartType::Row) rows.push_back(i);
  std::stable_sort(rows.begin(), rows.end(),
                   [&](size_t a, size_t b) { return panels[a].grid.y < panels[b].grid.y; });
  int bottom = 0;
  for (const auto& p : panels) bottom = std::max(bottom, p.grid.y + p.grid.h);
  // Each collapsed row frees [row.y + 1, next row's y): what lies below moves up by that.
  struct Fold {
    int from, to;
  };
  std::vector<Fold> folds;
  for (size_t k = 0; k < rows.size(); ++k) {
    const PanelSpec& row = panels[rows[k]];
    if (!row.collapsed) continue;
    const int end = k + 1 < rows.size() ? panels[rows[k + 1]].grid.y : bottom;
    if (end > row.grid.y + 1) folds.push_back({row.grid.y + 1, end});
  }
  out.rows = bottom;
  for (const auto& f : folds) out.rows -= f.to - f.from;
  for (size_t i = 0; i < panels.size(); ++i) {
    const int y = panels[i].grid.y;
    int shift = 0;
    for (const auto& f : folds) {
      if (panels[i].chart != ChartType::Row && y >= f.from && y < f.to) out.hidden[i] = true;
      if (y >= f.to) shift += f.to - f.from;
    }
    out.displayY[i] = y - shift;
  }
  return out;
}

GridRect placeNewPanel(const std::vector<PanelSpec>& panels, int w, int h) {
  w = std::clamp(w, 1, kGridColumns);
  auto overlaps = [&](const GridRect& a) {
    for (const auto& p : panels) {
      const auto& b = p.grid;
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) return true;
    }
    return false;
  };
  for (int y = 0; y < 1000; ++y)
    for (int x = 0; x + w <= kGridColumns; ++x) {
      GridRect r{x, y, w, h};
      if (!overlaps(r)) return r;
    }
  return {0, 0, w, h};
}

}  // namespace tally::dash
