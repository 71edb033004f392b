#include "query/http_api.h"

#include "thread_guard.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "query/annotations_api.h"
#include "query/http_server.h"
#include "query/prom_api.h"
#include "tally/common/mutex.h"
#include "tally/common/name_mapping.h"

namespace tally::collector {
namespace {

using json = nlohmann::json;

// Integral values print as integers so counts read as counts.
json number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::abs(v) < 9007199254740992.0)
    return static_cast<int64_t>(v);
  if (!std::isfinite(v)) return nullptr;
  return v;
}

json tags_json(const Tags& tags) {
  json o = json::object();
  for (const auto& t : tags) o[t.key] = t.value;
  return o;
}

json bins_json(const std::vector<Sketch::Bin>& bins) {
  json a = json::array();
  for (const auto& b : bins)
    a.push_back({{"lower", b.lower}, {"upper", b.upper}, {"count", b.count}});
  return a;
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Requests are checked for UTF-8 before routing; replace is the net under that (an error that
  // quotes stored bytes must still be an answer, not a 500).
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void error(httplib::Response& res, int status, const std::string& msg) {
  reply(res, status, {{"error", msg}});
}

int http_status(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

Result<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size())
    return Status::invalid_argument("'" + std::string(s) + "' is not a whole number");
  return v;
}

// Set once by one thread, waited for by another; setting it again does nothing.
class Signal {
 public:
  void set() {
    MutexLock lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  void wait() {
    MutexLock lock(mu_);
    while (!set_) lock.wait(cv_);
  }

 private:
  Mutex mu_;
  std::condition_variable cv_;
  bool set_ GUARDED_BY(mu_) = false;
};

}  // namespace

Result<std::pair<int64_t, int64_t>> parse_from_to(const httplib::Request& req, int64_t now_s) {
  auto from = parse_time_param(req.has_param("from") ? req.get_param_value("from") : "-1h", now_s);
  if (!from) return Status::invalid_argument("from: " + from.status().message());
  // `to` is exclusive, so "now" means up to and including the current, still open, second.
  std::string to_text = req.has_param("to") ? req.get_param_value("to") : "now";
  auto to = to_text == "now" ? Result<int64_t>(now_s + 1) : parse_time_param(to_text, now_s);
  if (!to) return Status::invalid_argument("to: " + to.status().message());
  if (*to <= *from) return Status::invalid_argument("'to' must be after 'from'");
  return std::pair{*from, *to};
}

Result<RangeQuery> parse_range_params(const httplib::Request& req, int64_t now_s, bool need_fn) {
  RangeQuery q;
  q.metric = req.get_param_value("metric");
  if (q.metric.empty()) return Status::invalid_argument("missing parameter 'metric'");
  if (auto s = validate_metric_name(q.metric); !s)
    return Status::invalid_argument("metric: " + s.message());
  for (size_t i = 0; i < req.get_param_value_count("filter"); ++i) {
    auto f = parse_filter(req.get_param_value("filter", i));
    if (!f) return f.status();
    q.filters.push_back(std::move(*f));
  }
  std::string gb = req.get_param_value("group_by");
  size_t pos = 0;
  while (!gb.empty() && pos <= gb.size()) {
    size_t comma = gb.find(',', pos);
    std::string key = gb.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!key.empty()) {
      if (auto s = validate_tag_key(key); !s)
        return Status::invalid_argument("group_by: " + s.message());
      q.group_by.push_back(key);
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  auto range = parse_from_to(req, now_s);
  if (!range) return range.status();
  q.from = range->first;
  q.to = range->second;
  std::string step = req.get_param_value("step");
  if (!step.empty() && step != "auto") {
    auto d = parse_duration(step);
    if (!d) return Status::invalid_argument("step: " + d.status().message());
    q.step = *d;
  }
  if (req.has_param("points")) {
    auto n = parse_int(req.get_param_value("points"));
    if (!n || *n < 1 || *n > 100000) return Status::invalid_argument("points must be 1..100000");
    q.points = *n;
  }
  if (need_fn) {
    std::string fn = req.has_param("fn") ? req.get_param_value("fn") : "sum";
    auto f = parse_fn(fn);
    if (!f)
      return Status::invalid_argument("unknown fn '" + fn +
                                      "'; use sum, rate, avg, min, max, count, p50, p90 or p99");
    q.fn = *f;
  }
  return q;
}

namespace {

size_t parse_bins(const httplib::Request& req) {
  if (!req.has_param("buckets")) return 60;
  auto n = parse_int(req.get_param_value("buckets"));
  return n && *n > 0 && *n <= 10000 ? static_cast<size_t>(*n) : 60;
}

}  // namespace

Result<int64_t> parse_time_param(std::string_view text, int64_t now_s) {
  if (text.empty() || text == "now") return now_s;
  if (text.front() == '-') {
    auto d = parse_duration(text.substr(1));
    if (!d) return d.status();
    int64_t t = 0;  // checked: the engine clamps what is out of range, nothing wraps around
    if (__builtin_sub_overflow(now_s, *d, &t)) return std::numeric_limits<int64_t>::min();
    return t;
  }
  auto v = parse_int(text);
  if (!v)
    return Status::invalid_argument("time '" + std::string(text) +
                                    "' must be unix seconds, 'now' or -<duration>");
  return *v;
}

HttpApi::HttpApi(QueryEngine& engine, const SeriesCatalog& catalog, Router& router,
                 SelfMetrics& metrics, const Clock& clock)
    : engine_(engine),
      catalog_(catalog),
      router_(router),
      metrics_(metrics),
      clock_(clock),
      started_s_(clock.now_s()) {}

HttpApi::~HttpApi() {
  stop();
}

Result<int> HttpApi::start(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return Status::invalid_argument("http listen address '" + listen + "' must be host:port");
  std::string host = listen.substr(0, colon);
  auto port = parse_int(listen.substr(colon + 1));
  if (!port || *port < 0 || *port > 65535)
    return Status::invalid_argument("http port in '" + listen + "' is not valid");
  // 32 workers; a connection takes one only once its request head has arrived, which must be
  // within 2 s (a body within 2 s more); at most max_connections wait (query/http_server.h).
  HttpServerOptions o;
  auto listening = std::make_shared<Signal>();
  o.on_listening = [listening] { listening->set(); };
  o.max_pending = max_connections_;
  o.tls_cert_file = security_.tls_cert_file;
  o.tls_key_file = security_.tls_key_file;
  auto server = make_http_server(o, metrics_);
  if (!server) return server.status();
  server_ = std::move(*server);
  security_.guard.listen_host = host;
  guard_ = std::make_unique<HttpGuard>(security_.guard);
  server_->set_payload_max_length(1 << 20);
  // Every path and parameter must be UTF-8 before any handler sees it: 400, never a 500 from
  // deep inside (a JSON writer meeting a stray byte).
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    http_request_head_read(req);
    // Who may ask comes first (auth/http_guard.h): Host, Origin, token and scope.
    const GuardVerdict v = guard_->check(
        {req.method, req.path, req.get_header_value("Host"), req.get_header_value("Origin"),
         req.get_header_value("Sec-Fetch-Site"), req.get_header_value("Authorization")});
    if (v.status != 0) {
      metrics_.auth_refused_http.fetch_add(1, std::memory_order_relaxed);
      if (v.status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"tally\"");
      error(res, v.status, v.error);
      log_refusal(req, v);
      return httplib::Server::HandlerResponse::Handled;
    }
    bool ok = valid_utf8(req.path, true);
    for (const auto& [key, value] : req.params)
      ok = ok && valid_utf8(key, true) && valid_utf8(value, true);
    if (ok) return httplib::Server::HandlerResponse::Unhandled;
    metrics_.queries_rejected.fetch_add(1, std::memory_order_relaxed);
    error(res, 400, "the request is not valid UTF-8 (path or a parameter)");
    return httplib::Server::HandlerResponse::Handled;
  });
  routes();
  int bound =
      *port == 0
          ? server_->bind_to_any_port(host)
          : (server_->bind_to_port(host, static_cast<int>(*port)) ? static_cast<int>(*port) : -1);
  if (bound < 0)
    return Status::io_error("cannot listen on " + listen + " (in use or not permitted)");
  thread_ = std::thread([this, listening] {
    guarded("http", metrics_, [this] { server_->listen_after_bind(); });
    listening->set();  // it ended without listening (logged by guarded): start() must not wait
  });
  // A stop() before the loop has begun would be lost and its join would wait for ever.
  listening->wait();
  return bound;
}

void HttpApi::set_tokens(std::vector<std::string> read, std::vector<std::string> admin) {
  security_.guard.read_tokens = read;
  security_.guard.admin_tokens = admin;
  if (guard_) guard_->set_tokens(std::move(read), std::move(admin));
}

void HttpApi::log_refusal(const httplib::Request& req, const GuardVerdict& v) {
  // At most one line a second; the next line carries how many were not logged.
  const int64_t now = clock_.now_s();
  int64_t last = last_refusal_log_s_.load(std::memory_order_relaxed);
  if (now == last || !last_refusal_log_s_.compare_exchange_strong(last, now)) {
    suppressed_refusals_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  spdlog::warn("event=http_refused status={} reason={} peer={} method={} path=\"{}\" suppressed={}",
               v.status, v.reason, req.remote_addr, req.method, req.path,
               suppressed_refusals_.exchange(0));
}

void HttpApi::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpApi::routes() {
  auto& s = *server_;
  auto timed = [this](auto&& handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      auto t0 = std::chrono::steady_clock::now();
      handler(req, res);
      metrics_.queries.fetch_add(1, std::memory_order_relaxed);
      if (res.status == 400 || res.status == 404)
        metrics_.queries_rejected.fetch_add(1, std::memory_order_relaxed);
      metrics_.query_latency.record_us(
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now() - t0)
                                    .count()));
    };
  };

  // Admin scope (HttpGuard): read the CURVE keys and the tokens again, as SIGHUP does.
  s.Post("/api/admin/reload", [this](const httplib::Request&, httplib::Response& res) {
    http_request_body_read();
    if (!reload_) return error(res, 404, "reload is not available in this collector");
    auto r = reload_();
    if (!r) return error(res, 400, r.status().message());
    res.set_content(nlohmann::json{{"status", "reloaded"}, {"loaded", *r}}.dump(),
                    "application/json");
  });
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    if (auto failed = metrics_.thread_failure(); !failed.empty()) {
      reply(res, 503, {{"status", "unavailable"}, {"reason", failed}});
      return;
    }
    if (!router_.healthy() || (health_ && !health_())) {
      std::string reason = router_.health_reason();
      if (reason.empty())
        reason =
            "the write-ahead log is not accepting writes (disk full or unwritable); batches are "
            "not acknowledged";
      reply(res, 503, {{"status", "unavailable"}, {"reason", reason}});
      return;
    }
    reply(
        res, 200,
        {{"status", "ok"}, {"uptime_s", clock_.now_s() - started_s_}, {"series", catalog_.size()}});
  });

  // A consistent backup of the running collector (docs/OPERATIONS.md): dir is a path on the
  // collector's machine; the answer says what was written.
  s.Post("/api/admin/backup", [this](const httplib::Request& req, httplib::Response& res) {
    http_request_body_read();
    const std::string dir = req.get_param_value("dir");
    if (dir.empty()) return error(res, 400, "missing parameter dir (an absolute path)");
    if (!backup_) return error(res, 503, "backups are not available");
    const auto t0 = std::chrono::steady_clock::now();
    auto m = backup_(dir);
    if (!m) {
      const auto code = m.status().code();
      return error(res,
                   code == StatusCode::kInvalidArgument ? 400
                   : code == StatusCode::kUnavailable   ? 507
                                                        : 500,
                   m.status().message());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    reply(res, 200,
          {{"status", "ok"},
           {"dir", dir},
           {"files", m->files.size()},
           {"bytes", m->total_bytes()},
           {"created_unix_ms", m->created_unix_ms},
           {"tally_version", m->tally_version},
           {"seconds", seconds}});
  });

  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    metrics_.series.store(static_cast<int64_t>(catalog_.size()));
    metrics_.series_expiring.store(static_cast<int64_t>(catalog_.expiring()));
    metrics_.series_revived.store(catalog_.revived());
    std::string text = metrics_.to_prometheus(clock_.now_s() - started_s_);
    if (cardinality_) text += cardinality_->to_prometheus();
    text += memory_to_prometheus(catalog_.memory());
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });

  s.Get("/api/metrics", timed([this](const httplib::Request& req, httplib::Response& res) {
          std::string search = req.get_param_value("search");
          json list = json::array();
          for (const auto& m : catalog_.metrics()) {
            if (!search.empty() && m.name.find(search) == std::string::npos) continue;
            json item = {{"name", m.name}, {"kind", kind_name(m.kind)}, {"series", m.series}};
            // A name stored under the name mapping (name_mapping.h) also shows as it was sent.
            if (m.name.starts_with("U__"))
              if (auto original = unmap_name(m.name)) item["original"] = *original;
            list.push_back(std::move(item));
          }
          reply(res, 200, {{"metrics", list}});
        }));

  // Which metrics and tag keys hold the series, how fast series are created, and what the
  // cardinality limits folded (docs/API.md).
  s.Get("/api/cardinality", timed([this](const httplib::Request& req, httplib::Response& res) {
          size_t top = 20;
          if (req.has_param("limit")) {
            const std::string v = req.get_param_value("limit");
            size_t n = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc() || p != v.data() + v.size() || n == 0 || n > 1000)
              return error(res, 400, "'limit' must be an integer 1..1000");
            top = n;
          }
          const CatalogCardinality c = catalog_.cardinality(top);
          CardinalityGuard::Snapshot g;
          if (cardinality_) g = cardinality_->snapshot(clock_.now_s());
          std::map<std::string, uint64_t, std::less<>> folded(g.overflow_by_metric.begin(),
                                                              g.overflow_by_metric.end());
          json metrics = json::array();
          for (const auto& m : c.top_metrics) {
            auto f = folded.find(m.name);
            metrics.push_back({{"name", m.name},
                               {"kind", kind_name(m.kind)},
                               {"series", m.series},
                               {"overflow", f == folded.end() ? 0 : f->second}});
          }
          json keys = json::array();
          for (const auto& k : c.top_tag_keys)
            keys.push_back({{"key", k.key}, {"values", k.values}, {"series", k.series}});
          json per_minute = json::array();
          for (const auto& [t, n] : g.created_per_minute)
            per_minute.push_back({{"time", t}, {"created", n}});
          json overflow = json::array();
          for (const auto& [m, n] : g.overflow_by_metric) {
            if (overflow.size() >= top) break;
            overflow.push_back({{"metric", m}, {"folded", n}});
          }
          json limits = json::object();
          if (cardinality_) {
            const auto& l = cardinality_->limits();
            limits = {{"series_max_per_metric", l.max_series_per_metric},
                      {"series_max_total", l.max_series_total},
                      {"series_max_new_per_minute", l.max_new_series_per_minute}};
          }
          reply(res, 200,
                {{"series", c.series},
                 {"metrics", c.metrics},
                 {"series_created", g.created},
                 {"overflow_total", g.overflow},
                 {"producers", metrics_.producers.load(std::memory_order_relaxed)},
                 {"producer_refs", metrics_.producer_refs.load(std::memory_order_relaxed)},
                 {"limits", std::move(limits)},
                 {"top_metrics", std::move(metrics)},
                 {"top_tag_keys", std::move(keys)},
                 {"created_per_minute", std::move(per_minute)},
                 {"overflow", std::move(overflow)}});
        }));

  s.Get("/api/tags", timed([this](const httplib::Request& req, httplib::Response& res) {
          std::string metric = req.get_param_value("metric");
          if (metric.empty()) return error(res, 400, "missing parameter 'metric'");
          if (!catalog_.kind_of(metric)) return error(res, 404, "unknown metric '" + metric + "'");
          std::map<std::string, std::set<std::string>> tags;
          const auto pin = catalog_.pin();  // the series below stay valid while listed
          for (const SeriesInfo* info : catalog_.series_of(metric))
            for (const auto& t : info->tags()) tags[std::string(t.key)].emplace(t.value);
          json o = json::object();
          json originals = json::object();
          for (const auto& [k, vs] : tags) {
            o[k] = json(std::vector<std::string>(vs.begin(), vs.end()));
            if (k.starts_with("U__"))
              if (auto original = unmap_name(k)) originals[k] = *original;
          }
          json body = {{"metric", metric}, {"tags", o}};
          if (!originals.empty()) body["original_keys"] = originals;
          if (metric.starts_with("U__"))
            if (auto original = unmap_name(metric)) body["original"] = *original;
          reply(res, 200, body);
        }));

  s.Get("/api/query", timed([this](const httplib::Request& req, httplib::Response& res) {
          auto q = parse_range_params(req, clock_.now_s(), true);
          if (!q) return error(res, 400, q.status().message());
          auto r = engine_.range(*q);
          if (!r) return error(res, http_status(r.status()), r.status().message());
          json series = json::array();
          for (const auto& sr : r->series) {
            json pts = json::array();
            for (const auto& [t, v] : sr.points) pts.push_back({t, number(v)});
            json js = {{"tags", tags_json(sr.group)}, {"points", std::move(pts)}};
            if (sr.partial_from) js["partial_from"] = *sr.partial_from;
            series.push_back(std::move(js));
          }
          reply(res, 200,
                {{"metric", q->metric},
                 {"kind", kind_name(r->kind)},
                 {"fn", fn_name(q->fn)},
                 {"from", r->from},
                 {"to", r->to},
                 {"step", r->step},
                 {"resolution", r->resolution},
                 {"series", std::move(series)}});
        }));

  // When the collector ran: [start, end] pairs of unix seconds (fractions kept) overlapping
  // [from, to), clipped to it.
  s.Get("/api/coverage", timed([this](const httplib::Request& req, httplib::Response& res) {
          auto ft = parse_from_to(req, clock_.now_s());
          if (!ft) return error(res, 400, ft.status().message());
          json spans = json::array();
          const int64_t from_ms = ft->first * 1000, to_ms = ft->second * 1000;
          if (auto c = engine_.coverage()) {
            for (const auto& i : c->within(from_ms, to_ms))
              spans.push_back({static_cast<double>(i.start_ms) / 1000.0,
                               static_cast<double>(i.end_ms) / 1000.0});
          } else {
            spans.push_back({static_cast<double>(ft->first), static_cast<double>(ft->second)});
          }
          reply(res, 200, {{"from", ft->first}, {"to", ft->second}, {"covered", std::move(spans)}});
        }));

  s.Get("/api/histogram", timed([this](const httplib::Request& req, httplib::Response& res) {
          auto q = parse_range_params(req, clock_.now_s(), false);
          if (!q) return error(res, 400, q.status().message());
          auto r = engine_.histogram(*q, parse_bins(req));
          if (!r) return error(res, http_status(r.status()), r.status().message());
          reply(res, 200,
                {{"metric", q->metric},
                 {"from", r->from},
                 {"to", r->to},
                 {"count", r->count},
                 {"sum", number(r->sum)},
                 {"min", number(r->min)},
                 {"max", number(r->max)},
                 {"p50", r->p50},
                 {"p90", r->p90},
                 {"p99", r->p99},
                 {"buckets", bins_json(r->buckets)}});
        }));

  s.Get("/api/heatmap", timed([this](const httplib::Request& req, httplib::Response& res) {
          auto q = parse_range_params(req, clock_.now_s(), false);
          if (!q) return error(res, 400, q.status().message());
          auto r = engine_.heatmap(*q, parse_bins(req));
          if (!r) return error(res, http_status(r.status()), r.status().message());
          json cols = json::array();
          for (const auto& c : r->columns)
            cols.push_back({{"time", c.time},
                            {"count", c.count},
                            {"p50", c.p50},
                            {"p90", c.p90},
                            {"p99", c.p99},
                            {"buckets", bins_json(c.buckets)}});
          reply(res, 200,
                {{"metric", q->metric},
                 {"from", r->from},
                 {"to", r->to},
                 {"step", r->step},
                 {"columns", std::move(cols)}});
        }));

  register_prom_routes(s, engine_, catalog_, clock_, metrics_, promql_limits_);
  register_annotation_routes(s, annotations_, metrics_, clock_);

  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    // The server's 1 MiB payload limit answers 413 before any handler; an annotation body has
    // its own limit, answered (and counted) as the bad input it is.
    if (res.status == 413 && req.path == "/api/annotations") {
      metrics_.annotations_rejected[0].fetch_add(1, std::memory_order_relaxed);
      return error(res, 400,
                   "body: larger than " + std::to_string(kMaxAnnotationBodyBytes) + " bytes");
    }
    if (res.body.empty())
      error(res, res.status, res.status == 404 ? "no such endpoint" : "request failed");
  });
  s.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        // Process boundary of a request: log what escaped and answer 500.
        std::string what = "unknown";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {}
        spdlog::error("event=http_exception path={} error=\"{}\"", req.path, what);
        error(res, 500, "internal error: " + what);
      });
}

}  // namespace tally::collector
