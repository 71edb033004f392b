#include "dashboard.h"

#include <algorithm>
#include <regex>

#include <nlohmann/json.hpp>

#include "tally/common/time_bucket.h"

namespace tally::dash {

using nlohmann::json;

const char* chartTypeName(ChartType type) {
  switch (type) {
    case ChartType::Line: return "line";
    case ChartType::StackedArea: return "stacked";
    case ChartType::Bars: return "bars";
    case ChartType::Histogram: return "histogram";
    case ChartType::Heatmap: return "heatmap";
  }
  return "line";
}

std::optional<ChartType> parseChartType(std::string_view name) {
  for (auto t : {ChartType::Line, ChartType::StackedArea, ChartType::Bars, ChartType::Histogram, ChartType::Heatmap})
    if (name == chartTypeName(t)) return t;
  return std::nullopt;
}

bool chartNeedsDistribution(ChartType type) {
  return type == ChartType::Histogram || type == ChartType::Heatmap;
}

const char* filterOpName(FilterOp op) {
  switch (op) {
    case FilterOp::Eq: return "=";
    case FilterOp::NotEq: return "!=";
    case FilterOp::Regex: return "=~";
  }
  return "=";
}

std::optional<FilterOp> parseFilterOp(std::string_view op) {
  if (op == "=") return FilterOp::Eq;
  if (op == "!=") return FilterOp::NotEq;
  if (op == "=~") return FilterOp::Regex;
  return std::nullopt;
}

std::string TagFilter::toString() const { return key + filterOpName(op) + value; }

bool TagFilter::matches(const Tags& tags) const {
  const std::string* found = nullptr;
  for (const auto& t : tags)
    if (t.key == key) found = &t.value;
  switch (op) {
    case FilterOp::Eq: return found && *found == value;
    case FilterOp::NotEq: return !found || *found != value;
    case FilterOp::Regex:
      try {
        return std::regex_match(found ? *found : std::string(), std::regex(value, std::regex::ECMAScript));
      } catch (const std::regex_error&) {
        return false;
      }
  }
  return false;
}

const std::vector<std::string>& queryFunctions() {
  static const std::vector<std::string> fns = {"sum", "rate", "avg", "min", "max", "count", "p50", "p90", "p99"};
  return fns;
}

bool isQueryFunction(std::string_view fn) {
  const auto& fns = queryFunctions();
  return std::find(fns.begin(), fns.end(), fn) != fns.end();
}

std::string PanelSpec::displayTitle() const {
  if (!title.empty()) return title;
  if (metric.empty()) return "New panel";
  std::string t = chartNeedsDistribution(chart) ? metric : fn + "(" + metric + ")";
  if (!groupBy.empty()) {
    t += " by ";
    for (size_t i = 0; i < groupBy.size(); ++i) t += (i ? "," : "") + groupBy[i];
  }
  return t;
}

Status validatePanel(const PanelSpec& p, const std::string& where) {
  if (!p.metric.empty()) {
    if (auto s = validate_metric_name(p.metric); !s) return Status::invalid_argument(where + ".metric: " + s.message());
  }
  if (!isQueryFunction(p.fn)) return Status::invalid_argument(where + ".fn: unknown function '" + p.fn + "'");
  for (size_t i = 0; i < p.filters.size(); ++i) {
    const auto& f = p.filters[i];
    std::string w = where + ".filters[" + std::to_string(i) + "]";
    if (auto s = validate_tag_key(f.key); !s) return Status::invalid_argument(w + ".key: " + s.message());
    if (f.op == FilterOp::Regex) {
      try {
        std::regex re(f.value, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return Status::invalid_argument(w + ".value: bad regular expression '" + f.value + "'");
      }
    }
  }
  for (size_t i = 0; i < p.groupBy.size(); ++i)
    if (auto s = validate_tag_key(p.groupBy[i]); !s)
      return Status::invalid_argument(where + ".group_by[" + std::to_string(i) + "]: " + s.message());
  const auto& g = p.grid;
  if (g.x < 0 || g.w < 1 || g.x + g.w > kGridColumns)
    return Status::invalid_argument(where + ".grid: x and w must fit in " + std::to_string(kGridColumns) + " columns");
  if (g.y < 0 || g.h < 1 || g.h > 100) return Status::invalid_argument(where + ".grid: y must be >= 0 and h in 1..100");
  return Status::ok();
}

Status validateDashboard(const Dashboard& d) {
  if (d.range.isCustom()) {
    if (*d.range.to <= *d.range.from) return Status::invalid_argument("range: 'to' must be after 'from'");
  } else if (auto r = parse_duration(d.range.relative); !r) {
    return Status::invalid_argument("range.last: " + r.status().message());
  }
  for (size_t i = 0; i < d.panels.size(); ++i)
    if (auto s = validatePanel(d.panels[i], "panels[" + std::to_string(i) + "]"); !s) return s;
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
  int64_t integer(const json& obj, const char* key, const std::string& where, int64_t def, bool required = false) {
    const json* v = get(obj, key, where, required);
    if (!v) return def;
    if (!v->is_number_integer()) {
      fail(where + "." + key + ": must be a whole number");
      return def;
    }
    return v->get<int64_t>();
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

PanelSpec readPanel(Reader& r, const json& p, const std::string& where) {
  PanelSpec out;
  if (!p.is_object()) {
    r.fail(where + ": must be an object");
    return out;
  }
  out.title = r.str(p, "title", where);
  out.metric = r.str(p, "metric", where);
  out.fn = r.str(p, "fn", where, false, "sum");
  std::string chart = r.str(p, "chart", where, false, "line");
  if (auto t = parseChartType(chart)) out.chart = *t;
  else r.fail(where + ".chart: unknown chart type '" + chart + "' (line, stacked, bars, histogram, heatmap)");
  out.unit = r.str(p, "unit", where);
  out.logY = r.boolean(p, "log_y", where, false);
  if (const json* f = r.get(p, "filters", where, false)) {
    if (!f->is_array()) r.fail(where + ".filters: must be an array");
    else
      for (size_t i = 0; i < f->size(); ++i) {
        std::string w = where + ".filters[" + std::to_string(i) + "]";
        const json& item = (*f)[i];
        if (!item.is_object()) {
          r.fail(w + ": must be an object {key, op, value}");
          continue;
        }
        TagFilter tf;
        tf.key = r.str(item, "key", w, true);
        std::string op = r.str(item, "op", w, false, "=");
        if (auto o = parseFilterOp(op)) tf.op = *o;
        else r.fail(w + ".op: unknown operator '" + op + "' (=, !=, =~)");
        tf.value = r.str(item, "value", w, true);
        out.filters.push_back(std::move(tf));
      }
  }
  if (const json* g = r.get(p, "group_by", where, false)) {
    if (!g->is_array()) r.fail(where + ".group_by: must be an array of tag keys");
    else
      for (const auto& k : *g) {
        if (!k.is_string()) r.fail(where + ".group_by: must be an array of tag keys");
        else out.groupBy.push_back(k.get<std::string>());
      }
  }
  if (const json* g = r.get(p, "grid", where, false)) {
    if (!g->is_object()) r.fail(where + ".grid: must be an object {x, y, w, h}");
    else {
      out.grid.x = static_cast<int>(r.integer(*g, "x", where + ".grid", 0));
      out.grid.y = static_cast<int>(r.integer(*g, "y", where + ".grid", 0));
      out.grid.w = static_cast<int>(r.integer(*g, "w", where + ".grid", 6));
      out.grid.h = static_cast<int>(r.integer(*g, "h", where + ".grid", 4));
    }
  }
  return out;
}

}  // namespace

Result<Dashboard> parseDashboard(std::string_view text) {
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // nlohmann's message carries the line and column.
    std::string what = e.what();
    auto pos = what.find("parse error");
    return Status::corruption("not valid JSON: " + (pos == std::string::npos ? what : what.substr(pos)));
  }
  if (!doc.is_object()) return Status::corruption("not a Tally dashboard: the top level must be a JSON object");
  auto fmt = doc.find("format");
  if (fmt == doc.end() || !fmt->is_string() || fmt->get<std::string>() != kDashboardFormat)
    return Status::corruption("not a Tally dashboard: \"format\" must be \"tally-dashboard\"");
  auto ver = doc.find("version");
  if (ver == doc.end() || !ver->is_number_integer() || ver->get<int64_t>() < 1)
    return Status::corruption("\"version\" is missing or not a positive whole number");
  int64_t version = ver->get<int64_t>();
  if (version > kDashboardVersion)
    return Status::invalid_argument("written by a newer Tally: dashboard version " + std::to_string(version) +
                                    ", this build reads up to version " + std::to_string(kDashboardVersion));
  Reader r;
  Dashboard d;
  d.title = r.str(doc, "title", "dashboard", false, "Untitled");
  d.live = r.boolean(doc, "live", "dashboard", true);
  if (const json* range = r.get(doc, "range", "dashboard", false)) {
    if (!range->is_object()) r.fail("range: must be an object {\"last\": \"1h\"} or {\"from\": t, \"to\": t}");
    else if (range->contains("from") || range->contains("to")) {
      d.range.from = r.integer(*range, "from", "range", 0, true);
      d.range.to = r.integer(*range, "to", "range", 0, true);
      d.range.relative = r.str(*range, "last", "range", false, "1h");
    } else {
      d.range.relative = r.str(*range, "last", "range", false, "1h");
    }
  }
  if (const json* panels = r.get(doc, "panels", "dashboard", false)) {
    if (!panels->is_array()) r.fail("panels: must be an array");
    else
      for (size_t i = 0; i < panels->size(); ++i)
        d.panels.push_back(readPanel(r, (*panels)[i], "panels[" + std::to_string(i) + "]"));
  }
  if (!r.error.empty()) return Status::corruption(r.error);
  if (auto s = validateDashboard(d); !s) return Status::corruption(s.message());
  return d;
}

std::string serializeDashboard(const Dashboard& d) {
  json doc = json::object();
  doc["format"] = kDashboardFormat;
  doc["version"] = kDashboardVersion;
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
  json panels = json::array();
  for (const auto& p : d.panels) {
    json jp = json::object();
    jp["title"] = p.title;
    jp["metric"] = p.metric;
    json filters = json::array();
    for (const auto& f : p.filters) filters.push_back({{"key", f.key}, {"op", filterOpName(f.op)}, {"value", f.value}});
    jp["filters"] = filters;
    jp["group_by"] = p.groupBy;
    jp["fn"] = p.fn;
    jp["chart"] = chartTypeName(p.chart);
    jp["unit"] = p.unit;
    jp["log_y"] = p.logY;
    jp["grid"] = {{"x", p.grid.x}, {"y", p.grid.y}, {"w", p.grid.w}, {"h", p.grid.h}};
    panels.push_back(std::move(jp));
  }
  doc["panels"] = panels;
  return doc.dump(2) + "\n";
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
