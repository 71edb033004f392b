#include "api.h"

#include <nlohmann/json.hpp>

namespace tally::dash {

using nlohmann::json;

std::string Series::label(const std::string& metric) const {
  if (tags.empty()) return metric;
  return tags_to_string(tags);
}

std::string percentEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

namespace {

std::string commonParams(const QueryRequest& r) {
  std::string q = "metric=" + percentEncode(r.metric);
  for (const auto& f : r.filters) q += "&filter=" + percentEncode(f.toString());
  if (r.from || r.to) q += "&from=" + std::to_string(r.from) + "&to=" + std::to_string(r.to);
  return q;
}

template <typename T>
T num(const json& j, const char* key, T def = T()) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return def;
  return it->get<T>();
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

Result<json> parseJson(std::string_view body) {
  try {
    json j = json::parse(body.begin(), body.end());
    if (!j.is_object())
      return Status::corruption("collector answered with JSON that is not an object");
    return j;
  } catch (const json::exception& e) {
    return Status::corruption(std::string("collector answered with invalid JSON: ") + e.what());
  }
}

std::vector<Bin> parseBins(const json& arr) {
  std::vector<Bin> out;
  if (!arr.is_array()) return out;
  out.reserve(arr.size());
  for (const auto& b : arr)
    out.push_back({num<double>(b, "lower"), num<double>(b, "upper"), num<uint64_t>(b, "count")});
  return out;
}

}  // namespace

std::string queryPath(const QueryRequest& r) {
  std::string q = "/api/query?" + commonParams(r);
  if (!r.groupBy.empty()) {
    std::string g;
    for (size_t i = 0; i < r.groupBy.size(); ++i) g += (i ? "," : "") + r.groupBy[i];
    q += "&group_by=" + percentEncode(g);
  }
  q += "&step=" + (r.step > 0 ? std::to_string(r.step) : std::string("auto"));
  q += "&fn=" + percentEncode(fn_name(r.fn));
  return q;
}

std::string histogramPath(const QueryRequest& r) {
  std::string q = "/api/histogram?" + commonParams(r);
  if (r.histogramBuckets > 0) q += "&buckets=" + std::to_string(r.histogramBuckets);
  return q;
}

std::string heatmapPath(const QueryRequest& r) {
  std::string q = "/api/heatmap?" + commonParams(r);
  q += "&step=" + (r.step > 0 ? std::to_string(r.step) : std::string("auto"));
  return q;
}

std::string tagsPath(std::string_view metric) {
  return "/api/tags?metric=" + percentEncode(metric);
}

std::string annotationsPath(int64_t from, int64_t to, int limit) {
  return "/api/annotations?from=" + std::to_string(from) + "&to=" + std::to_string(to) +
         "&limit=" + std::to_string(limit);
}

std::string metricsPath(std::string_view search) {
  return search.empty() ? std::string("/api/metrics")
                        : "/api/metrics?search=" + percentEncode(search);
}

namespace {

// The shape the collector writes (docs/API.md), read without building a JSON document: a
// 300-series answer holds hundreds of thousands of points, and the document costs a node and an
// allocation for each number and array (most of a zoom's time, bench_dashboard). Anything else
// (a tag value that is not a string, a point that is not [integer, number or null], a series that
// is not an object, invalid JSON) makes it give up, and the document reader decides, so every
// answer reads the same as before.
class QueryReader : public nlohmann::json_sax<json> {
 public:
  QueryResult result;
  bool sawSeries = false;

  bool null() override { return scalar(Value::Null, 0, 0); }
  bool boolean(bool) override { return scalar(Value::Other, 0, 0); }
  bool number_integer(number_integer_t v) override { return scalar(Value::Int, v, double(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    if (v > uint64_t(std::numeric_limits<int64_t>::max())) return false;
    return scalar(Value::Int, int64_t(v), double(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    return scalar(Value::Float, 0, v);
  }
  bool string(string_t& v) override {
    switch (top()) {
      case Ctx::Top:
        if (m_key == "metric") result.metric = std::move(v);
        if (m_key == "kind") result.kind = parse_kind(v);
        if (m_key == "fn") result.fn = parse_fn(v);
        return true;
      case Ctx::Tags:
        result.series.back().tags.push_back({std::move(m_key), std::move(v)});
        return true;
      case Ctx::Series:
      case Ctx::Skip:
        return true;
      default:
        return false;
    }
  }
  bool binary(binary_t&) override { return false; }
  bool key(string_t& k) override {
    m_key = std::move(k);
    return true;
  }
  bool start_object(std::size_t) override {
    switch (top()) {
      case Ctx::Root:
        return push(Ctx::Top);
      case Ctx::SeriesList:
        result.series.emplace_back();
        return push(Ctx::Series);
      case Ctx::Series:
        return push(m_key == "tags" ? Ctx::Tags : m_key == "points" ? Ctx::Bad : Ctx::Skip);
      case Ctx::Top:
        return push(m_key == "series" ? Ctx::Bad : Ctx::Skip);
      case Ctx::Skip:
        return push(Ctx::Skip);
      default:
        return false;
    }
  }
  bool end_object() override {
    if (top() == Ctx::Series) canonicalize(result.series.back().tags);
    m_stack.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    switch (top()) {
      case Ctx::Top:
        if (m_key != "series") return push(Ctx::Skip);
        sawSeries = true;
        return push(Ctx::SeriesList);
      case Ctx::Series:
        return push(m_key == "points" ? Ctx::Points : m_key == "tags" ? Ctx::Bad : Ctx::Skip);
      case Ctx::Points:
        m_index = 0;
        return push(Ctx::Point);
      case Ctx::Skip:
        return push(Ctx::Skip);
      default:
        return false;
    }
  }
  bool end_array() override {
    if (top() == Ctx::Point) {
      if (m_index != 2) return false;
      result.series.back().points.push_back(m_point);
    }
    m_stack.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  enum class Ctx { Root, Top, SeriesList, Series, Tags, Points, Point, Skip, Bad };
  enum class Value { Null, Int, Float, Other };

  Ctx top() const { return m_stack.empty() ? Ctx::Root : m_stack.back(); }
  bool push(Ctx c) {
    if (c == Ctx::Bad) return false;
    m_stack.push_back(c);
    return true;
  }
  bool scalar(Value kind, int64_t i, double d) {
    switch (top()) {
      case Ctx::Top:
        if (kind != Value::Int && kind != Value::Float) return true;
        if (m_key == "from" || m_key == "to" || m_key == "step" || m_key == "resolution") {
          if (kind == Value::Float) return false;  // the document reader truncates it
          (m_key == "from"   ? result.from
           : m_key == "to"   ? result.to
           : m_key == "step" ? result.step
                             : result.resolution) = i;
        }
        return true;
      case Ctx::Series:
        if (m_key == "partial_from") {
          if (kind != Value::Int) return false;
          result.series.back().partialFrom = i;
        } else if (m_key == "tags" || m_key == "points") {
          return false;
        }
        return true;
      case Ctx::Point:
        if (m_index == 0) {
          if (kind != Value::Int) return false;
          m_point.t = i;
        } else if (m_index == 1) {
          if (kind == Value::Other) return false;
          m_point.v = kind == Value::Null ? std::numeric_limits<double>::quiet_NaN() : d;
        } else {
          return false;
        }
        ++m_index;
        return true;
      case Ctx::Skip:
        return true;
      default:
        return false;  // a scalar answer, a series that is not an object, a tag that is no string
    }
  }

  std::vector<Ctx> m_stack;
  std::string m_key;
  Point m_point{0, 0};
  int m_index = 0;
};

// Any answer, through a JSON document.
Result<QueryResult> parseQueryDocument(std::string_view body) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  const json& j = *doc;
  QueryResult r;
  r.metric = str(j, "metric");
  r.kind = parse_kind(str(j, "kind"));
  r.fn = parse_fn(str(j, "fn"));
  r.from = num<int64_t>(j, "from");
  r.to = num<int64_t>(j, "to");
  r.step = num<int64_t>(j, "step");
  r.resolution = num<int64_t>(j, "resolution");
  auto series = j.find("series");
  if (series == j.end() || !series->is_array())
    return Status::corruption("query answer has no \"series\" array");
  for (const auto& s : *series) {
    Series out;
    if (auto tags = s.find("tags"); tags != s.end() && tags->is_object())
      for (auto it = tags->begin(); it != tags->end(); ++it)
        out.tags.push_back({it.key(), it->is_string() ? it->get<std::string>() : it->dump()});
    canonicalize(out.tags);
    if (auto pts = s.find("points"); pts != s.end() && pts->is_array()) {
      out.points.reserve(pts->size());
      for (const auto& p : *pts) {
        if (!p.is_array() || p.size() < 2 || !p[0].is_number()) continue;
        double v = p[1].is_number() ? p[1].get<double>() : std::numeric_limits<double>::quiet_NaN();
        out.points.push_back({p[0].get<int64_t>(), v});
      }
    }
    if (auto pf = s.find("partial_from"); pf != s.end() && pf->is_number())
      out.partialFrom = pf->get<int64_t>();
    r.series.push_back(std::move(out));
  }
  return r;
}

}  // namespace

Result<QueryResult> parseQuery(std::string_view body) {
  QueryReader reader;
  bool read = false;
  try {
    read = json::sax_parse(body.begin(), body.end(), &reader) && reader.sawSeries;
  } catch (const json::exception&) {
    read = false;  // the document reader below reports it
  }
  if (read) return std::move(reader.result);
  return parseQueryDocument(body);
}

Result<HistogramResult> parseHistogram(std::string_view body) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  const json& j = *doc;
  HistogramResult h;
  h.metric = str(j, "metric");
  h.count = num<uint64_t>(j, "count");
  h.sum = num<double>(j, "sum");
  h.min = num<double>(j, "min");
  h.max = num<double>(j, "max");
  h.p50 = num<double>(j, "p50");
  h.p90 = num<double>(j, "p90");
  h.p99 = num<double>(j, "p99");
  if (auto b = j.find("buckets"); b != j.end()) h.buckets = parseBins(*b);
  return h;
}

Result<std::vector<Annotation>> parseAnnotations(std::string_view body) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  const json& j = *doc;
  auto list = j.find("annotations");
  if (list == j.end() || !list->is_array())
    return Status::corruption("annotations answer has no \"annotations\" array");
  std::vector<Annotation> out;
  for (const auto& a : *list) {
    if (!a.is_object()) return Status::corruption("an annotation is not an object");
    Annotation an;
    an.id = num<int64_t>(a, "id");
    an.time = num<double>(a, "time");
    if (auto e = a.find("end"); e != a.end() && e->is_number()) an.end = e->get<double>();
    an.title = str(a, "title");
    an.text = str(a, "text");
    an.source = str(a, "source");
    if (auto t = a.find("tags"); t != a.end() && t->is_object())
      for (const auto& [k, v] : t->items())
        if (v.is_string()) an.tags.push_back({k, v.get<std::string>()});
    out.push_back(std::move(an));
  }
  return out;
}

std::string annotationBody(const Annotation& a) {
  json j = {{"time", a.time}, {"title", a.title}};
  if (a.end) j["end"] = *a.end;
  if (!a.text.empty()) j["text"] = a.text;
  if (!a.tags.empty()) {
    json tags = json::object();
    for (const auto& [k, v] : a.tags) tags[k] = v;
    j["tags"] = std::move(tags);
  }
  return j.dump();
}

// The integer field `name` of a JSON object answer.
static Result<int64_t> intField(std::string_view body, const char* name) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  auto v = doc->find(name);
  if (v == doc->end() || !v->is_number_integer())
    return Status::corruption(std::string("answer has no integer \"") + name + "\"");
  return v->get<int64_t>();
}

Result<int64_t> parseAnnotationId(std::string_view body) {
  return intField(body, "id");
}
Result<int64_t> parseDeletedCount(std::string_view body) {
  return intField(body, "deleted");
}

Result<HeatmapResult> parseHeatmap(std::string_view body) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  const json& j = *doc;
  HeatmapResult h;
  h.metric = str(j, "metric");
  h.step = num<int64_t>(j, "step");
  h.from = num<int64_t>(j, "from");
  h.to = num<int64_t>(j, "to");
  auto cols = j.find("columns");
  if (cols == j.end() || !cols->is_array())
    return Status::corruption("heatmap answer has no \"columns\" array");
  for (const auto& c : *cols) {
    HeatmapColumn col;
    col.time = num<int64_t>(c, "time");
    col.count = num<uint64_t>(c, "count");
    col.p50 = num<double>(c, "p50");
    col.p90 = num<double>(c, "p90");
    col.p99 = num<double>(c, "p99");
    if (auto b = c.find("buckets"); b != c.end()) col.buckets = parseBins(*b);
    h.columns.push_back(std::move(col));
  }
  return h;
}

Result<std::vector<MetricInfo>> parseMetrics(std::string_view body) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  auto m = doc->find("metrics");
  if (m == doc->end() || !m->is_array())
    return Status::corruption("metrics answer has no \"metrics\" array");
  std::vector<MetricInfo> out;
  for (const auto& e : *m)
    out.push_back({str(e, "name"), parse_kind(str(e, "kind")), num<int64_t>(e, "series")});
  return out;
}

std::string cardinalityPath(int top) {
  return "/api/cardinality?limit=" + std::to_string(top);
}

Result<Cardinality> parseCardinality(std::string_view body) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  auto m = doc->find("top_metrics");
  if (m == doc->end() || !m->is_array())
    return Status::corruption("cardinality answer has no \"top_metrics\" array");
  Cardinality c;
  c.series = num<int64_t>(*doc, "series");
  c.metrics = num<int64_t>(*doc, "metrics");
  c.overflowTotal = num<int64_t>(*doc, "overflow_total");
  if (auto l = doc->find("limits"); l != doc->end() && l->is_object()) {
    c.maxPerMetric = num<int64_t>(*l, "series_max_per_metric");
    c.maxTotal = num<int64_t>(*l, "series_max_total");
    c.maxNewPerMinute = num<int64_t>(*l, "series_max_new_per_minute");
  }
  for (const auto& e : *m)
    c.topMetrics.push_back({str(e, "name"), parse_kind(str(e, "kind")), num<int64_t>(e, "series"),
                            num<int64_t>(e, "overflow")});
  if (auto k = doc->find("top_tag_keys"); k != doc->end() && k->is_array())
    for (const auto& e : *k)
      c.topTagKeys.push_back({str(e, "key"), num<int64_t>(e, "values"), num<int64_t>(e, "series")});
  if (auto p = doc->find("created_per_minute"); p != doc->end() && p->is_array())
    for (const auto& e : *p)
      c.createdPerMinute.emplace_back(num<int64_t>(e, "time"), num<int64_t>(e, "created"));
  return c;
}

Result<TagValues> parseTags(std::string_view body) {
  auto doc = parseJson(body);
  if (!doc) return doc.status();
  auto t = doc->find("tags");
  if (t == doc->end() || !t->is_object())
    return Status::corruption("tags answer has no \"tags\" object");
  TagValues out;
  for (auto it = t->begin(); it != t->end(); ++it) {
    auto& vals = out[it.key()];
    if (it->is_array())
      for (const auto& v : *it)
        if (v.is_string()) vals.push_back(v.get<std::string>());
  }
  return out;
}

Health parseHealth(int httpStatus, std::string_view body) {
  Health h;
  auto doc = parseJson(body);
  if (doc) {
    h.status = str(*doc, "status");
    h.reason = str(*doc, "reason");
    h.uptimeS = num<int64_t>(*doc, "uptime_s");
    h.series = num<int64_t>(*doc, "series");
  }
  h.ok = httpStatus == 200 && (h.status.empty() || h.status == "ok");
  if (!h.ok && h.reason.empty()) h.reason = errorMessage(httpStatus, body);
  return h;
}

std::string errorMessage(int httpStatus, std::string_view body) {
  if (auto doc = parseJson(body)) {
    std::string e = str(*doc, "error");
    if (e.empty()) e = str(*doc, "reason");
    if (!e.empty()) return e;
  }
  if (httpStatus == 0) return "no answer from the collector";
  return "HTTP " + std::to_string(httpStatus);
}

}  // namespace tally::dash
