// PromQL compatibility suite (issue 12), in the manner of the upstream PromQL compliance tester
// (github.com/prometheus/compliance, promql/): a real Prometheus (Debian package prometheus,
// remote-write receiver on) and the real collector hold the same points, because the collector
// forwards what it stores to that Prometheus by remote-write; then every query of the upstream
// file (promql_compat/promql-test-queries.yml, unmodified, variants expanded as the tester's
// expand.go does) and of promql_compat/tally-extra-queries.yml (the forms issue 12 lists) runs on
// both, as a range query and as an instant query, and the answers are compared:
//   - the same series (label sets exactly), the same timestamps, values equal within a relative
//     tolerance of 1e-5 (the tester's defaultFraction; NaN equals NaN);
//   - rate() and increase() are exact in Tally (no extrapolation, docs/PROMETHEUS.md): an answer
//     equal to Prometheus's own non-extrapolating form, `(X - X offset w) / w` for rate(X[w]) and
//     `X - X offset w` for increase(X[w]), counts as the same (the PLAN's rule);
//   - a query the upstream file marks should_fail must fail on both; every other refusal by Tally
//     is a failure.
// It prints one line per query and a score, writes the report to
// $TALLY_PROMQL_COMPAT_REPORT (default: promql_compat_report.txt in the working directory), and
// fails when the score is below kMinScore.
//
// The data: the demo service's metric names and label sets (three instances), ~90 minutes of
// points sent with past timestamps (the collector takes late points and publishes them as
// corrections; the hidden flag --debug-remote-write-since lets the forwarder stamp them at their
// own bucket ends). Prometheus takes them with an out-of-order window. Query times: a 10 minute
// range ending 2 minutes before the data ends, at a 10 s step, twice: at the tester's times (like
// its time.Now(), not on a whole second) and at Grafana's (on multiples of the step, so samples
// sit exactly on window and lookback edges, which Prometheus 2.x closes). docs/PROMQL_COMPAT.md
// has the method and the latest score.
#include <QtTest>

#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "batch_builder.h"
#include "collector_process.h"
#include "free_port.h"
#include "server_process.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::testing;

namespace {

constexpr double kMinScore = 0.95;
constexpr double kFraction = 0.00001;  // the upstream tester's defaultFraction
constexpr int64_t kDataSeconds = 90 * 60;

// ---- The query files ------------------------------------------------------------------------

struct QueryCase {
  std::string query;
  std::vector<std::string> variant_args;
  bool should_fail = false;
  std::string reference;  // tally-extra-queries.yml only
  std::string source;
};

// The upstream tester's variant table (promql/testcases/expand.go).
const std::map<std::string, std::vector<std::string>>& variant_table() {
  static const std::map<std::string, std::vector<std::string>> t = {
      {"range", {"1s", "15s", "1m", "5m", "15m", "1h"}},
      {"offset", {"1m", "5m", "10m"}},
      {"simpleAggrOp", {"sum", "avg", "max", "min", "count", "stddev", "stdvar"}},
      {"simpleTimeAggrOp",
       {"sum", "avg", "max", "min", "count", "stddev", "stdvar", "absent", "last"}},
      {"topBottomOp", {"topk", "bottomk"}},
      {"quantile", {"-0.5", "0.1", "0.5", "0.75", "0.95", "0.90", "0.99", "1", "1.5"}},
      {"arithBinOp", {"+", "-", "*", "/", "%", "^"}},
      {"compBinOp", {"==", "!=", "<", ">", "<=", ">="}},
      {"binOp", {"+", "-", "*", "/", "%", "^", "==", "!=", "<", ">", "<=", ">="}},
      {"simpleMathFunc", {"abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "round"}},
      {"extrapolatedRateFunc", {"delta", "rate", "increase"}},
      {"clampFunc", {"clamp_min", "clamp_max"}},
      {"instantRateFunc", {"idelta", "irate"}},
      {"dateFunc",
       {"day_of_month", "day_of_week", "days_in_month", "hour", "minute", "month", "year"}},
      {"smoothingFactor", {"0.1", "0.5", "0.8"}},
      {"trendFactor", {"0.1", "0.5", "0.8"}},
  };
  return t;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// A YAML scalar as the query files write them: 'single' ('' is a quote), "double", or plain.
std::string yaml_scalar(const std::string& raw) {
  std::string v = trim(raw);
  if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') {
    std::string out;
    for (size_t i = 1; i + 1 < v.size(); ++i) {
      out += v[i];
      if (v[i] == '\'' && v[i + 1] == '\'') ++i;
    }
    return out;
  }
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
  return v;
}

// The subset of YAML the query files use: a test_cases list of maps with query, variant_args
// (a flow list), should_fail, reference; comments.
std::vector<QueryCase> load_cases(const std::string& path, const std::string& source) {
  std::ifstream in(path);
  std::vector<QueryCase> out;
  bool open = false;
  for (std::string line; std::getline(in, line);) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t == "test_cases:") continue;
    if (t.rfind("- ", 0) == 0 || t == "-") {
      out.push_back({});
      out.back().source = source;
      open = true;
      t = trim(t.substr(1));
      if (t.empty() || t[0] == '#') continue;
    }
    if (!open) continue;
    const size_t colon = t.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = t.substr(0, colon), value = t.substr(colon + 1);
    QueryCase& c = out.back();
    if (key == "query") {
      c.query = yaml_scalar(value);
    } else if (key == "reference") {
      c.reference = yaml_scalar(value);
    } else if (key == "should_fail") {
      c.should_fail = trim(value) == "true";
    } else if (key == "variant_args") {
      std::string list = trim(value);
      list = list.substr(1, list.size() - 2);
      std::stringstream ss(list);
      for (std::string item; std::getline(ss, item, ',');)
        c.variant_args.push_back(yaml_scalar(item));
    }
  }
  return out;
}

// expand.go's getVariants: every combination, the first argument varying slowest.
void expand(const std::string& tmpl, std::vector<std::string> args,
            std::map<std::string, std::string>& values, std::vector<std::string>* out) {
  if (args.empty()) {
    std::string q = tmpl;
    for (const auto& [k, v] : values) {
      const std::string key = "{{." + k + "}}";
      for (size_t p; (p = q.find(key)) != std::string::npos;) q.replace(p, key.size(), v);
    }
    out->push_back(q);
    return;
  }
  const std::string arg = args.front();
  args.erase(args.begin());
  for (const auto& v : variant_table().at(arg)) {
    values[arg] = v;
    expand(tmpl, args, values, out);
  }
}

struct Expanded {
  std::string query;
  bool should_fail = false;
  std::string reference;  // the non-extrapolating form, when rate/increase is involved
  std::string source;
};

// Seconds of a PromQL duration made of whole units (5m, 1h30m, 15s).
int64_t duration_s(const std::string& d) {
  static const std::map<char, int64_t> unit = {{'s', 1},     {'m', 60},     {'h', 3600},
                                               {'d', 86400}, {'w', 604800}, {'y', 31536000}};
  int64_t total = 0, n = 0;
  for (char ch : d) {
    if (std::isdigit(static_cast<unsigned char>(ch))) {
      n = n * 10 + (ch - '0');
    } else {
      total += n * unit.at(ch);
      n = 0;
    }
  }
  return total;
}

// rate(SEL[w]) -> ((SEL - SEL offset w) / w), increase(SEL[w]) -> (SEL - SEL offset w), where
// SEL is a plain selector (no offset or @ of its own); empty when the query has no such call.
std::string non_extrapolating(const std::string& q) {
  static const std::regex call(
      R"(\b(rate|increase)\((\s*[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?)\[([0-9smhdwy]+)\]\))");
  std::string out;
  auto begin = std::sregex_iterator(q.begin(), q.end(), call);
  if (begin == std::sregex_iterator()) return {};
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    out += q.substr(last, m.position() - last);
    const std::string sel = trim(m[2].str()), w = m[4].str();
    std::string diff = "(" + sel + " - " + sel + " offset " + w + ")";
    out += m[1].str() == "rate" ? "(" + diff + " / " + std::to_string(duration_s(w)) + ")" : diff;
    last = m.position() + m.length();
  }
  return out + q.substr(last);
}

std::vector<Expanded> expanded_cases(const std::vector<QueryCase>& cases) {
  std::vector<Expanded> out;
  for (const auto& c : cases) {
    std::vector<std::string> qs;
    std::map<std::string, std::string> values;
    expand(c.query, c.variant_args, values, &qs);
    for (const auto& q : qs) {
      std::string ref = c.reference;
      if (ref.empty()) ref = non_extrapolating(q);
      out.push_back({q, c.should_fail, ref, c.source});
    }
  }
  return out;
}

// ---- Answers and their comparison -----------------------------------------------------------

struct Answer {
  bool ok = false;
  std::string error;  // status and message when !ok
  // label set (sorted "k=v,..." with __name__) -> (time ms -> value)
  std::map<std::string, std::map<int64_t, double>> series;
  std::vector<std::string> order;  // instant vectors: the order returned
};

double prom_value(const json& v) {
  const std::string s = v.get<std::string>();
  if (s == "NaN") return std::nan("");
  if (s == "+Inf") return INFINITY;
  if (s == "-Inf") return -INFINITY;
  return std::stod(s);
}

Answer ask(int port, const std::string& path, const httplib::Params& params) {
  Answer a;
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(30, 0);
  auto r = c.Post(path.c_str(), params);
  if (!r) {
    a.error = "no answer";
    return a;
  }
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || r->status != 200 || j.value("status", "") != "success") {
    a.error = std::to_string(r->status) + " " +
              (j.is_discarded() ? r->body.substr(0, 200) : j.value("error", std::string()));
    return a;
  }
  a.ok = true;
  const json& data = j["data"];
  auto add = [&](const std::string& key, const json& p) {
    const int64_t ms = std::llround(p[0].get<double>() * 1000);
    a.series[key][ms] = prom_value(p[1]);
  };
  if (data["resultType"] == "scalar") {
    add("<scalar>", data["result"]);
    a.order.push_back("<scalar>");
    return a;
  }
  if (data["resultType"] == "string") {
    a.ok = false;
    a.error = "string result";
    return a;
  }
  for (const auto& s : data["result"]) {
    std::map<std::string, std::string> labels;
    for (auto& [k, v] : s["metric"].items()) labels[k] = v.get<std::string>();
    std::string key = "{";
    for (const auto& [k, v] : labels) key += (key.size() > 1 ? "," : "") + k + "=\"" + v + "\"";
    key += "}";
    a.order.push_back(key);
    if (s.contains("values")) {
      for (const auto& p : s["values"]) add(key, p);
    } else {
      add(key, s["value"]);
    }
    if (!a.series.count(key)) a.series[key];  // an empty series still shows
  }
  return a;
}

bool close(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (a == b) return true;  // also equal infinities
  return std::fabs(a - b) <= kFraction * std::min(std::fabs(a), std::fabs(b));
}

std::string fmt(double v) {
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

// "" when equal; else a short description of the first difference.
std::string diff(const Answer& ref, const Answer& test, bool ordered = false) {
  for (const auto& [k, _] : ref.series)
    if (!test.series.count(k)) return "missing series " + k;
  for (const auto& [k, _] : test.series)
    if (!ref.series.count(k)) return "extra series " + k;
  for (const auto& [k, pts] : ref.series) {
    const auto& tp = test.series.at(k);
    for (const auto& [t, v] : pts) {
      auto it = tp.find(t);
      if (it == tp.end())
        return k + " has no point at " + std::to_string(t) + " (want " + fmt(v) + ")";
      if (!close(v, it->second))
        return k + " at " + std::to_string(t) + ": " + fmt(it->second) + ", want " + fmt(v);
    }
    for (const auto& [t, v] : tp)
      if (!pts.count(t)) return k + " has an extra point at " + std::to_string(t) + " = " + fmt(v);
  }
  if (ordered && ref.order != test.order) return "order differs";
  return "";
}

// ---- The two servers and the data ----------------------------------------------------------

class Prometheus {
 public:
  ~Prometheus() { stop(); }
  bool start(const QString& dir, int port) {
    port_ = port;
    QDir().mkpath(dir + "/data");
    {
      std::ofstream cfg((dir + "/prometheus.yml").toStdString());
      // Back-dated samples arrive as the collector publishes them: allow them out of order.
      cfg << "global:\n  evaluation_interval: 1m\nstorage:\n  tsdb:\n"
             "    out_of_order_time_window: 1d\n";
    }
    return server_.start(
        QStandardPaths::findExecutable("prometheus"),
        {"--config.file=" + dir + "/prometheus.yml", "--storage.tsdb.path=" + dir + "/data",
         "--web.listen-address=127.0.0.1:" + QString::number(port),
         "--web.enable-remote-write-receiver", "--log.level=warn"},
        port, "/-/ready", 30000);
  }
  void stop() { server_.stop(); }
  int port() const { return port_; }

 private:
  int port_ = 0;
  ServerProcess server_;
};

using Tags = std::vector<std::pair<std::string, std::string>>;

struct Series {
  uint32_t ref;
  std::string metric;
  Tags tags;
  wire::Kind kind;
};

// The demo service's families (github.com/juliusv/prometheus_demo_service), three instances
// scraped every 5 s at different phases, plus api_requests (a counter with a status label, every
// second) and api_latency (a Tally distribution).
class DemoData {
 public:
  explicit DemoData(int64_t start) : start_(start), rng_(12) {
    for (int i = 0; i < 3; ++i) {
      const std::string inst = "demo.promlabs.com:1000" + std::to_string(i);
      Tags base = {{"instance", inst}, {"job", "demo"}};
      auto with = [&](Tags extra) {
        Tags t = base;
        t.insert(t.end(), extra.begin(), extra.end());
        std::sort(t.begin(), t.end());
        return t;
      };
      for (const char* type : {"buffers", "cached", "free", "used"})
        add("demo_memory_usage_bytes", with({{"type", type}}), wire::GAUGE);
      for (const char* mode : {"idle", "system", "user"})
        add("demo_cpu_usage_seconds_total", with({{"mode", mode}}), wire::COUNTER);
      add("demo_disk_usage_bytes", with({}), wire::GAUGE);
      add("demo_num_cpus", with({}), wire::GAUGE);
      add("demo_batch_last_success_timestamp_seconds", with({}), wire::GAUGE);
      add("demo_intermittent_metric", with({}), wire::GAUGE);
      for (const char* status : {"200", "500"}) {
        for (const char* le : {"0.05", "0.1", "0.25", "0.5", "1", "+Inf"})
          add("demo_api_request_duration_seconds_bucket",
              with({{"method", "GET"}, {"path", "/api/foo"}, {"status", status}, {"le", le}}),
              wire::COUNTER);
        add("demo_api_request_duration_seconds_sum",
            with({{"method", "GET"}, {"path", "/api/foo"}, {"status", status}}), wire::COUNTER);
        add("demo_api_request_duration_seconds_count",
            with({{"method", "GET"}, {"path", "/api/foo"}, {"status", status}}), wire::COUNTER);
      }
      // 502 counts 15 minutes, then stops for 15 (a counter that goes stale, and comes back).
      for (const char* status : {"200", "404", "500", "502", "503"})
        add("api_requests", with({{"status", status}}), wire::COUNTER);
      add("api_latency", {{"instance", inst}, {"job", "latency"}}, wire::DISTRIBUTION);
    }
  }

  // The points of seconds [from, to) into `b` (definitions on the first batch).
  void fill(BatchBuilder& b, int64_t from, int64_t to, bool defs) {
    if (defs)
      for (const auto& s : series_) b.def(s.ref, s.metric, s.tags, s.kind);
    std::uniform_real_distribution<double> u(0, 1);
    for (int64_t t = from; t < to; ++t) {
      const int64_t age = t - start_;
      for (const auto& s : series_) {
        const int inst = s.tags[0].second.back() - '0';
        const bool scrape = (t + inst) % 5 == 0;
        const double phase = inst * 1.7 + s.ref * 0.31;
        if (s.metric == "api_requests") {
          if (s.tags[2].second == "502" && age % 1800 >= 900) continue;
          const double rate = s.tags[2].second == "200" ? 20 : s.tags[2].second == "404" ? 2 : 0.4;
          std::poisson_distribution<int> n(rate);
          b.count(s.ref, t, n(rng_));
          note(s, t);
          continue;
        }
        if (!scrape) continue;
        if (s.metric == "demo_memory_usage_bytes") {
          const double v = 1e9 * (1 + s.ref % 4) * (1 + 0.2 * std::sin(age / 200.0 + phase)) +
                           std::floor(u(rng_) * 1e6);
          gauge(b, s, t, std::floor(v));
        } else if (s.metric == "demo_cpu_usage_seconds_total") {
          b.count(s.ref, t, 5 * (0.3 + 0.2 * u(rng_)) * (s.tags[2].second == "idle" ? 3 : 1));
          note(s, t);
        } else if (s.metric == "demo_disk_usage_bytes") {
          gauge(b, s, t, 5e10 + 1e5 * age + std::floor(u(rng_) * 5e5));
        } else if (s.metric == "demo_num_cpus") {
          gauge(b, s, t, 2 + 2 * inst);
        } else if (s.metric == "demo_batch_last_success_timestamp_seconds") {
          // A batch job succeeding every 7 minutes or so.
          gauge(b, s, t, static_cast<double>(t - (t + inst * 100) % 420));
        } else if (s.metric == "demo_intermittent_metric") {
          // Present 4 minutes, then away 8 (longer than the 5 minute lookback).
          if ((age + inst * 120) % 720 < 240) gauge(b, s, t, 1 + inst);
        } else if (s.metric == "demo_api_request_duration_seconds_bucket") {
          // Cumulative buckets of this scrape's observations (drawn once per status).
          const double le = s.tags[2].second == "+Inf" ? INFINITY : std::stod(s.tags[2].second);
          const auto& obs = observations(s.ref, t);
          b.count(s.ref, t,
                  static_cast<double>(
                      std::count_if(obs.begin(), obs.end(), [&](double o) { return o <= le; })));
          note(s, t);
        } else if (s.metric == "demo_api_request_duration_seconds_sum") {
          const auto& obs = observations(s.ref, t);
          b.count(s.ref, t, std::accumulate(obs.begin(), obs.end(), 0.0));
          note(s, t);
        } else if (s.metric == "demo_api_request_duration_seconds_count") {
          b.count(s.ref, t, static_cast<double>(observations(s.ref, t).size()));
          note(s, t);
        } else if (s.metric == "api_latency") {
          Sketch sk;
          std::lognormal_distribution<double> lat(3, 0.6);
          for (int k = 0; k < 20; ++k) sk.add(std::round(lat(rng_)));
          b.dist(s.ref, t, sk);
          note(s, t);
        }
      }
    }
  }

  // Samples Prometheus should hold: per bucket one sample of each forwarded series, and a 0
  // before the first one of each cumulative series; distributions give _count, _sum and three
  // quantiles. Samples Tally's count_over_time sees over the job="demo" series: one per bucket.
  int64_t prometheus_samples() const {
    int64_t n = 0;
    for (const auto& s : series_) {
      const int64_t buckets =
          static_cast<int64_t>(seconds_.count(s.ref) ? seconds_.at(s.ref).size() : 0);
      if (!buckets) continue;
      if (s.kind == wire::GAUGE)
        n += buckets;
      else if (s.kind == wire::COUNTER)
        n += buckets + 1;
      else
        n += 2 * (buckets + 1) + 3 * buckets;
    }
    return n;
  }
  int64_t demo_buckets() const {
    int64_t n = 0;
    for (const auto& s : series_)
      if (s.tags.size() > 1 && s.kind != wire::DISTRIBUTION && seconds_.count(s.ref))
        for (const auto& [k, v] : s.tags)
          if (k == "job" && v == "demo") n += static_cast<int64_t>(seconds_.at(s.ref).size());
    return n;
  }

 private:
  void add(const std::string& metric, Tags tags, wire::Kind kind) {
    series_.push_back({static_cast<uint32_t>(series_.size() + 1), metric, std::move(tags), kind});
  }
  void note(const Series& s, int64_t t) { seconds_[s.ref].insert(t); }
  void gauge(BatchBuilder& b, const Series& s, int64_t t, double v) {
    b.gauge(s.ref, t, v, v, v, v, 1);
    note(s, t);
  }
  // The observations of one scrape of one (instance, status), shared by its buckets/_sum/_count.
  const std::vector<double>& observations(uint32_t ref, int64_t t) {
    // Series of one status are consecutive: 6 buckets, _sum, _count.
    const Series& s = series_[ref - 1];
    std::string key = s.tags[0].second;
    for (const auto& [k, v] : s.tags)
      if (k == "status") key += "/" + v;
    auto& slot = obs_[key];
    if (slot.first != t) {
      slot.first = t;
      slot.second.clear();
      std::exponential_distribution<double> d(key.ends_with("/500") ? 2 : 6);
      std::poisson_distribution<int> n(30);
      for (int k = n(rng_); k > 0; --k) slot.second.push_back(std::round(d(rng_) * 1000) / 1000);
    }
    return slot.second;
  }

  int64_t start_;
  std::mt19937_64 rng_;
  std::vector<Series> series_;
  std::map<uint32_t, std::set<int64_t>> seconds_;
  std::map<std::string, std::pair<int64_t, std::vector<double>>> obs_;
};

double scalar_of(const Answer& a) {
  if (!a.ok || a.series.empty()) return -1;
  double total = 0;
  for (const auto& [k, pts] : a.series)
    for (const auto& [t, v] : pts) total += v;
  return total;
}

}  // namespace

class TestPromqlCompat : public QObject {
  Q_OBJECT
 private slots:
  void expansionMatchesTheUpstreamTester();
  void tallyAnswersAsPrometheusDoes();
};

// Controls for the harness itself: the expansion and the non-extrapolating rewrite.
void TestPromqlCompat::expansionMatchesTheUpstreamTester() {
  const std::string dir = std::string(TALLY_SOURCE_DIR) + "/tests/collector/promql_compat/";
  auto cases = expanded_cases(load_cases(dir + "promql-test-queries.yml", "upstream"));
  QVERIFY(cases.size() > 500);
  QCOMPARE(QString::fromStdString(cases.front().query), QString("42"));
  std::set<std::string> qs;
  for (const auto& c : cases) qs.insert(c.query);
  QVERIFY(qs.count("quantile_over_time(-0.5, demo_memory_usage_bytes[1s])"));
  QVERIFY(qs.count("quantile_over_time(1.5, demo_memory_usage_bytes[1h])"));
  QVERIFY(qs.count("histogram_quantile(0.9, demo_memory_usage_bytes)"));
  QVERIFY(qs.count("-1 ^ 2"));
  QVERIFY(
      qs.count("label_replace(demo_num_cpus, \"job\", \"destination-value-$1\", \"instance\", "
               "\"demo.promlabs.com:(.*)\")"));
  int should_fail = 0;
  for (const auto& c : cases) should_fail += c.should_fail;
  QCOMPARE(should_fail, 5);
  QCOMPARE(QString::fromStdString(non_extrapolating("rate(demo_cpu_usage_seconds_total[5m])")),
           QString("((demo_cpu_usage_seconds_total - demo_cpu_usage_seconds_total offset 5m) / "
                   "300)"));
  QCOMPARE(QString::fromStdString(non_extrapolating("sum(increase(x{a=\"b\"}[1h]))")),
           QString("sum((x{a=\"b\"} - x{a=\"b\"} offset 1h))"));
  QCOMPARE(QString::fromStdString(non_extrapolating("delta(x[1h])")), QString());
  // The comparison: tolerance 1e-5 relative, NaN equals NaN, labels and timestamps exact.
  auto answer = [](std::string key, int64_t t, double v) {
    Answer a;
    a.ok = true;
    a.series[key][t] = v;
    a.order.push_back(key);
    return a;
  };
  const Answer ref = answer("{a=\"1\"}", 1000, 1.0);
  QVERIFY(diff(ref, answer("{a=\"1\"}", 1000, 1.000001)).empty());
  QVERIFY(!diff(ref, answer("{a=\"1\"}", 1000, 1.0001)).empty());
  QVERIFY(!diff(ref, answer("{a=\"2\"}", 1000, 1.0)).empty());
  QVERIFY(!diff(ref, answer("{a=\"1\"}", 2000, 1.0)).empty());
  QVERIFY(!diff(ref, answer("{a=\"1\"}", 1000, std::nan(""))).empty());
  QVERIFY(diff(answer("{}", 0, std::nan("")), answer("{}", 0, std::nan(""))).empty());
  QVERIFY(!diff(ref, Answer{true, {}, {}, {}}).empty());
}

void TestPromqlCompat::tallyAnswersAsPrometheusDoes() {
  if (QStandardPaths::findExecutable("prometheus").isEmpty())
    QSKIP("prometheus not installed (installer/install-deps.sh installs it)");
  const std::string dir = std::string(TALLY_SOURCE_DIR) + "/tests/collector/promql_compat/";
  auto cases = expanded_cases(load_cases(dir + "promql-test-queries.yml", "upstream"));
  const size_t upstream = cases.size();
  for (auto& c : expanded_cases(load_cases(dir + "tally-extra-queries.yml", "issue 12")))
    cases.push_back(c);

  const int64_t now = SystemClock::instance().now_s();
  const int64_t data_end = now - 5;  // older than the collector's lateness: every point is late
  const int64_t data_start = data_end - kDataSeconds;

  Prometheus prom;  // stops after the collector (declared first)
  CollectorProcess tally;
  QVERIFY(prom.start(tally.temp_path() + "/prometheus", free_port()));
  QVERIFY(tally.start(
      {"--remote-write-url", QString("http://127.0.0.1:%1/api/v1/write").arg(prom.port()),
       "--remote-write-label", "instance=",  // every series has its own instance tag
       "--remote-write-flush-interval", "200ms", "--remote-write-max-samples", "5000",
       "--remote-write-min-backoff", "50ms", "--remote-write-max-backoff", "500ms", "--lateness",
       "1s", "--fsync", "never", "--debug-remote-write-since", QString::number(data_start - 10)}));

  // Feed the data a minute of points per batch, in time order.
  DemoData demo(data_start);
  {
    RawProducer p(tally.ingest());
    uint64_t seq = 0;
    for (int64_t t = data_start; t < data_end; t += 60) {
      BatchBuilder b(4242, ++seq);
      demo.fill(b, t, std::min(t + 60, data_end), seq == 1);
      auto ack = p.send(b.b);
      QVERIFY2(ack && ack->code() == wire::Ack::OK,
               ack ? ack->reason().c_str() : "no ack from the collector");
    }
  }
  // Wait until both hold every sample.
  const std::string at = std::to_string(data_end + 1);
  const int64_t want_prom = demo.prometheus_samples(), want_tally = demo.demo_buckets();
  double have_prom = 0, have_tally = 0;
  std::string errors;
  auto count_query = [](std::vector<std::string> names) {
    std::string q;
    for (const auto& n : names)
      q += (q.empty() ? "" : " + ") + ("sum(count_over_time(" + n + "[3h]))");
    return q;
  };
  std::vector<std::string> names = {"demo_memory_usage_bytes",
                                    "demo_cpu_usage_seconds_total",
                                    "demo_disk_usage_bytes",
                                    "demo_num_cpus",
                                    "demo_batch_last_success_timestamp_seconds",
                                    "demo_intermittent_metric",
                                    "demo_api_request_duration_seconds_bucket",
                                    "demo_api_request_duration_seconds_sum",
                                    "demo_api_request_duration_seconds_count",
                                    "api_requests"};
  const std::string tally_count = count_query(names);
  names.insert(names.end(), {"api_latency_count", "api_latency_sum", "api_latency"});
  const std::string prom_count = count_query(names);
  const bool converged = eventually(
      [&] {
        Answer p = ask(prom.port(), "/api/v1/query", {{"query", prom_count}, {"time", at}});
        Answer t = ask(tally.http_port(), "/api/v1/query", {{"query", tally_count}, {"time", at}});
        have_prom = scalar_of(p);
        have_tally = scalar_of(t);
        errors = p.error + " / " + t.error;
        return have_prom == want_prom && have_tally == want_tally;
      },
      240000);
  QVERIFY2(converged, qPrintable(QString("Prometheus holds %1 samples of %2, Tally %3 of %4 (%5)")
                                     .arg(have_prom)
                                     .arg(want_prom)
                                     .arg(have_tally)
                                     .arg(want_tally)
                                     .arg(QString::fromStdString(errors))));

  // Two sets of times, each a 10 minute range at a 10 s step (and an instant query at its end),
  // ending 2 minutes before the data ends: the tester's (time.Now(): not on a whole second, so
  // no sample sits on a window's edge) and Grafana's (start and end on multiples of the step:
  // samples sit on window and lookback edges, and the collector reads its 10 s resolution).
  auto tstr = [](double t) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", t);
    return std::string(buf);
  };
  struct Pass {
    const char* name;
    double end;
  };
  const Pass passes[] = {
      {"tester's times", static_cast<double>(data_end - 120) + 0.437},
      {"Grafana's times", static_cast<double>((data_end - 120) / 10 * 10)},
  };
  std::ostringstream report;
  report << "PromQL compatibility: Tally against Prometheus "
         << "(tests/collector/tst_promql_compat.cpp)\n"
         << "each query as a range query (10 minutes, step 10s) and an instant query at its end; "
         << "both must match\n";
  // TALLY_PROMQL_COMPAT_ONLY=<regex>: run only the matching queries (while fixing one).
  const QByteArray only_env = qgetenv("TALLY_PROMQL_COMPAT_ONLY");
  const std::regex only(only_env.isEmpty() ? std::string(".*") : only_env.toStdString());
  int passed = 0, total = 0, empty_both = 0;
  std::ostringstream summary;
  for (const Pass& pass : passes) {
    const double end = pass.end, start = end - 600;
    report << "\n== " << pass.name << ": range " << tstr(start) << " .. " << tstr(end) << "\n";
    int p_passed = 0, p_total = 0, upstream_passed = 0, via_reference = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      if (!std::regex_search(c.query, only)) continue;
      auto run = [&](int port, const std::string& q, bool instant) {
        if (instant) return ask(port, "/api/v1/query", {{"query", q}, {"time", tstr(end)}});
        return ask(port, "/api/v1/query_range",
                   {{"query", q}, {"start", tstr(start)}, {"end", tstr(end)}, {"step", "10"}});
      };
      std::string why;
      bool used_reference = false, empty = true;
      for (bool instant : {false, true}) {
        const char* api = instant ? "instant" : "range";
        Answer ref = run(prom.port(), c.query, instant),
               got = run(tally.http_port(), c.query, instant);
        if (c.should_fail) {
          if (ref.ok)
            why = std::string(api) + ": Prometheus answered a should_fail query (harness)";
          else if (got.ok)
            why = std::string(api) + ": answered, Prometheus refuses: " + ref.error;
        } else if (!ref.ok) {
          why = std::string(api) + ": Prometheus refused (harness): " + ref.error;
        } else if (!got.ok) {
          why = std::string(api) + ": refused: " + got.error;
        } else {
          empty = empty && ref.series.empty() && got.series.empty();
          const bool ordered = instant && c.query.rfind("sort", 0) == 0;
          std::string d = diff(ref, got, ordered);
          if (!d.empty() && !c.reference.empty()) {
            Answer alt = run(prom.port(), c.reference, instant);
            const std::string d2 = alt.ok ? diff(alt, got, ordered) : "refused: " + alt.error;
            if (d2.empty()) {
              d.clear();
              used_reference = true;
            } else {
              d += "; against the non-extrapolating form: " + d2;
            }
          }
          if (!d.empty()) why = std::string(api) + ": " + d;
        }
        if (!why.empty()) break;
      }
      const bool ok = why.empty();
      ++p_total;
      p_passed += ok;
      if (ok && i < upstream) ++upstream_passed;
      if (ok && used_reference) ++via_reference;
      if (ok && empty && !c.should_fail) ++empty_both;
      report << (ok ? "PASS " : "FAIL ") << "[" << c.source << "] " << c.query;
      if (used_reference) report << "   (= " << c.reference << ")";
      if (!ok) report << "\n     " << why.substr(0, 400);
      report << "\n";
    }
    summary << pass.name << ": " << p_passed << "/" << p_total << " (upstream " << upstream_passed
            << "/" << upstream << ", issue 12 forms " << p_passed - upstream_passed << "/"
            << cases.size() - upstream << "; " << via_reference
            << " equal to Prometheus's non-extrapolating form)\n";
    passed += p_passed;
    total += p_total;
  }
  const double score = total ? static_cast<double>(passed) / static_cast<double>(total) : 0;
  report << "\n"
         << summary.str() << "score: " << passed << "/" << total << " = "
         << tstr(100 * score).substr(0, 5) << " % (" << empty_both
         << " of the passes with both answers empty throughout)\n";
  const QByteArray env = qgetenv("TALLY_PROMQL_COMPAT_REPORT");
  const std::string path = env.isEmpty() ? "promql_compat_report.txt" : env.toStdString();
  std::ofstream(path) << report.str();
  std::cout << report.str() << "report written to " << path << "\n";
  // TALLY_PROMQL_COMPAT_HOLD=<seconds>: keep both servers up to query them by hand.
  if (int hold = qEnvironmentVariableIntValue("TALLY_PROMQL_COMPAT_HOLD"); hold > 0) {
    std::cout << "Prometheus on 127.0.0.1:" << prom.port()
              << ", Tally on 127.0.0.1:" << tally.http_port() << ", for " << hold << " s"
              << std::endl;
    QThread::sleep(static_cast<unsigned long>(hold));
  }
  if (!only_env.isEmpty()) return;
  QVERIFY2(score >= kMinScore, qPrintable(QString("score %1 below %2").arg(score).arg(kMinScore)));
  QVERIFY(empty_both < total / 5);  // the answers hold data: the comparison means something
}

QTEST_GUILESS_MAIN(TestPromqlCompat)
#include "tst_promql_compat.moc"
