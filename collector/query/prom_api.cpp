#include "query/prom_api.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "query/http_server.h"
#include "query/prom_error.h"
#include "query/prom_names.h"
#include "query/prom_time.h"
#include "query/promql.h"
#include "query/promql_eval.h"

#ifndef TALLY_VERSION
#define TALLY_VERSION "unknown"
#endif

namespace tally::collector {
namespace {

using json = nlohmann::ordered_json;
using promql::Node;
using namespace prom;

constexpr int64_t kMaxPoints = 11000;  // Prometheus's limit of points per series

json prom_time(int64_t ms) {
  if (ms % 1000 == 0) return ms / 1000;
  return static_cast<double>(ms) / 1000.0;
}

std::optional<PromError> time_param(const httplib::Request& req, const char* name,
                                    std::optional<int64_t> dflt, int64_t* out) {
  if (!req.has_param(name) && dflt) {
    *out = *dflt;
    return std::nullopt;
  }
  std::string v = req.get_param_value(name);
  auto t = parse_time_ms(v);
  if (!t)
    return bad_data("invalid parameter \"" + std::string(name) + "\": cannot parse \"" + v +
                    "\" to a valid timestamp");
  *out = *t;
  return std::nullopt;
}

json labels_json(const Labels& l) {
  json o = json::object();
  for (const auto& [k, v] : l) o[k] = v;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Handlers

class PromApi {
 public:
  PromApi(const QueryEngine& engine, const SeriesCatalog& catalog, const Clock& clock,
          SelfMetrics& metrics, const promql::Limits& limits)
      : engine_(engine), catalog_(catalog), clock_(clock), metrics_(metrics), limits_(limits) {}

  using Handler = MaybeError (PromApi::*)(const httplib::Request&, json* data);

  // Runs a handler, answers in Prometheus's envelope, counts it and logs rejections (at most one
  // line a second, with how many were not logged).
  void serve(Handler h, const httplib::Request& req, httplib::Response& res) {
    auto t0 = std::chrono::steady_clock::now();
    json data;
    MaybeError err;
    // A request's boundary: anything thrown becomes an "internal" answer, logged.
    try {
      err = (this->*h)(req, &data);
    } catch (const std::exception& e) {
      err = PromError{500, "internal", e.what()};
    }
    metrics_.queries.fetch_add(1, std::memory_order_relaxed);
    if (err) {
      res.status = err->http;
      res.set_content(
          json{{"status", "error"}, {"errorType", err->type}, {"error", err->message}}.dump(),
          "application/json");
      if (err->http == 400 || err->http == 422)
        metrics_.queries_rejected.fetch_add(1, std::memory_order_relaxed);
      log_rejection(req, *err);
    } else {
      res.status = 200;
      res.set_content(json{{"status", "success"}, {"data", std::move(data)}}.dump(),
                      "application/json");
    }
    metrics_.query_latency.record_us(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count()));
  }

  MaybeError query(const httplib::Request& req, json* data) {
    int64_t t = 0;
    if (auto e = time_param(req, "time", clock_.now_ms(), &t)) return e;
    return run(req.get_param_value("query"), {t}, 0, data);
  }

  MaybeError query_range(const httplib::Request& req, json* data) {
    int64_t start = 0, end = 0;
    if (auto e = time_param(req, "start", std::nullopt, &start)) return e;
    if (auto e = time_param(req, "end", std::nullopt, &end)) return e;
    if (end < start)
      return bad_data("invalid parameter \"end\": end timestamp must not be before start time");
    const std::string step_text = req.get_param_value("step");
    auto step = parse_step_ms(step_text);
    if (!step)
      return bad_data("invalid parameter \"step\": cannot parse \"" + step_text +
                      "\" to a valid duration");
    if (*step <= 0)
      return bad_data(
          "invalid parameter \"step\": zero or negative query resolution step widths are not "
          "accepted. Try a positive integer");
    if ((end - start) / *step > kMaxPoints)
      return bad_data(
          "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
          "resolution (?step=XX)");
    std::vector<int64_t> times;
    for (int64_t t = start; t <= end; t += *step) times.push_back(t);
    return run(req.get_param_value("query"), std::move(times), *step, data);
  }

  MaybeError series(const httplib::Request& req, json* data) {
    if (req.get_param_value_count("match[]") == 0) return bad_data("no match[] parameter provided");
    if (auto e = check_range(req)) return e;
    std::set<Labels> all;
    if (auto e = matched_series(req, &all)) return e;
    *data = json::array();
    for (const auto& l : all) data->push_back(labels_json(l));
    return std::nullopt;
  }

  MaybeError labels(const httplib::Request& req, json* data) {
    if (auto e = check_range(req)) return e;
    std::set<Labels> all;
    if (auto e = matched_series(req, &all)) return e;
    std::set<std::string> names;
    for (const auto& l : all)
      for (const auto& [k, v] : l) names.insert(k);
    *data = json(std::vector<std::string>(names.begin(), names.end()));
    return std::nullopt;
  }

  MaybeError label_values(const httplib::Request& req, json* data) {
    const std::string name = req.matches.size() > 1 ? std::string(req.matches[1]) : "";
    if (!valid_label_name(name)) return bad_data("invalid label name: \"" + name + "\"");
    if (auto e = check_range(req)) return e;
    std::set<Labels> all;
    if (auto e = matched_series(req, &all)) return e;
    std::set<std::string> values;
    for (const auto& l : all)
      if (auto it = l.find(name); it != l.end()) values.insert(it->second);
    *data = json(std::vector<std::string>(values.begin(), values.end()));
    return std::nullopt;
  }

  MaybeError metadata(const httplib::Request& req, json* data) {
    const std::string only = req.get_param_value("metric");
    int64_t limit = -1;
    if (req.has_param("limit")) {
      const std::string l = req.get_param_value("limit");
      auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), limit);
      if (ec != std::errc() || p != l.data() + l.size())
        return bad_data("invalid parameter \"limit\": \"" + l + "\" is not a number");
    }
    *data = json::object();
    NameTable names(catalog_);
    for (const auto& [name, e] : names.all()) {
      if (e.variant != Variant::kValue || (!only.empty() && only != name)) continue;
      if (limit >= 0 && static_cast<int64_t>(data->size()) >= limit) break;
      const char* type = e.kind == Kind::kCounter ? "counter"
                         : e.kind == Kind::kGauge ? "gauge"
                                                  : "summary";
      (*data)[name] =
          json::array({{{"type", type},
                        {"help", std::string("Tally ") + kind_name(e.kind) + " " + e.metric},
                        {"unit", ""}}});
    }
    return std::nullopt;
  }

  // Tally keeps no exemplars; Grafana asks when "Exemplars" is on and gets an empty list.
  MaybeError exemplars(const httplib::Request& req, json* data) {
    if (req.has_param("query")) {
      auto expr = promql::parse(req.get_param_value("query"), limits_);
      if (!expr) return bad_data("invalid parameter \"query\": " + expr.status().message());
    }
    if (auto e = check_range(req)) return e;
    *data = json::array();
    return std::nullopt;
  }

  MaybeError buildinfo(const httplib::Request&, json* data) {
    *data = {{"version", TALLY_VERSION}, {"revision", ""},  {"branch", ""},
             {"buildUser", ""},          {"buildDate", ""}, {"goVersion", ""}};
    return std::nullopt;
  }

 private:
  MaybeError run(const std::string& query, std::vector<int64_t> times, int64_t step_ms,
                 json* data) {
    const Deadline deadline = engine_.deadline();  // query_timeout, from the start
    auto expr = promql::parse(query, limits_);
    if (!expr) return bad_data("invalid parameter \"query\": " + expr.status().message());
    promql::ValueType type = promql::ValueType::kScalar;
    if (auto p = promql::check(*expr->root, &type)) {
      if (p->kind == promql::Problem::Kind::kUnsupported) return unsupported(p->message);
      return bad_data("invalid parameter \"query\": " + p->message);
    }
    const bool range = step_ms > 0;
    if (type == promql::ValueType::kMatrix || type == promql::ValueType::kString) {
      if (range)
        return bad_data(std::string("invalid expression type \"") + promql::value_type_name(type) +
                        "\" for range query, must be Scalar or instant Vector");
      if (type == promql::ValueType::kString)
        return unsupported("a string as the query's result is not supported");
      return unsupported(
          "a range vector as the query's result (raw samples) is not supported; wrap it in rate() "
          "or increase()");
    }
    Value v;
    if (auto e = evaluate({engine_, catalog_, clock_, times, step_ms, deadline}, *expr->root, &v))
      return e;
    if (deadline.passed()) return from_status(engine_.deadline_passed());

    if (v.scalar) {
      if (!range) {
        *data = {{"resultType", "scalar"},
                 {"result", json::array({prom_time(times[0]), prom_float(v.s[0])})}};
        return std::nullopt;
      }
      Series s{{}, {}};
      for (double x : v.s) s.v.emplace_back(x);
      v.vec = {std::move(s)};
    }
    if (!v.ordered)
      std::sort(v.vec.begin(), v.vec.end(),
                [](const Series& a, const Series& b) { return a.labels < b.labels; });
    json result = json::array();
    for (const auto& s : v.vec) {
      if (!range) {
        if (s.v[0])
          result.push_back({{"metric", labels_json(s.labels)},
                            {"value", {prom_time(times[0]), prom_float(*s.v[0])}}});
        continue;
      }
      json values = json::array();
      for (size_t i = 0; i < s.v.size(); ++i)
        if (s.v[i]) values.push_back({prom_time(times[i]), prom_float(*s.v[i])});
      if (!values.empty())
        result.push_back({{"metric", labels_json(s.labels)}, {"values", std::move(values)}});
    }
    *data = {{"resultType", range ? "matrix" : "vector"}, {"result", std::move(result)}};
    return std::nullopt;
  }

  // start and end must be valid times; matched_series() narrows by them.
  static MaybeError check_range(const httplib::Request& req) {
    int64_t t = 0;
    for (const char* p : {"start", "end"})
      if (req.has_param(p))
        if (auto e = time_param(req, p, std::nullopt, &t)) return e;
    return std::nullopt;
  }

  // The series every match[] selects (all series when there is none), narrowed to those with data
  // in [start, end] when either is given (prom_names.h, TimeNarrowing).
  MaybeError matched_series(const httplib::Request& req, std::set<Labels>* out) const {
    NameTable names(catalog_);
    TimeNarrowing narrowing;
    TimeNarrowing* narrow = nullptr;
    if (req.has_param("start") || req.has_param("end")) {
      int64_t start_ms = 0, end_ms = 0;
      constexpr int64_t kFar = int64_t{1} << 50;
      if (auto e = time_param(req, "start", -kFar, &start_ms)) return e;
      if (auto e = time_param(req, "end", kFar, &end_ms)) return e;
      narrowing.engine = &engine_;
      narrowing.from_s = start_ms >= 0 ? start_ms / 1000 : -((-start_ms + 999) / 1000);
      narrowing.to_s = end_ms >= 0 ? (end_ms + 999) / 1000 : -(-end_ms / 1000);
      narrow = &narrowing;
    }
    const size_t n = req.get_param_value_count("match[]");
    if (n == 0) {
      Node all;
      all.type = Node::Type::kSelector;
      return series_of(engine_, names, all, out, narrow);
    }
    for (size_t i = 0; i < n; ++i) {
      const std::string text = req.get_param_value("match[]", i);
      auto sel = promql::parse_selector(text);
      if (!sel) return bad_data("invalid parameter \"match[]\": " + sel.status().message());
      if (auto e = series_of(engine_, names, *sel->root, out, narrow)) return e;
    }
    return std::nullopt;
  }

  void log_rejection(const httplib::Request& req, const PromError& err) {
    const int64_t now = clock_.now_ms();
    int64_t last = last_log_ms_.load(std::memory_order_relaxed);
    if (now - last < 1000 || !last_log_ms_.compare_exchange_strong(last, now)) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    spdlog::info(
        "event=prom_query_rejected path={} status={} error_type={} error=\"{}\" suppressed={}",
        req.path, err.http, err.type, err.message, suppressed_.exchange(0));
  }

  const QueryEngine& engine_;
  const SeriesCatalog& catalog_;
  const Clock& clock_;
  SelfMetrics& metrics_;
  const promql::Limits limits_;
  std::atomic<int64_t> last_log_ms_{0};
  std::atomic<uint64_t> suppressed_{0};
};

}  // namespace

void register_prom_routes(httplib::Server& server, const QueryEngine& engine,
                          const SeriesCatalog& catalog, const Clock& clock, SelfMetrics& metrics,
                          const promql::Limits& limits) {
  auto api = std::make_shared<PromApi>(engine, catalog, clock, metrics, limits);
  auto route = [&](const char* path, PromApi::Handler h) {
    auto fn = [api, h](const httplib::Request& req, httplib::Response& res) {
      http_request_body_read();  // a POSTed query has arrived: it is handled without a deadline
      api->serve(h, req, res);
    };
    server.Get(path, fn);
    server.Post(path, fn);
  };
  route("/api/v1/query", &PromApi::query);
  route("/api/v1/query_range", &PromApi::query_range);
  route("/api/v1/series", &PromApi::series);
  route("/api/v1/labels", &PromApi::labels);
  route(R"(/api/v1/label/([^/]+)/values)", &PromApi::label_values);
  route("/api/v1/metadata", &PromApi::metadata);
  route("/api/v1/status/buildinfo", &PromApi::buildinfo);
  route("/api/v1/query_exemplars", &PromApi::exemplars);
}

}  // namespace tally::collector