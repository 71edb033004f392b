// The Prometheus-compatible read API against the real collector process: hand-made batches at
// known seconds, then query_range / query / series / labels answers compared exactly (counters
// cumulative, increase and rate over their buckets, gauges' last values, distributions as
// summaries), form-encoded POST equal to GET, and errors in Prometheus's shape (400 bad_data,
// 422 naming what is unsupported).
#include <QtTest>

#include <charconv>

#include "batch_builder.h"
#include "collector_process.h"
#include "tally/common/sketch.h"
#include "tally/common/time_bucket.h"
#include "tally/common/wire.h"

using namespace tally;
using namespace tally::testing;

namespace {

int64_t now_s() {
  return SystemClock::instance().now_s();
}

Sketch range_sketch(int from, int to) {
  Sketch s;
  for (int v = from; v <= to; ++v) s.add(v);
  return s;
}

// How Prometheus writes a sample value (Go's FormatFloat(v, 'f', -1, 64)).
std::string fmt(double v) {
  char buf[512];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, p);
}

using Params = std::vector<std::pair<std::string, std::string>>;

struct Answer {
  int status = 0;
  std::string body;
  json j;
};

class PromClient {
 public:
  explicit PromClient(int port) : port_(port) {}
  Answer get(const std::string& path, const Params& params = {}) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    httplib::Params p(params.begin(), params.end());
    auto r = c.Get(path.c_str(), p, httplib::Headers{});
    return answer(r);
  }
  Answer post(const std::string& path, const Params& params) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    httplib::Params p(params.begin(), params.end());
    auto r = c.Post(path.c_str(), p);  // application/x-www-form-urlencoded
    return answer(r);
  }

 private:
  static Answer answer(const httplib::Result& r) {
    if (!r) return {};
    Answer a{r->status, r->body, json::parse(r->body, nullptr, false)};
    return a;
  }
  int port_;
};

// A result as text, one series a line, times relative to t0:
//   {endpoint="/a",status="500"} 60:8 120:15
std::string render(const json& data, int64_t t0) {
  std::string out;
  auto labels = [](const json& m) {
    std::string s = "{";
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (it.key() == "__name__") continue;
      if (s.size() > 1) s += ",";
      s += it.key() + "=\"" + it.value().get<std::string>() + "\"";
    }
    std::string name = m.contains("__name__") ? m["__name__"].get<std::string>() : "";
    if (!name.empty() && s.size() == 1) return name;
    return name + s + "}";
  };
  auto point = [&](const json& p) {
    return std::to_string(p[0].get<int64_t>() - t0) + ":" + p[1].get<std::string>();
  };
  if (data["resultType"] == "scalar") return point(data["result"]);
  for (const auto& s : data["result"]) {
    if (!out.empty()) out += "\n";
    out += labels(s["metric"]);
    if (s.contains("values"))
      for (const auto& p : s["values"]) out += " " + point(p);
    else
      out += " " + point(s["value"]);
  }
  return out;
}

// Keeps only the points on whole minutes after t0 of a render()ed result.
QString whole_minutes(const std::string& rendered) {
  QStringList lines;
  for (const QString& line : QString::fromStdString(rendered).split('\n', Qt::SkipEmptyParts)) {
    QStringList kept;
    for (const QString& part : line.split(' ')) {
      if (!kept.isEmpty() && part.section(':', 0, 0).toLongLong() % 60 != 0) continue;
      kept << part;
    }
    lines << kept.join(' ');
  }
  return lines.join('\n');
}

}  // namespace

class TestPromApi : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void countersAreCumulativeAndIncreaseIsExact_data();
  void countersAreCumulativeAndIncreaseIsExact();
  void aggregationsAndMatchers_data();
  void aggregationsAndMatchers();
  void bucketsCountFromTheSecondAfterThem();
  void windowEdgesNeverLoseRecentData();
  void histogramQuantileOverLeCounters();
  void coarseWindowsLeaveOutTheBucketBeforeTheirStart();
  void promqlLanguage_data();
  void promqlLanguage();
  void sortOrdersAnInstantQuery();
  void gaugesShowTheLastValueWithinTheLookback();
  void distributionsAreSummaries();
  void seriesLabelsAndLabelValues();
  void namesMapByTheDocumentedRule();
  void postFormEqualsGet();
  void grafanaRequestShapes();
  void errorsInPrometheusShape_data();
  void errorsInPrometheusShape();
  void responseShapes();
  void increaseIsAbsentWhereTheCollectorNeverRan();
  void cleanupTestCase();

 private:
  std::string range(const std::string& query, int64_t start, int64_t end, int64_t step) {
    Answer a = prom_->get("/api/v1/query_range", {{"query", query},
                                                  {"start", std::to_string(start)},
                                                  {"end", std::to_string(end)},
                                                  {"step", std::to_string(step)}});
    if (a.status != 200) return "HTTP " + std::to_string(a.status) + " " + a.body;
    return render(a.j["data"], t0_);
  }
  std::string instant(const std::string& query, int64_t time) {
    Answer a = prom_->get("/api/v1/query", {{"query", query}, {"time", std::to_string(time)}});
    if (a.status != 200) return "HTTP " + std::to_string(a.status) + " " + a.body;
    return render(a.j["data"], t0_);
  }
  json data(const std::string& path, const Params& params = {}) {
    Answer a = prom_->get(path, params);
    if (a.status != 200 || !a.j.contains("data")) return json{{"http", a.status}, {"body", a.body}};
    return a.j["data"];
  }

  CollectorProcess collector_;
  std::unique_ptr<PromClient> prom_;
  int64_t t0_ = 0;
  Sketch login_, cart_;
};

void TestPromApi::initTestCase() {
  QVERIFY(collector_.start());
  prom_ = std::make_unique<PromClient>(collector_.http_port());
  // Ten minutes ago, on a whole minute: every bucket is final and every resolution holds it.
  t0_ = bucket_start(now_s() - 600, 60);
  const int64_t t0 = t0_;
  RawProducer p(collector_.ingest());
  // Counters, per minute:                         [t0, t0+60)   [t0+60, t0+120)
  //   api.errors{endpoint=/a,status=500}          3 + 5         7
  //   api.errors{endpoint=/a,status=503}          2             4
  //   api.errors{endpoint=/b,status=500}          11            13
  BatchBuilder counters(101, 1);
  counters.def(1, "api.errors", {{"endpoint", "/a"}, {"status", "500"}})
      .def(2, "api.errors", {{"endpoint", "/a"}, {"status", "503"}})
      .def(3, "api.errors", {{"status", "500"}, {"endpoint", "/b"}})
      .count(1, t0, 3)
      .count(1, t0 + 10, 5)
      .count(1, t0 + 70, 7)
      .count(2, t0 + 30, 2)
      .count(2, t0 + 90, 4)
      .count(3, t0 + 59, 11)
      .count(3, t0 + 60, 13);
  QCOMPARE(p.send(counters.b)->code(), wire::Ack::OK);
  // Gauges: q1 has 3 samples in second t0+5 (last 5) and one in t0+65 (7); q2 one in t0+10 (1).
  BatchBuilder gauges(101, 2);
  gauges.def(4, "queue.depth", {{"queue", "q1"}}, wire::GAUGE)
      .def(5, "queue.depth", {{"queue", "q2"}}, wire::GAUGE)
      .gauge(4, t0 + 5, 5, 2, 9, 16, 3)
      .gauge(4, t0 + 65, 7, 7, 7, 7, 1)
      .gauge(5, t0 + 10, 1, 1, 1, 1, 1);
  QCOMPARE(p.send(gauges.b)->code(), wire::Ack::OK);
  // Distributions: /login observed 1..1000 in second t0+5, /cart 1..100 in t0+65.
  login_ = range_sketch(1, 1000);
  cart_ = range_sketch(1, 100);
  BatchBuilder dists(101, 3);
  dists.def(6, "api.latency_ms", {{"endpoint", "/login"}}, wire::DISTRIBUTION)
      .def(7, "api.latency_ms", {{"endpoint", "/cart"}}, wire::DISTRIBUTION)
      .dist(6, t0 + 5, login_)
      .dist(7, t0 + 65, cart_);
  QCOMPARE(p.send(dists.b)->code(), wire::Ack::OK);
  // Names that collide once mapped, and a tag key with a dot.
  BatchBuilder names(101, 4);
  names.def(8, "web.hits", {{"http.method", "GET"}})
      .def(9, "web_hits", {{"http.method", "POST"}})
      .def(10, "lat", {}, wire::DISTRIBUTION)
      .def(11, "lat.count", {})
      .count(8, t0 + 1, 1)
      .count(9, t0 + 1, 2)
      .count(11, t0 + 1, 4)
      .dist(10, t0 + 1, range_sketch(1, 3));
  QCOMPARE(p.send(names.b)->code(), wire::Ack::OK);
  // Acked means durable; the shards apply it a moment later.
  QVERIFY(eventually([&] {
    return instant("sum(api_errors)", t0 + 120) == "{} 120:45" &&
           instant("sum(queue_depth)", t0 + 120) == "{} 120:8" &&
           instant("sum(api_latency_ms_count)", t0 + 120) == "{} 120:1100" &&
           instant("sum(lat_count)", t0 + 120) == "{} 120:4";
  }));
}

// The batches are stamped from t0, ten minutes before the collector started. rate() and
// increase() over a window the collector never covered and that holds no bucket have no value
// (not an invented 0); over a covered window without data they are 0; the running total is
// there throughout.
void TestPromApi::increaseIsAbsentWhereTheCollectorNeverRan() {
  const json cov = collector_.get("/api/coverage?from=" + std::to_string(t0_));
  QCOMPARE(cov["covered"].size(), size_t(1));
  QVERIFY(cov["covered"][0][0].get<double>() > static_cast<double>(t0_ + 360));
  const std::string q = "increase(api_errors{endpoint=\"/b\"}[1m])";
  QCOMPARE(QString::fromStdString(instant(q, t0_ + 300)), QString(""));
  QCOMPARE(QString::fromStdString(instant("rate(api_errors{endpoint=\"/b\"}[1m])", t0_ + 300)),
           QString(""));
  QCOMPARE(QString::fromStdString(instant("api_errors{endpoint=\"/b\"}", t0_ + 300)),
           QString("api_errors{endpoint=\"/b\",status=\"500\"} 300:24"));
  // Once a whole second of the window is covered (the collector started a moment ago).
  std::string got, want;
  QVERIFY2(eventually([&] {
             const int64_t now = now_s();
             got = instant(q, now);
             want = "{endpoint=\"/b\",status=\"500\"} " + std::to_string(now - t0_) + ":0";
             return got == want;
           }),
           (got + " != " + want).c_str());
}

void TestPromApi::cleanupTestCase() {
  QCOMPARE(collector_.stop(), 0);
}

void TestPromApi::countersAreCumulativeAndIncreaseIsExact_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("expected");
  // Range t0 .. t0+120 step 60. No value at t0: nothing had ended by then.
  QTest::newRow("running total") << "api_errors"
                                 << "api_errors{endpoint=\"/a\",status=\"500\"} 60:8 120:15\n"
                                    "api_errors{endpoint=\"/a\",status=\"503\"} 60:2 120:6\n"
                                    "api_errors{endpoint=\"/b\",status=\"500\"} 60:11 120:24";
  QTest::newRow("increase") << "increase(api_errors[1m])"
                            << "{endpoint=\"/a\",status=\"500\"} 60:8 120:7\n"
                               "{endpoint=\"/a\",status=\"503\"} 60:2 120:4\n"
                               "{endpoint=\"/b\",status=\"500\"} 60:11 120:13";
  QTest::newRow("increase over 2m") << "increase(api_errors{endpoint=\"/b\"}[2m])"
                                    << "{endpoint=\"/b\",status=\"500\"} 60:11 120:24";
  QTest::newRow("rate") << "rate(api_errors{endpoint=\"/a\"}[1m])"
                        << QString::fromStdString("{endpoint=\"/a\",status=\"500\"} 60:" +
                                                  fmt(8.0 / 60) + " 120:" + fmt(7.0 / 60) +
                                                  "\n"
                                                  "{endpoint=\"/a\",status=\"503\"} 60:" +
                                                  fmt(2.0 / 60) + " 120:" + fmt(4.0 / 60));
  QTest::newRow("rate * 60 = increase") << "sum(rate(api_errors[1m])) * 60"
                                        << "{} 60:21 120:24";
  QTest::newRow("scalar") << "1 + 1"
                          << "{} 0:2 60:2 120:2";
  QTest::newRow("unknown metric") << "no_such_metric"
                                  << "";
}

void TestPromApi::countersAreCumulativeAndIncreaseIsExact() {
  QFETCH(QString, query);
  QFETCH(QString, expected);
  QCOMPARE(QString::fromStdString(range(query.toStdString(), t0_, t0_ + 120, 60)), expected);
  // The same numbers from the 1 s and 10 s resolutions (steps that only those divide).
  for (int64_t step : {1, 20, 30})
    QCOMPARE(whole_minutes(range(query.toStdString(), t0_, t0_ + 120, step)), expected);
}

void TestPromApi::aggregationsAndMatchers_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("expected");
  // Instant queries at t0+120: totals 15, 6, 24 (/a 500, /a 503, /b 500).
  const struct {
    const char* query;
    const char* expected;
  } rows[] = {
      {"sum(api_errors)", "{} 120:45"},
      {"sum by (status) (increase(api_errors[2m]))",
       "{status=\"500\"} 120:39\n{status=\"503\"} 120:6"},
      {"sum(increase(api_errors[2m])) by (endpoint)",
       "{endpoint=\"/a\"} 120:21\n{endpoint=\"/b\"} 120:24"},
      {"sum without (status) (api_errors)", "{endpoint=\"/a\"} 120:21\n{endpoint=\"/b\"} 120:24"},
      {"sum without (endpoint, status) (api_errors)", "{} 120:45"},
      {"count(api_errors)", "{} 120:3"},
      {"count by (endpoint) (api_errors)", "{endpoint=\"/a\"} 120:2\n{endpoint=\"/b\"} 120:1"},
      {"min(api_errors)", "{} 120:6"},
      {"max(api_errors)", "{} 120:24"},
      {"avg(api_errors)", "{} 120:15"},
      {"max by (nosuchlabel) (api_errors)", "{} 120:24"},
      {"api_errors{status=~\"5..\"}",
       "api_errors{endpoint=\"/a\",status=\"500\"} "
       "120:15\napi_errors{endpoint=\"/a\",status=\"503\"} "
       "120:6\napi_errors{endpoint=\"/b\",status=\"500\"} 120:24"},
      {"api_errors{status=~\"50\"}", ""},  // anchored: "50" does not match "500"
      {"api_errors{status!~\"50[0-2]\"}", "api_errors{endpoint=\"/a\",status=\"503\"} 120:6"},
      {"api_errors{endpoint!=\"/a\"}", "api_errors{endpoint=\"/b\",status=\"500\"} 120:24"},
      {"api_errors{endpoint=~\"/a|/b\",status=\"500\"}",
       "api_errors{endpoint=\"/a\",status=\"500\"} "
       "120:15\napi_errors{endpoint=\"/b\",status=\"500\"} 120:24"},
      {"api_errors{host=\"\"}",
       "api_errors{endpoint=\"/a\",status=\"500\"} "
       "120:15\napi_errors{endpoint=\"/a\",status=\"503\"} "
       "120:6\napi_errors{endpoint=\"/b\",status=\"500\"} 120:24"},
      {"api_errors{status!=\"\",endpoint=\"/b\"}",
       "api_errors{endpoint=\"/b\",status=\"500\"} 120:24"},
      {"{__name__=~\"api_err.*\",endpoint=\"/b\"}",
       "api_errors{endpoint=\"/b\",status=\"500\"} 120:24"},
      {"{\"api.errors\",endpoint=\"/b\"}", "api_errors{endpoint=\"/b\",status=\"500\"} 120:24"},
      {"-api_errors{endpoint=\"/b\"}", "{endpoint=\"/b\",status=\"500\"} 120:-24"},
      {"api_errors{endpoint=\"/b\"} / 4", "{endpoint=\"/b\",status=\"500\"} 120:6"},
      {"2 ^ 10 % 1000", "120:24"},
  };
  for (const auto& r : rows) QTest::newRow(r.query) << QString(r.query) << QString(r.expected);
}

void TestPromApi::aggregationsAndMatchers() {
  QFETCH(QString, query);
  QFETCH(QString, expected);
  QCOMPARE(QString::fromStdString(instant(query.toStdString(), t0_ + 120)), expected);
}

void TestPromApi::bucketsCountFromTheSecondAfterThem() {
  // /b has 11 in second t0+59 and 13 in t0+60: at time t the buckets that ended by t count.
  QCOMPARE(QString::fromStdString(range("api_errors{endpoint=\"/b\"}", t0_ + 59, t0_ + 61, 1)),
           QString("api_errors{endpoint=\"/b\",status=\"500\"} 60:11 61:24"));
  // At 10 s steps (the 10 s resolution) and with a window that is not a whole minute.
  QCOMPARE(QString::fromStdString(range("api_errors{endpoint=\"/b\"}", t0_ + 50, t0_ + 70, 10)),
           QString("api_errors{endpoint=\"/b\",status=\"500\"} 60:11 70:24"));
  QCOMPARE(QString::fromStdString(range("increase(api_errors{endpoint=\"/a\",status=\"500\"}[10s])",
                                        t0_ + 10, t0_ + 80, 10)),
           QString("{endpoint=\"/a\",status=\"500\"} 10:3 20:5 80:7"));
  // (t0 is before the collector started: the windows without a bucket have no value, as
  // Prometheus has no sample where nothing was scraped; increaseIsAbsentWhereTheCollectorNeverRan.)
  // An instant query at any second (1 s resolution), and the cumulative total long after.
  QCOMPARE(QString::fromStdString(instant("api_errors{endpoint=\"/a\",status=\"500\"}", t0_ + 11)),
           QString("api_errors{endpoint=\"/a\",status=\"500\"} 11:8"));
  QCOMPARE(QString::fromStdString(instant("sum(api_errors)", now_s())).section(':', 1),
           QString("45"));
  // Fractional and RFC 3339 times read as Prometheus reads them. At t0+60.5 second t0+60 has
  // not ended: its sample (at t0+61, as remote-write forwards it) is not there yet, so it does
  // not count (it did, rounding the time up: 34, one second early; tst_promql_compat found it).
  Answer frac = prom_->get(
      "/api/v1/query", {{"query", "sum(api_errors)"}, {"time", std::to_string(t0_ + 60) + ".5"}});
  QCOMPARE(frac.j["data"]["result"][0]["value"][0].get<double>(), double(t0_) + 60.5);
  QCOMPARE(frac.j["data"]["result"][0]["value"][1].get<std::string>(),
           std::string("21"));  // 8 + 2 + 11
  QCOMPARE(QString::fromStdString(range("api_errors{endpoint=\"/b\"}", t0_ + 59, t0_ + 61, 1)),
           QString("api_errors{endpoint=\"/b\",status=\"500\"} 60:11 61:24"));
  Answer frac_range =
      prom_->get("/api/v1/query_range", {{"query", "sum(api_errors{endpoint=\"/b\"})"},
                                         {"start", std::to_string(t0_ + 59) + ".5"},
                                         {"end", std::to_string(t0_ + 61) + ".5"},
                                         {"step", "1"}});
  QCOMPARE(QString::fromStdString(frac_range.j["data"]["result"][0]["values"].dump()),
           QString("[[%1.5,\"11\"],[%2.5,\"24\"]]").arg(t0_ + 60).arg(t0_ + 61));
  const QDateTime at = QDateTime::fromSecsSinceEpoch(t0_ + 120, QTimeZone::utc());
  Answer rfc = prom_->get("/api/v1/query", {{"query", "sum(api_errors)"},
                                            {"time", at.toString(Qt::ISODate).toStdString()}});
  QCOMPARE(rfc.j["data"]["result"][0]["value"][1].get<std::string>(), std::string("45"));
}

// increase(x[7d]) over the last minutes and increase(x[30d]) with all data in the current hour:
// the coarse resolution such a window needs has not closed the bucket that holds the recent
// seconds; they come from the finer resolutions, so the answer is the exact count at every
// second (it was a per-minute staircase, and nothing at all for 30d).
void TestPromApi::windowEdgesNeverLoseRecentData() {
  const int64_t s1 = now_s() - 40, s2 = s1 + 17;
  RawProducer p(collector_.ingest());
  BatchBuilder b(102, 1);
  b.def(20, "edge.hits", {{"k", "v"}}).count(20, s1, 5).count(20, s2, 7);
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  auto at = [&](int64_t t, const std::string& v) { return std::to_string(t - t0_) + ":" + v; };
  QVERIFY(
      eventually([&] { return instant("sum(edge_hits)", s2 + 1) == "{} " + at(s2 + 1, "12"); }));
  for (const char* w : {"7d", "30d", "2y"}) {
    const std::string q = std::string("sum(increase(edge_hits[") + w + "]))";
    QCOMPARE(QString::fromStdString(instant(q, s2 + 1)),
             QString::fromStdString("{} " + at(s2 + 1, "12")));
    QCOMPARE(QString::fromStdString(instant(q, s2)), QString::fromStdString("{} " + at(s2, "5")));
    // A range over the last minute, step 1 s: the exact total at every second.
    std::string expected = "{}";
    for (int64_t t = s1 - 3; t <= s2 + 3; ++t)
      if (t > s1) expected += " " + at(t, t > s2 ? "12" : "5");
    QCOMPARE(QString::fromStdString(range(q, s1 - 3, s2 + 3, 1)), QString::fromStdString(expected));
  }
}

// The language as Prometheus evaluates it, over the fixture (range t0 .. t0+120, step 60):
//   api_errors  A {/a,500} 60:8 120:15   B {/a,503} 60:2 120:6   C {/b,500} 60:11 120:24
//   queue_depth q1 60:5 120:7  q2 60:1 120:1
// "T0" in a query is t0.
// histogram_quantile over counters tagged le (a Prometheus histogram as Tally counters): the
// bucket counts are grouped by their labels without le, as Prometheus's bucketQuantile reads them
// (it was refused: "Tally keeps a distribution as a sketch"; tst_promql_compat compares it with
// Prometheus's own answers).
void TestPromApi::histogramQuantileOverLeCounters() {
  const int64_t s = now_s() - 30;
  RawProducer p(collector_.ingest());
  BatchBuilder b(103, 1);
  b.def(30, "req.dur.bucket", {{"le", "0.1"}})
      .def(31, "req.dur.bucket", {{"le", "0.5"}})
      .def(32, "req.dur.bucket", {{"le", "+Inf"}})
      .def(33, "req.dur.bucket", {{"path", "/x"}})  // no le: skipped
      .count(30, s, 3)
      .count(31, s, 5)
      .count(32, s, 6)
      .count(33, s, 1);
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  QVERIFY(eventually([&] {
    return QString::fromStdString(instant("sum(req_dur_bucket)", s + 1)).endsWith(":15");
  }));
  auto q = [&](const std::string& phi) {
    return QString::fromStdString(instant("histogram_quantile(" + phi + ", req_dur_bucket)", s + 1))
        .section(':', 1);
  };
  QCOMPARE(q("0.5"), QString("0.1"));                 // rank 3 of 6: the top of the first bucket
  QVERIFY(qFuzzyCompare(q("0.6").toDouble(), 0.22));  // 0.1 + 0.4 * (3.6 - 3) / 2
  QCOMPARE(q("0.9"), QString("0.5"));  // in the +Inf bucket: the highest finite bound
  QCOMPARE(q("1.5"), QString("+Inf"));
  QCOMPARE(q("-1"), QString("-Inf"));
  QCOMPARE(QString::fromStdString(instant("histogram_quantile(0.5, req_dur_bucket)", s + 1))
               .section(' ', 0, 0),
           QString("{}"));  // name and le dropped
}

// Windows are closed, [t - w, t], as in Prometheus 2.x, but where a range selector reads a coarse
// resolution (its window older than the 1 s resolution keeps), a bucket ending exactly at t - w
// holds points of its whole span, before the window: it is left out. A collector of its own keeps
// 1 s buckets for 2 minutes only, so data 10 minutes old is read from 10 s buckets.
void TestPromApi::coarseWindowsLeaveOutTheBucketBeforeTheirStart() {
  CollectorProcess c;
  QVERIFY(c.start({"--retention", "1s:2m,10s:1h,1m:1d,1h:2y"}));
  PromClient prom(c.http_port());
  const int64_t t = bucket_start(now_s() - 600, 60);
  RawProducer p(c.ingest());
  BatchBuilder b(104, 1);
  b.def(40, "edge.gauge", {}, wire::GAUGE)
      .gauge(40, t + 3, 1, 1, 1, 1, 1)    // 10 s bucket [t, t+10), sample at t+4 in Prometheus
      .gauge(40, t + 15, 2, 2, 2, 2, 1);  // [t+10, t+20), sample at t+16
  QCOMPARE(p.send(b.b)->code(), wire::Ack::OK);
  auto value = [&](const std::string& q, int64_t at) {
    Answer a = prom.get("/api/v1/query", {{"query", q}, {"time", std::to_string(at)}});
    if (a.status != 200) return "HTTP " + std::to_string(a.status) + " " + a.body;
    const json& r = a.j["data"]["result"];
    return r.empty() ? std::string("none") : r[0]["value"][1].get<std::string>();
  };
  QVERIFY2(eventually([&] { return value("count_over_time(edge_gauge[5m])", t + 60) == "2"; }),
           value("count_over_time(edge_gauge[5m])", t + 60).c_str());
  // [t+10, t+20]: only the bucket [t+10, t+20); [t, t+10) ends at t+10 but its point is at t+3.
  QCOMPARE(QString::fromStdString(value("count_over_time(edge_gauge[10s])", t + 20)), QString("1"));
  QCOMPARE(QString::fromStdString(value("max_over_time(edge_gauge[10s])", t + 20)), QString("2"));
  QCOMPARE(QString::fromStdString(value("count_over_time(edge_gauge[10s])", t + 30)),
           QString("none"));
}

void TestPromApi::promqlLanguage_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("expected");
  const std::string A = "{endpoint=\"/a\",status=\"500\"}", B = "{endpoint=\"/a\",status=\"503\"}",
                    C = "{endpoint=\"/b\",status=\"500\"}";
  const struct {
    std::string query, expected;
  } rows[] = {
      // Vector matching and arithmetic between vectors.
      {"sum(increase(api_errors{status=\"500\"}[1m])) / sum(increase(api_errors[1m]))",
       "{} 60:" + fmt(19.0 / 21) + " 120:" + fmt(20.0 / 24)},
      {"api_errors - api_errors", A + " 60:0 120:0\n" + B + " 60:0 120:0\n" + C + " 60:0 120:0"},
      {"api_errors / on(endpoint) group_left sum by (endpoint) (api_errors)",
       A + " 60:" + fmt(0.8) + " 120:" + fmt(15.0 / 21) + "\n" + B + " 60:" + fmt(0.2) +
           " 120:" + fmt(6.0 / 21) + "\n" + C + " 60:1 120:1"},
      {"api_errors / ignoring(status) group_left sum without (status) (api_errors)",
       A + " 60:" + fmt(0.8) + " 120:" + fmt(15.0 / 21) + "\n" + B + " 60:" + fmt(0.2) +
           " 120:" + fmt(6.0 / 21) + "\n" + C + " 60:1 120:1"},
      {"sum by (endpoint) (api_errors) / on(endpoint) group_right api_errors",
       A + " 60:1.25 120:1.4\n" + B + " 60:5 120:3.5\n" + C + " 60:1 120:1"},
      {"sum by (endpoint) (api_errors) + on(endpoint) sum by (endpoint) (api_errors)",
       "{endpoint=\"/a\"} 60:20 120:42\n{endpoint=\"/b\"} 60:22 120:48"},
      {"1 - api_errors{endpoint=\"/b\"}", C + " 60:-10 120:-23"},
      {"2 atan2 0", "{} 0:" + fmt(std::atan2(2, 0)) + " 60:" + fmt(std::atan2(2, 0)) +
                        " 120:" + fmt(std::atan2(2, 0))},
      // A range selector over names of several kinds: a distribution it does not select is no
      // reason to refuse (it was: "range functions of the quantiles of distribution ...").
      {"count_over_time({endpoint=\"/a\"}[2m])", A + " 60:2 120:3\n" + B + " 60:1 120:2"},
      // Comparisons filter (keeping the name) or, with bool, give 0/1.
      {"api_errors > 10", "api_errors" + A + " 120:15\napi_errors" + C + " 60:11 120:24"},
      {"api_errors > bool 10", A + " 60:0 120:1\n" + B + " 60:0 120:0\n" + C + " 60:1 120:1"},
      {"queue_depth == 7", "queue_depth{queue=\"q1\"} 120:7"},
      {"count(api_errors > 5)", "{} 60:2 120:3"},
      {"2 > bool 1", "{} 0:1 60:1 120:1"},
      {"api_errors > on(endpoint, status) api_errors{endpoint=\"/a\"} - 1",
       A + " 60:8 120:15\n" + B + " 60:2 120:6"},  // on() keeps only its labels
      // Set operators.
      {"api_errors and api_errors{endpoint=\"/b\"}", "api_errors" + C + " 60:11 120:24"},
      {"api_errors unless api_errors{endpoint=\"/b\"}",
       "api_errors" + A + " 60:8 120:15\napi_errors" + B + " 60:2 120:6"},
      {"api_errors{endpoint=\"/b\"} or api_errors{status=\"503\"}",
       "api_errors" + B + " 60:2 120:6\napi_errors" + C + " 60:11 120:24"},
      {"sum(api_errors{endpoint=\"/nope\"}) or vector(0)", "{} 0:0 60:0 120:0"},
      {"api_errors and on(endpoint) (api_errors > 20)", "api_errors" + C + " 120:24"},
      // Aggregations.
      {"topk(1, api_errors)", "api_errors" + C + " 60:11 120:24"},
      {"bottomk(1, api_errors)", "api_errors" + B + " 60:2 120:6"},
      {"topk by (endpoint) (1, api_errors)",
       "api_errors" + A + " 60:8 120:15\napi_errors" + C + " 60:11 120:24"},
      {"quantile(0.5, api_errors)", "{} 60:8 120:15"},
      {"quantile(0.25, api_errors)", "{} 60:5 120:" + fmt(10.5)},
      {"stddev(queue_depth)", "{} 60:2 120:3"},
      {"stdvar(queue_depth)", "{} 60:4 120:9"},
      {"count_values(\"v\", queue_depth)", "{v=\"1\"} 60:1 120:1\n{v=\"5\"} 60:1\n{v=\"7\"} 120:1"},
      {"group by (endpoint) (api_errors)",
       "{endpoint=\"/a\"} 60:1 120:1\n{endpoint=\"/b\"} 60:1 120:1"},
      // Functions.
      {"abs(-api_errors{endpoint=\"/b\"})", C + " 60:11 120:24"},
      {"clamp(api_errors, 5, 12)",
       A + " 60:8 120:12\n" + B + " 60:5 120:6\n" + C + " 60:11 120:12"},
      {"clamp_max(api_errors{endpoint=\"/b\"}, 20)", C + " 60:11 120:20"},
      {"clamp_min(api_errors{endpoint=\"/b\"}, 20)", C + " 60:20 120:24"},
      {"round(increase(api_errors[1m]) / 3)",
       A + " 60:3 120:2\n" + B + " 60:1 120:1\n" + C + " 60:4 120:4"},
      {"sqrt(queue_depth{queue=\"q2\"})", "{queue=\"q2\"} 60:1 120:1"},
      {"label_replace(api_errors{endpoint=\"/b\"}, \"ep\", \"x$1\", \"endpoint\", \"/(.*)\")",
       "api_errors{endpoint=\"/b\",ep=\"xb\",status=\"500\"} 60:11 120:24"},
      {"label_join(api_errors{endpoint=\"/b\"}, \"j\", \"-\", \"endpoint\", \"status\")",
       "api_errors{endpoint=\"/b\",j=\"/b-500\",status=\"500\"} 60:11 120:24"},
      {"time() - T0", "{} 0:0 60:60 120:120"},
      {"scalar(sum(api_errors)) + 1", "{} 0:NaN 60:22 120:46"},
      {"absent(nosuch{job=\"x\"})", "{job=\"x\"} 0:1 60:1 120:1"},
      {"absent(api_errors)", "{} 0:1"},
      {"minute(vector(125)) + day_of_week(vector(0))", "{} 0:6 60:6 120:6"},
      {"days_in_month(vector(1709251200)) + day_of_year(vector(1709251200))",
       "{} 0:92 60:92 120:92"},
      {"month(vector(1709251200)) * 10000 + year(vector(1709251200))",
       "{} 0:32024 60:32024 120:32024"},
      // Range functions: one sample per stored bucket at its end (a counter's running total, a
      // gauge's last value), windows [t - range, t], closed as in Prometheus 2.x: /b's bucket
      // t0+59 ends at t0+60, so it is in [t0+60, t0+120] (it was not, the window left-open).
      {"count_over_time(api_errors[1m])",
       A + " 60:2 120:1\n" + B + " 60:1 120:1\n" + C + " 60:1 120:2"},
      {"irate(api_errors{endpoint=\"/a\"}[2m])",
       A + " 60:0.5 120:" + fmt(7.0 / 60) + "\n" + B + " 120:" + fmt(4.0 / 60)},
      {"idelta(api_errors{endpoint=\"/b\"}[2m])", C + " 120:13"},
      {"changes(api_errors[2m])", A + " 60:1 120:2\n" + B + " 60:0 120:1\n" + C + " 60:0 120:1"},
      {"resets(api_errors{endpoint=\"/b\"}[2m])", C + " 60:0 120:0"},
      {"max_over_time(queue_depth[1m])", "{queue=\"q1\"} 60:5 120:7\n{queue=\"q2\"} 60:1"},
      {"min_over_time(queue_depth{queue=\"q1\"}[2m])", "{queue=\"q1\"} 60:5 120:5"},
      {"last_over_time(queue_depth{queue=\"q1\"}[1m])", "queue_depth{queue=\"q1\"} 60:5 120:7"},
      {"avg_over_time(queue_depth{queue=\"q1\"}[2m])", "{queue=\"q1\"} 60:5 120:6"},
      {"sum_over_time(queue_depth{queue=\"q1\"}[2m])", "{queue=\"q1\"} 60:5 120:12"},
      {"stddev_over_time(queue_depth{queue=\"q1\"}[2m])", "{queue=\"q1\"} 60:0 120:1"},
      {"quantile_over_time(0.5, queue_depth[2m])",
       "{queue=\"q1\"} 60:5 120:6\n{queue=\"q2\"} 60:1 120:1"},
      {"present_over_time(queue_depth{queue=\"q2\"}[1m])", "{queue=\"q2\"} 60:1"},
      {"absent_over_time(queue_depth{queue=\"q2\"}[1m])", "{queue=\"q2\"} 0:1 120:1"},
      {"absent_over_time(nosuch{job=\"x\"}[1m])", "{job=\"x\"} 0:1 60:1 120:1"},
      {"deriv(queue_depth{queue=\"q1\"}[2m])", "{queue=\"q1\"} 120:" + fmt(2.0 / 60)},
      {"delta(queue_depth{queue=\"q1\"}[2m])", "{queue=\"q1\"} 120:4"},  // 2 over 60 s, to 120 s
      {"timestamp(queue_depth{queue=\"q1\"}) - T0", "{queue=\"q1\"} 60:6 120:66"},
      {"timestamp(sum(api_errors)) - T0", "{} 60:60 120:120"},
      // Subqueries: the inner expression at every whole minute, then the range function.
      {"max_over_time(sum(api_errors)[2m:1m])", "{} 60:21 120:45"},
      {"rate(sum(api_errors)[2m:1m])", "{} 120:0.2"},
      {"max_over_time(rate(api_errors{endpoint=\"/b\"}[1m])[2m:1m])",
       C + " 60:" + fmt(11.0 / 60) + " 120:" + fmt(13.0 / 60)},
      // offset and @.
      {"api_errors{endpoint=\"/b\"} offset 1m", "api_errors" + C + " 120:11"},
      {"increase(api_errors{endpoint=\"/b\"}[1m] offset 1m)", C + " 120:11"},
      {"api_errors{endpoint=\"/b\"} @ T60", "api_errors" + C + " 0:11 60:11 120:11"},
      {"sum(api_errors @ end())", "{} 0:45 60:45 120:45"},
  };
  for (const auto& r : rows)
    QTest::newRow(r.query.c_str())
        << QString::fromStdString(r.query) << QString::fromStdString(r.expected);
}

void TestPromApi::promqlLanguage() {
  QFETCH(QString, query);
  QFETCH(QString, expected);
  query.replace("T60", QString::number(t0_ + 60)).replace("T0", QString::number(t0_));
  QCOMPARE(QString::fromStdString(range(query.toStdString(), t0_, t0_ + 120, 60)), expected);
}

void TestPromApi::sortOrdersAnInstantQuery() {
  QCOMPARE(QString::fromStdString(instant("sort_desc(api_errors)", t0_ + 120)),
           QString("api_errors{endpoint=\"/b\",status=\"500\"} 120:24\n"
                   "api_errors{endpoint=\"/a\",status=\"500\"} 120:15\n"
                   "api_errors{endpoint=\"/a\",status=\"503\"} 120:6"));
  QCOMPARE(QString::fromStdString(instant("sort(api_errors)", t0_ + 120)),
           QString("api_errors{endpoint=\"/a\",status=\"503\"} 120:6\n"
                   "api_errors{endpoint=\"/a\",status=\"500\"} 120:15\n"
                   "api_errors{endpoint=\"/b\",status=\"500\"} 120:24"));
}

void TestPromApi::gaugesShowTheLastValueWithinTheLookback() {
  QCOMPARE(QString::fromStdString(range("queue_depth", t0_, t0_ + 120, 60)),
           QString("queue_depth{queue=\"q1\"} 60:5 120:7\nqueue_depth{queue=\"q2\"} 60:1 120:1"));
  QCOMPARE(QString::fromStdString(instant("sum(queue_depth)", t0_ + 120)), QString("{} 120:8"));
  QCOMPARE(QString::fromStdString(instant("max(queue_depth)", t0_ + 120)), QString("{} 120:7"));
  QCOMPARE(QString::fromStdString(instant("avg(queue_depth)", t0_ + 120)), QString("{} 120:4"));
  // q2's only sample (second t0+10) is seen for 5 minutes after it ended, then no more.
  QCOMPARE(QString::fromStdString(instant("queue_depth", t0_ + 310)),
           QString("queue_depth{queue=\"q1\"} 310:7\nqueue_depth{queue=\"q2\"} 310:1"));
  // Exactly 5 minutes old (sample at t0+11) still counts, as in Prometheus 2.x ([t - 5m, t]).
  QCOMPARE(QString::fromStdString(instant("queue_depth", t0_ + 311)),
           QString("queue_depth{queue=\"q1\"} 311:7\nqueue_depth{queue=\"q2\"} 311:1"));
  // At t0+320 the 10 s resolution's bucket [t0+10, t0+20) ends exactly 5 minutes before, but
  // its value was set in second t0+10 (sample at t0+11), outside [t0+20, t0+320]: not shown.
  QCOMPARE(QString::fromStdString(instant("queue_depth{queue=\"q2\"}", t0_ + 320)), QString(""));
  QCOMPARE(QString::fromStdString(instant("queue_depth{queue=\"q2\"}", t0_ + 310)),
           QString("queue_depth{queue=\"q2\"} 310:1"));
  QCOMPARE(QString::fromStdString(instant("queue_depth", t0_ + 312)),
           QString("queue_depth{queue=\"q1\"} 312:7"));
}

void TestPromApi::distributionsAreSummaries() {
  Sketch both = login_;
  both.merge(cart_);
  // _count and _sum are cumulative, like counters.
  QCOMPARE(QString::fromStdString(range("api_latency_ms_count", t0_, t0_ + 120, 60)),
           QString("api_latency_ms_count{endpoint=\"/cart\"} "
                   "120:100\napi_latency_ms_count{endpoint=\"/login\"} 60:1000 120:1000"));
  QCOMPARE(QString::fromStdString(range("api_latency_ms_sum", t0_, t0_ + 120, 60)),
           QString("api_latency_ms_sum{endpoint=\"/cart\"} "
                   "120:5050\napi_latency_ms_sum{endpoint=\"/login\"} 60:500500 120:500500"));
  QCOMPARE(QString::fromStdString(instant("increase(api_latency_ms_count[1m])", t0_ + 120)),
           QString("{endpoint=\"/cart\"} 120:100"));  // /login: no bucket, not covered
  QCOMPARE(QString::fromStdString(instant("sum(rate(api_latency_ms_sum[2m]))", t0_ + 120)),
           QString::fromStdString("{} 120:" + fmt(5050.0 / 120 + 500500.0 / 120)));
  // Quantiles per step: each point covers the step before it; no observations, no point.
  QCOMPARE(QString::fromStdString(range("api_latency_ms{quantile=\"0.99\"}", t0_, t0_ + 120, 60)),
           QString::fromStdString("api_latency_ms{endpoint=\"/cart\",quantile=\"0.99\"} 120:" +
                                  fmt(cart_.quantile(0.99)) + "\n" +
                                  "api_latency_ms{endpoint=\"/login\",quantile=\"0.99\"} 60:" +
                                  fmt(login_.quantile(0.99))));
  // Any quantile can be asked for; the bare name gives 0.5, 0.9 and 0.99 (an instant query
  // covers the minute before its time).
  QCOMPARE(QString::fromStdString(instant("api_latency_ms{quantile=\"0.75\"}", t0_ + 60)),
           QString::fromStdString("api_latency_ms{endpoint=\"/login\",quantile=\"0.75\"} 60:" +
                                  fmt(login_.quantile(0.75))));
  QCOMPARE(QString::fromStdString(instant("api_latency_ms{endpoint=\"/login\"}", t0_ + 60)),
           QString::fromStdString("api_latency_ms{endpoint=\"/login\",quantile=\"0.5\"} 60:" +
                                  fmt(login_.quantile(0.5)) + "\n" +
                                  "api_latency_ms{endpoint=\"/login\",quantile=\"0.9\"} 60:" +
                                  fmt(login_.quantile(0.9)) + "\n" +
                                  "api_latency_ms{endpoint=\"/login\",quantile=\"0.99\"} 60:" +
                                  fmt(login_.quantile(0.99))));
  QCOMPARE(QString::fromStdString(
               instant("api_latency_ms{quantile=~\"0.9.*\",endpoint=\"/login\"}", t0_ + 60))
               .count('\n'),
           1);
  QVERIFY(std::abs(login_.quantile(0.5) - 500) <= 5);
  // tally_quantile merges the sketches of each group: the p99 of everything, per endpoint.
  QCOMPARE(QString::fromStdString(
               range("tally_quantile(0.99, api_latency_ms)", t0_ + 120, t0_ + 120, 120)),
           QString::fromStdString("{} 120:" + fmt(both.quantile(0.99))));
  QCOMPARE(QString::fromStdString(range("tally_quantile by (endpoint) (0.5, api_latency_ms)",
                                        t0_ + 120, t0_ + 120, 120)),
           QString::fromStdString("{endpoint=\"/cart\"} 120:" + fmt(cart_.quantile(0.5)) +
                                  "\n{endpoint=\"/login\"} 120:" + fmt(login_.quantile(0.5))));
  // max of per-series quantiles is what PromQL over summaries gives; it is not the merged p99.
  QCOMPARE(QString::fromStdString(
               range("max(api_latency_ms{quantile=\"0.99\"})", t0_ + 120, t0_ + 120, 120)),
           QString::fromStdString("{} 120:" + fmt(login_.quantile(0.99))));
}

void TestPromApi::seriesLabelsAndLabelValues() {
  QCOMPARE(data("/api/v1/series", {{"match[]", "api_errors{status=\"500\"}"}}),
           json::parse(R"([{"__name__":"api_errors","endpoint":"/a","status":"500"},
                           {"__name__":"api_errors","endpoint":"/b","status":"500"}])"));
  // Two match[] are a union; a summary lists one series per default quantile.
  QCOMPARE(data("/api/v1/series", {{"match[]", "queue_depth{queue=\"q2\"}"},
                                   {"match[]", "api_latency_ms{endpoint=\"/cart\"}"}}),
           json::parse(R"([{"__name__":"api_latency_ms","endpoint":"/cart","quantile":"0.5"},
                           {"__name__":"api_latency_ms","endpoint":"/cart","quantile":"0.9"},
                           {"__name__":"api_latency_ms","endpoint":"/cart","quantile":"0.99"},
                           {"__name__":"queue_depth","queue":"q2"}])"));
  // start and end narrow look-ups to series with data then (at the coarsest resolution's step).
  QCOMPARE(
      data("/api/v1/series", {{"match[]", "api_latency_ms_count"}, {"start", "0"}, {"end", "1"}}),
      json::array());
  QCOMPARE(data("/api/v1/series", {{"match[]", "api_latency_ms_count"},
                                   {"start", std::to_string(t0_)},
                                   {"end", std::to_string(t0_ + 120)}}),
           json::parse(R"([{"__name__":"api_latency_ms_count","endpoint":"/cart"},
                           {"__name__":"api_latency_ms_count","endpoint":"/login"}])"));
  QCOMPARE(data("/api/v1/labels", {{"match[]", "{__name__=~\"api_.*|queue_.*\"}"}}),
           json::parse(R"(["__name__","endpoint","quantile","queue","status"])"));
  QCOMPARE(data("/api/v1/label/endpoint/values"), json::parse(R"(["/a","/b","/cart","/login"])"));
  QCOMPARE(data("/api/v1/label/status/values", {{"match[]", "api_errors{endpoint=\"/a\"}"}}),
           json::parse(R"(["500","503"])"));
  QCOMPARE(data("/api/v1/label/__name__/values", {{"match[]", "{__name__=~\"api_.*\"}"}}),
           json::parse(
               R"(["api_errors","api_latency_ms","api_latency_ms_count","api_latency_ms_sum"])"));
  QCOMPARE(data("/api/v1/label/nosuch/values"), json::array());
  json all_labels = data("/api/v1/labels");
  for (const char* l : {"__name__", "endpoint", "http_method", "quantile", "queue", "status"})
    QVERIFY2(std::find(all_labels.begin(), all_labels.end(), l) != all_labels.end(),
             all_labels.dump().c_str());
  QCOMPARE(
      data("/api/v1/metadata", {{"metric", "api_latency_ms"}}),
      json::parse(
          R"({"api_latency_ms":[{"type":"summary","help":"Tally distribution api.latency_ms","unit":""}]})"));
  json meta = data("/api/v1/metadata");
  QCOMPARE(meta["api_errors"][0]["type"].get<std::string>(), std::string("counter"));
  QCOMPARE(meta["queue_depth"][0]["type"].get<std::string>(), std::string("gauge"));
  QVERIFY(!meta.contains("api_latency_ms_count"));
}

// The requests Grafana 10's Prometheus data source sends (public/app/plugins/datasource/prometheus:
// datasource.ts, language_provider.ts, the query editor's metric and label look-ups), in its
// shapes: POST forms by default, look-ups narrowed by match[] and by the dashboard's time range.
void TestPromApi::grafanaRequestShapes() {
  const std::string start = std::to_string(t0_), end = std::to_string(t0_ + 600);
  const std::string old_start = std::to_string(t0_ - 30 * 86400),
                    old_end = std::to_string(t0_ - 29 * 86400);
  struct Shape {
    bool post;
    std::string path;
    Params params;
    std::string expect;  // a fragment of the body
  };
  const std::vector<Shape> shapes = {
      // "Save & test" and the version check.
      {false, "/api/v1/query", {{"query", "1+1"}, {"time", end}}, R"("result":[)"},
      {false, "/api/v1/status/buildinfo", {}, R"("version":")"},
      // Metric browser: names, labels of a metric, values of a label for a selector.
      {false, "/api/v1/label/__name__/values", {{"start", start}, {"end", end}}, R"("api_errors")"},
      {false, "/api/v1/labels", {{"start", start}, {"end", end}}, R"("endpoint")"},
      {false,
       "/api/v1/labels",
       {{"match[]", "api_errors"}, {"start", start}, {"end", end}},
       R"(["__name__","endpoint","status"])"},
      {false,
       "/api/v1/label/endpoint/values",
       {{"match[]", "api_errors{status=\"500\"}"}, {"start", start}, {"end", end}},
       R"(["/a","/b"])"},
      {false,
       "/api/v1/series",
       {{"match[]", "{__name__=\"queue_depth\"}"}, {"start", start}, {"end", end}},
       R"("queue":"q2")"},
      {false, "/api/v1/metadata", {}, R"("queue_depth":[{"type":"gauge")"},
      // The panels: range and instant queries as POST forms, exemplars asked for.
      {true,
       "/api/v1/query_range",
       {{"query", "sum by (endpoint) (rate(api_errors[1m]))"},
        {"start", start},
        {"end", end},
        {"step", "60"}},
       R"("resultType":"matrix")"},
      {true, "/api/v1/query", {{"query", "sum(api_errors)"}, {"time", end}}, R"("45"])"},
      {true,
       "/api/v1/query_exemplars",
       {{"query", "api_errors"}, {"start", start}, {"end", end}},
       R"("data":[])"},
      // A dashboard range long before the data: the look-ups are empty.
      {false,
       "/api/v1/label/__name__/values",
       {{"start", old_start}, {"end", old_end}},
       R"("data":[])"},
      {false,
       "/api/v1/series",
       {{"match[]", "api_errors"}, {"start", old_start}, {"end", old_end}},
       R"("data":[])"},
  };
  for (const auto& s : shapes) {
    Answer a = s.post ? prom_->post(s.path, s.params) : prom_->get(s.path, s.params);
    QVERIFY2(a.status == 200, (s.path + " -> " + std::to_string(a.status) + " " + a.body).c_str());
    QVERIFY2(a.body.find(R"("status":"success")") != std::string::npos, a.body.c_str());
    QVERIFY2(a.body.find(s.expect) != std::string::npos,
             (s.path + ": no " + s.expect + " in " + a.body).c_str());
  }
}

void TestPromApi::namesMapByTheDocumentedRule() {
  // web.hits and web_hits both map to web_hits: the metric already named so wins; the other
  // stays reachable by its Tally name. lat's derived lat_count loses to the counter lat.count.
  QCOMPARE(QString::fromStdString(instant("web_hits", t0_ + 60)),
           QString("web_hits{http_method=\"POST\"} 60:2"));
  QCOMPARE(QString::fromStdString(instant("{__name__=\"web.hits\"}", t0_ + 60)),
           QString("web_hits{http_method=\"GET\"} 60:1"));
  QCOMPARE(QString::fromStdString(instant("{\"web.hits\"}", t0_ + 60)),
           QString("web_hits{http_method=\"GET\"} 60:1"));
  QCOMPARE(QString::fromStdString(instant("lat_count", t0_ + 60)), QString("lat_count 60:4"));
  QCOMPARE(QString::fromStdString(instant("lat_sum", t0_ + 60)), QString("lat_sum 60:6"));
  // Tag keys map the same way, and a quoted Tally key matches too.
  QCOMPARE(QString::fromStdString(instant("web_hits{http_method=\"POST\"}", t0_ + 60)),
           QString("web_hits{http_method=\"POST\"} 60:2"));
  QCOMPARE(QString::fromStdString(instant("web_hits{\"http.method\"=\"POST\"}", t0_ + 60)),
           QString("web_hits{http_method=\"POST\"} 60:2"));
  json names = data("/api/v1/label/__name__/values", {{"match[]", "{__name__=~\"web.*|lat.*\"}"}});
  QCOMPARE(names, json::parse(R"(["lat","lat_count","lat_sum","web_hits"])"));
}

void TestPromApi::postFormEqualsGet() {
  const std::string t0 = std::to_string(t0_), t1 = std::to_string(t0_ + 120);
  const std::pair<std::string, Params> cases[] = {
      {"/api/v1/query_range",
       {{"query", "sum by (status) (rate(api_errors[1m]))"},
        {"start", t0},
        {"end", t1},
        {"step", "60"}}},
      {"/api/v1/query_range",
       {{"query", "api_latency_ms{quantile=\"0.9\"}"}, {"start", t0}, {"end", t1}, {"step", "1m"}}},
      {"/api/v1/query", {{"query", "api_errors{endpoint=~\"/a|/b\"} * 2"}, {"time", t1}}},
      {"/api/v1/query", {{"query", "1 + 1"}, {"time", t1}}},
      {"/api/v1/series", {{"match[]", "api_errors"}, {"match[]", "queue_depth"}}},
      {"/api/v1/labels", {{"match[]", "queue_depth"}}},
      {"/api/v1/label/queue/values", {}},
      {"/api/v1/query", {{"query", "irate(api_errors[1m])"}, {"time", t1}}},
      {"/api/v1/query", {{"query", "sort_by_label(api_errors, \"status\")"}, {"time", t1}}},
      {"/api/v1/query_range",
       {{"query", "sum(api_errors"}, {"start", t0}, {"end", t1}, {"step", "60"}}},
  };
  for (const auto& [path, params] : cases) {
    Answer g = prom_->get(path, params);
    Answer p = prom_->post(path, params);
    QVERIFY2(g.status != 0, path.c_str());
    QCOMPARE(p.status, g.status);
    QCOMPARE(QString::fromStdString(p.body), QString::fromStdString(g.body));
  }
}

void TestPromApi::errorsInPrometheusShape_data() {
  QTest::addColumn<QString>("path");
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("extra");  // more parameters, "k=v&k=v"
  QTest::addColumn<int>("status");
  QTest::addColumn<QString>("errorType");
  QTest::addColumn<QString>("error");
  const QString q = "/api/v1/query", r = "/api/v1/query_range";
  const QString span = "start=1000&end=2000&step=60";
  // Outside the subset: 422, errorType execution, naming the construct.
  QTest::newRow("sort_by_label") << q << "sort_by_label(api_errors, \"status\")"
                                 << "" << 422 << "execution"
                                 << "function sort_by_label() is not supported";
  QTest::newRow("histogram_count")
      << q << "histogram_count(rate(x[5m]))"
      << "" << 422 << "execution"
      << "function histogram_count() is not supported: Tally has no native histograms";
  // Two series that end up with one label set: an error, as in Prometheus (it was answered).
  QTest::newRow("same labelset") << q << "label_replace(api_errors, \"status\", \"\", \"\", \"\")"
                                 << "" << 422 << "execution"
                                 << "vector cannot contain metrics with the same labelset";
  QTest::newRow("many-to-many") << q << "api_errors + on(endpoint) api_errors"
                                << "" << 422 << "execution"
                                << "found duplicate series for the match group";
  const std::string deep = std::string(200, '(') + "1" + std::string(200, ')');
  QTest::newRow("too deep") << q << QString::fromStdString(deep) << "" << 400 << "bad_data"
                            << "invalid parameter \"query\": 1:129: parse error: query is nested "
                               "more than 128 levels deep (the collector's promql_max_depth)";
  std::string chain = "1";
  for (int i = 0; i < 150; ++i) chain += "+1";
  QTest::newRow("too deep chain")
      << q << QString::fromStdString(chain) << "" << 400 << "bad_data"
      << "invalid parameter \"query\": query is nested more than 128 levels deep";
  QTest::newRow("scalar comparison") << q << "1 > 2"
                                     << "" << 400 << "bad_data"
                                     << "invalid parameter \"query\": comparisons between scalars "
                                        "must use BOOL modifier";
  QTest::newRow("subquery of a scalar") << q << "max_over_time(1[10m:1m])"
                                        << "" << 400 << "bad_data"
                                        << "invalid parameter \"query\": subquery is only allowed "
                                           "on instant vector, got scalar instead";
  QTest::newRow("smoothing factor")
      << q << "holt_winters(queue_depth[5m], 1.5, 0.5)"
      << "" << 400 << "bad_data"
      << "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.500000";
  QTest::newRow("range function of quantiles")
      << q << "max_over_time(api_latency_ms[1m])"
      << "" << 422 << "execution"
      << "range functions of the quantiles of distribution 'api_latency_ms' are not supported";
  QTest::newRow("rate of gauge") << q << "rate(queue_depth[1m])"
                                 << "" << 422 << "execution"
                                 << "rate() of gauge 'queue_depth' is not supported";
  QTest::newRow("rate of quantiles")
      << q << "increase(api_latency_ms[1m])"
      << "" << 422 << "execution"
      << "increase() of the quantiles of distribution 'api_latency_ms' is not supported; use "
         "increase(api_latency_ms_count[..])";
  QTest::newRow("tally_quantile of counter")
      << q << "tally_quantile(0.5, api_errors)"
      << "" << 422 << "execution"
      << "tally_quantile needs a distribution; 'api_errors' is a counter";
  QTest::newRow("raw samples")
      << q << "api_errors[5m]"
      << "" << 422 << "execution"
      << "a range vector as the query's result (raw samples) is not supported";
  // Bad queries and parameters: 400, errorType bad_data, Prometheus's wording.
  QTest::newRow("parse")
      << q << "sum(api_errors"
      << "" << 400 << "bad_data"
      << "invalid parameter \"query\": 1:4: parse error: unclosed left parenthesis";
  QTest::newRow("empty")
      << q << ""
      << "" << 400 << "bad_data"
      << "invalid parameter \"query\": 1:1: parse error: no expression found in input";
  QTest::newRow("type") << q << "rate(api_errors)"
                        << "" << 400 << "bad_data"
                        << "invalid parameter \"query\": expected type range vector in call to "
                           "function \"rate\", got instant vector";
  QTest::newRow("unknown fn") << q << "foo(api_errors)"
                              << "" << 400 << "bad_data"
                              << "invalid parameter \"query\": unknown function with name \"foo\"";
  QTest::newRow("range result") << r << "api_errors[5m]" << span << 400 << "bad_data"
                                << "invalid expression type \"range vector\" for range query, must "
                                   "be Scalar or instant Vector";
  QTest::newRow("bad quantile")
      << q << "api_latency_ms{quantile=\"p99\"}"
      << "" << 400 << "bad_data"
      << "quantile=\"p99\" of distribution 'api_latency_ms' is not a number between 0 and 1";
  QTest::newRow("bad time")
      << q << "api_errors"
      << "time=yesterday" << 400 << "bad_data"
      << "invalid parameter \"time\": cannot parse \"yesterday\" to a valid timestamp";
  QTest::newRow("no start")
      << r << "api_errors"
      << "end=2000&step=60" << 400 << "bad_data"
      << "invalid parameter \"start\": cannot parse \"\" to a valid timestamp";
  QTest::newRow("end before start")
      << r << "api_errors"
      << "start=2000&end=1000&step=60" << 400 << "bad_data"
      << "invalid parameter \"end\": end timestamp must not be before start time";
  QTest::newRow("no step") << r << "api_errors"
                           << "start=1000&end=2000" << 400 << "bad_data"
                           << "invalid parameter \"step\": cannot parse \"\" to a valid duration";
  QTest::newRow("zero step") << r << "api_errors"
                             << "start=1000&end=2000&step=0" << 400 << "bad_data"
                             << "invalid parameter \"step\": zero or negative query resolution "
                                "step widths are not accepted. Try a positive integer";
  QTest::newRow("too many points") << r << "api_errors"
                                   << "start=0&end=100000&step=1" << 400 << "bad_data"
                                   << "exceeded maximum resolution of 11,000 points per "
                                      "timeseries. Try decreasing the query resolution (?step=XX)";
  QTest::newRow("series without match") << "/api/v1/series"
                                        << ""
                                        << "" << 400 << "bad_data"
                                        << "no match[] parameter provided";
  QTest::newRow("series bad match")
      << "/api/v1/series"
      << ""
      << "match[]=rate(x[5m])" << 400 << "bad_data"
      << "invalid parameter \"match[]\": 1:1: parse error: expected a series selector";
  QTest::newRow("label name") << "/api/v1/label/bad.name/values"
                              << ""
                              << "" << 400 << "bad_data"
                              << "invalid label name: \"bad.name\"";
}

void TestPromApi::errorsInPrometheusShape() {
  QFETCH(QString, path);
  QFETCH(QString, query);
  QFETCH(QString, extra);
  QFETCH(int, status);
  QFETCH(QString, errorType);
  QFETCH(QString, error);
  auto rejected = [&] {
    auto [s, text] = collector_.get_raw("/metrics");
    auto at = text.find("\ntally_queries_rejected_total ");
    return at == std::string::npos ? -1 : std::atoi(text.c_str() + at + 30);
  };
  const int before = rejected();
  Params params;
  if (!query.isEmpty() || path.endsWith("query") || path.endsWith("query_range"))
    params.emplace_back("query", query.toStdString());
  for (const auto& kv : extra.split('&', Qt::SkipEmptyParts))
    params.emplace_back(kv.section('=', 0, 0).toStdString(), kv.section('=', 1).toStdString());
  Answer a = prom_->get(path.toStdString(), params);
  QCOMPARE(a.status, status);
  QCOMPARE(QString::fromStdString(a.j.value("status", "")), QString("error"));
  QCOMPARE(QString::fromStdString(a.j.value("errorType", "")), errorType);
  QCOMPARE(QString::fromStdString(a.j.value("error", "")).left(error.size()), error);
  QCOMPARE(rejected(), before + 1);  // counted as a rejected query
}

void TestPromApi::responseShapes() {
  // Exactly Prometheus's envelope and field order for each result type.
  const std::string t1 = std::to_string(t0_ + 120);
  Answer m = prom_->get("/api/v1/query_range", {{"query", "sum(api_errors)"},
                                                {"start", std::to_string(t0_ + 60)},
                                                {"end", t1},
                                                {"step", "60"}});
  QCOMPARE(
      QString::fromStdString(m.body),
      QString::fromStdString(
          R"({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[)" +
          std::to_string(t0_ + 60) + R"(,"21"],[)" + t1 + R"(,"45"]]}]}})"));
  Answer v = prom_->get("/api/v1/query", {{"query", "api_errors{endpoint=\"/b\"}"}, {"time", t1}});
  QCOMPARE(
      QString::fromStdString(v.body),
      QString::fromStdString(
          R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"api_errors","endpoint":"/b","status":"500"},"value":[)" +
          t1 + R"(,"24"]}]}})"));
  Answer s = prom_->get("/api/v1/query", {{"query", "1/0"}, {"time", t1 + ".25"}});
  QCOMPARE(
      QString::fromStdString(s.body),
      QString::fromStdString(R"({"status":"success","data":{"resultType":"scalar","result":[)" +
                             t1 + R"(.25,"+Inf"]}})"));
  Answer e = prom_->get("/api/v1/query", {{"query", "limitk(1, api_errors)"}});
  QCOMPARE(
      QString::fromStdString(e.body),
      QString(
          R"({"status":"error","errorType":"execution","error":"aggregation limitk is not supported; Tally supports sum, avg, min, max, count, group, stddev, stdvar, topk, bottomk, quantile, count_values, tally_quantile"})"));
  Answer ex =
      prom_->post("/api/v1/query_exemplars",
                  {{"query", "sum(rate(api_errors[5m]))"}, {"start", "1000"}, {"end", "2000"}});
  QCOMPARE(QString::fromStdString(ex.body), QString(R"({"status":"success","data":[]})"));
  json b = data("/api/v1/status/buildinfo");
  QVERIFY(!b.value("version", "").empty());
  QVERIFY(b.contains("revision") && b.contains("goVersion"));
}

QTEST_GUILESS_MAIN(TestPromApi)
#include "tst_prom_api.moc"
