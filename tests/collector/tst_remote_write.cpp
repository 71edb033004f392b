// Remote-write forwarding (collector/forward/remote_write.h).
//   - the mapping from final buckets to Prometheus samples, as tables;
//   - the real collector against a fake receiver: the request format, retries on 5xx, no retry on
//     4xx, and the counters that report both;
//   - the real collector against a real VictoriaMetrics (Debian package victoria-metrics, started
//     here on loopback): what the SDK emitted, late points and a restart included, must come back
//     exactly through VictoriaMetrics' API; and a VictoriaMetrics that starts late still gets it.
#include <QtTest>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <snappy.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "collector_process.h"
#include "config.h"
#include "forward/remote_write.h"
#include "free_port.h"
#include "remote_write.pb.h"
#include "server_process.h"
#include "tally/client.h"
#include "tally/common/sketch.h"
#include "tally/common/wire.h"

using namespace tally;
using namespace tally::collector;
using namespace tally::testing;

namespace {

int64_t now_s() {
  return SystemClock::instance().now_s();
}

wire::LiveUpdate update(wire::Kind kind, wire::LiveUpdate::State state, int64_t t, double value,
                        std::vector<std::pair<std::string, std::string>> tags = {},
                        const std::string& metric = "m") {
  wire::LiveUpdate u;
  u.set_metric(metric);
  u.set_kind(kind);
  u.set_state(state);
  u.set_resolution_s(1);
  u.set_time(t);
  u.set_value(value);
  u.set_sum(value);
  for (auto& [k, v] : tags) {
    auto* tag = u.add_tags();
    tag->set_key(k);
    tag->set_value(v);
  }
  return u;
}
wire::LiveUpdate correction(wire::Kind kind, int64_t t, double merged, double added) {
  auto u = update(kind, wire::LiveUpdate::CORRECTION, t, merged);
  u.set_added_sum(added);
  u.set_added_count(static_cast<uint64_t>(added));
  return u;
}

std::string label(const PromSample& s, const std::string& name) {
  for (const auto& [k, v] : s.series->labels())
    if (k == name) return v;
  return "<none>";
}

// (time ms, value) of every sample of one name, in order.
std::vector<std::pair<int64_t, double>> points(const std::vector<PromSample>& s,
                                               const std::string& name) {
  std::vector<std::pair<int64_t, double>> out;
  for (const auto& p : s)
    if (label(p, "__name__") == name) out.emplace_back(p.time_ms, p.value);
  return out;
}
using Points = std::vector<std::pair<int64_t, double>>;

// Decodes a remote-write body: snappy, then prometheus.WriteRequest.
bool decode(const std::string& body, prometheus::WriteRequest* req) {
  std::string raw;
  return snappy::Uncompress(body.data(), body.size(), &raw) && req->ParseFromString(raw);
}

// A real VictoriaMetrics single-node server on a loopback port with a temporary data directory.
class VictoriaMetrics {
 public:
  explicit VictoriaMetrics(int port) : port_(port) {}
  ~VictoriaMetrics() { stop(); }
  static QString binary() { return QStandardPaths::findExecutable("victoria-metrics"); }

  bool start() {
    // latencyOffset: fresh samples are visible to queries at once; no cache between polls.
    return server_.start(binary(),
                         {"-httpListenAddr=127.0.0.1:" + QString::number(port_),
                          "-storageDataPath=" + dir_.path(), "-retentionPeriod=1d",
                          "-search.latencyOffset=1s", "-search.disableCache", "-loggerLevel=ERROR"},
                         port_, "/health", 15000);
  }
  void stop() { server_.stop(); }
  int port() const { return port_; }
  std::string write_url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/api/v1/write";
  }

  // Raw samples of the series a selector matches: labels (without __name__) -> values in time
  // order.
  std::map<std::string, std::vector<double>> exported(const std::string& selector) const {
    httplib::Client c("127.0.0.1", port_);
    std::map<std::string, std::vector<double>> out;
    auto r = c.Get("/api/v1/export", httplib::Params{{"match[]", selector}}, httplib::Headers{});
    if (!r || r->status != 200) return out;
    std::istringstream lines(r->body);
    for (std::string line; std::getline(lines, line);) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      std::string key;
      for (auto& [k, v] : j["metric"].items())
        if (k != "__name__") key += (key.empty() ? "" : ",") + k + "=" + v.get<std::string>();
      // Samples are in time order per series; ties keep VictoriaMetrics' order.
      auto& values = out[key];
      for (const auto& v : j["values"])
        values.push_back(v.is_number() ? v.get<double>() : std::nan(""));
    }
    return out;
  }
  // Last raw value per series (label string -> value).
  std::map<std::string, double> last(const std::string& selector) const {
    std::map<std::string, double> out;
    for (auto& [k, v] : exported(selector))
      if (!v.empty()) out[k] = v.back();
    return out;
  }
  // An instant query; result per series (label string without __name__ -> value).
  std::map<std::string, double> query(const std::string& promql) const {
    httplib::Client c("127.0.0.1", port_);
    std::map<std::string, double> out;
    auto r = c.Get("/api/v1/query",
                   httplib::Params{{"query", promql}, {"time", std::to_string(now_s())}},
                   httplib::Headers{});
    if (!r || r->status != 200) return out;
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded()) return out;
    for (const auto& s : j["data"]["result"]) {
      std::string key;
      for (auto& [k, v] : s["metric"].items())
        if (k != "__name__") key += (key.empty() ? "" : ",") + k + "=" + v.get<std::string>();
      out[key] = std::stod(s["value"][1].get<std::string>());
    }
    return out;
  }

 private:
  int port_;
  QTemporaryDir dir_;
  ServerProcess server_;
};

QStringList remote_write_args(const std::string& url, const char* instance) {
  return {"--remote-write-url",
          QString::fromStdString(url),
          "--remote-write-label",
          QString("instance=") + instance,
          "--remote-write-flush-interval",
          "200ms",
          "--remote-write-min-backoff",
          "50ms",
          "--remote-write-max-backoff",
          "500ms",
          "--lateness",
          "1s"};
}

// What the SDK part of the VictoriaMetrics tests emits, and what it must read back.
struct Emitted {
  std::map<std::string, double> hits;  // label string -> total
  double latency_count = 0, latency_sum = 0;
  double last_depth = 0;
};

// Counts over several seconds on 5 series with a dotted tag key, a gauge and a distribution.
void emit_through_sdk(const std::string& endpoint, int rounds, Emitted* e, const char* instance) {
  ClientOptions o;
  o.endpoint = endpoint;
  o.flush_interval = std::chrono::milliseconds(200);
  Client client(o);
  for (int r = 0; r < rounds; ++r) {
    for (int s = 0; s < 5; ++s) {
      const int n = 10 * s + r + 1;
      client.count("rw.hits", n, {{"series", std::to_string(s)}, {"http.method", "GET"}});
      e->hits["http_method=GET,instance=" + std::string(instance) +
              ",series=" + std::to_string(s)] += n;
    }
    client.set_gauge("rw.queue-depth", 100 + r);
    e->last_depth = 100 + r;
    for (int v = 1; v <= 10; ++v) {
      client.observe("rw.latency_ms", v * (r + 1));
      e->latency_count += 1;
      e->latency_sum += v * (r + 1);
    }
    QThread::msleep(400);  // the load's pace: the rounds spread over several 1 s buckets
  }
  QVERIFY(client.flush(std::chrono::seconds(10)));
}

}  // namespace

class TestRemoteWrite : public QObject {
  Q_OBJECT
 private slots:
  void countersAreCumulativeFromAZeroSample();
  void correctionsAddWhatTheyAddedAtTheNewestTime();
  void replayedBucketsAfterARestartStartAfterTheFloor();
  void gaugeSamplesNeverGoBackInTime();
  void distributionsBecomeCountSumAndQuantiles();
  void labelsFollowTheReadApiNames();
  void idleSeriesAreForgottenAndRestartFromZero();
  void requestGroupsSamplesBySeries();
  void optionsAreChecked_data();
  void optionsAreChecked();
  void configFileKeys_data();
  void configFileKeys();

  void receiverSeesTheProtocolAndRetriesOnlyServerErrors();
  void fullBufferDropsTheOldestButCountersKeepTheirTotal();
  void victoriaMetricsHoldsExactlyWhatWasEmitted();
  void victoriaMetricsStartingLateStillGetsEverything();
};

// ---------------------------------------------------------------------------------------------
// Mapping, as tables

void TestRemoteWrite::countersAreCumulativeFromAZeroSample() {
  PromSampleMapper m(1000'000, {});
  std::vector<PromSample> out;
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1000, 3), &out);
  m.map(update(wire::COUNTER, wire::LiveUpdate::PARTIAL, 1001, 99), &out);  // ignored
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1001, 2), &out);
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1005, 0.5), &out);
  // A bucket's sample carries its end: [1000, 1001) -> 1001000 ms.
  QCOMPARE(points(out, "m"),
           (Points{{1000'999, 0}, {1001'000, 3}, {1002'000, 5}, {1006'000, 5.5}}));
}

void TestRemoteWrite::correctionsAddWhatTheyAddedAtTheNewestTime() {
  PromSampleMapper m(1000'000, {});
  std::vector<PromSample> out;
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1000, 3), &out);
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1001, 2), &out);
  m.map(correction(wire::COUNTER, 1000, 4, 1), &out);  // bucket 1000 is now 4: one more
  m.map(correction(wire::COUNTER, 1000, 7, 3), &out);  // and three more
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1002, 1), &out);
  QCOMPARE(points(out, "m"), (Points{{1000'999, 0},
                                     {1001'000, 3},
                                     {1002'000, 5},
                                     {1002'001, 6},
                                     {1002'002, 9},
                                     {1003'000, 10}}));
  // A correction of a bucket this forwarder never saw (an earlier run sent it): only what it added.
  PromSampleMapper fresh(5000'000, {});
  out.clear();
  fresh.map(correction(wire::COUNTER, 4000, 50, 2), &out);
  QCOMPARE(points(out, "m"), (Points{{5000'000, 0}, {5000'001, 2}}));
}

void TestRemoteWrite::replayedBucketsAfterARestartStartAfterTheFloor() {
  // Started at t = 2000 s; the log replays buckets of 1990 s: stamped after the start, so they
  // follow everything the previous run sent.
  PromSampleMapper m(2000'000, {});
  std::vector<PromSample> out;
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1990, 5), &out);
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 1991, 1), &out);
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 2001, 1), &out);
  QCOMPARE(points(out, "m"), (Points{{2000'000, 0}, {2000'001, 5}, {2000'002, 6}, {2002'000, 7}}));
  out.clear();
  m.map(update(wire::GAUGE, wire::LiveUpdate::FINAL, 1990, 5, {}, "g"),
        &out);  // a gauge cannot move
  QCOMPARE(out.size(), size_t(0));
  QCOMPARE(m.skipped(), uint64_t(1));
}

void TestRemoteWrite::gaugeSamplesNeverGoBackInTime() {
  PromSampleMapper m(1000'000, {});
  std::vector<PromSample> out;
  m.map(update(wire::GAUGE, wire::LiveUpdate::FINAL, 1000, 7), &out);
  m.map(update(wire::GAUGE, wire::LiveUpdate::FINAL, 1002, 9), &out);
  m.map(update(wire::GAUGE, wire::LiveUpdate::CORRECTION, 1001, 8),
        &out);  // older than 1002: not sent
  m.map(update(wire::GAUGE, wire::LiveUpdate::FINAL, 1003, -1.5), &out);
  QCOMPARE(points(out, "m"), (Points{{1001'000, 7}, {1003'000, 9}, {1004'000, -1.5}}));
  QCOMPARE(m.skipped(), uint64_t(1));
}

void TestRemoteWrite::distributionsBecomeCountSumAndQuantiles() {
  PromSampleMapper m(1000'000, {});
  Sketch sk;
  for (int v = 1; v <= 100; ++v) sk.add(v);
  auto u = update(wire::DISTRIBUTION, wire::LiveUpdate::FINAL, 1000, 100, {}, "lat.ms");
  u.set_count(100);
  u.set_sum(5050);
  sketch_to_proto(sk, u.mutable_sketch());
  std::vector<PromSample> out;
  m.map(u, &out);
  QCOMPARE(points(out, "lat_ms_count"), (Points{{1000'999, 0}, {1001'000, 100}}));
  QCOMPARE(points(out, "lat_ms_sum"), (Points{{1000'999, 0}, {1001'000, 5050}}));
  std::map<std::string, double> q;
  for (const auto& s : out)
    if (label(s, "__name__") == "lat_ms") q[label(s, "quantile")] = s.value;
  QCOMPARE(q.size(), size_t(3));
  QVERIFY(std::abs(q["0.5"] - 50) <= 0.5 + 1);
  QVERIFY(std::abs(q["0.9"] - 90) <= 0.9 + 1);
  QVERIFY(std::abs(q["0.99"] - 99) <= 1 + 1);
  // A correction adds to _count and _sum what the late observations added.
  out.clear();
  auto c = update(wire::DISTRIBUTION, wire::LiveUpdate::CORRECTION, 1000, 102, {}, "lat.ms");
  c.set_count(102);
  c.set_sum(5250);
  c.set_added_count(2);
  c.set_added_sum(200);
  m.map(c, &out);
  QCOMPARE(points(out, "lat_ms_count"), (Points{{1001'001, 102}}));
  QCOMPARE(points(out, "lat_ms_sum"), (Points{{1001'001, 5250}}));
}

void TestRemoteWrite::labelsFollowTheReadApiNames() {
  PromSampleMapper m(0, {{"instance", "c1"}, {"dc", "eu"}, {"empty", ""}});
  std::vector<PromSample> out;
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 10, 1,
               {{"__secret", "x"},
                {"http.method", "GET"},
                {"http_method", "POST"},
                {"instance", "from-tag"}},
               "api.latency-ms"),
        &out);
  QCOMPARE(out.size(), size_t(2));
  // Sorted by name; '.'/'-' -> '_'; the first of two keys that map to one name wins; reserved
  // __ names are left out; a tag beats a configured label; an empty value is no label.
  const PromLabels want = {{"__name__", "api_latency_ms"},
                           {"dc", "eu"},
                           {"http_method", "GET"},
                           {"instance", "from-tag"}};
  QCOMPARE(out[0].series->labels(), want);
  QCOMPARE(out[0].series.get(), out[1].series.get());  // one label set per series, shared
}

void TestRemoteWrite::idleSeriesAreForgottenAndRestartFromZero() {
  PromSampleMapper m(0, {});
  std::vector<PromSample> out;
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 10, 4), &out);
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 100, 1, {{"k", "v"}}), &out);
  QCOMPARE(m.series(), size_t(2));
  QCOMPARE(m.forget_idle(50'000), size_t(1));
  out.clear();
  m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, 200, 2), &out);
  // A restart from 0 after a higher total: remote stores read it as a counter reset.
  QCOMPARE(points(out, "m"), (Points{{200'999, 0}, {201'000, 2}}));
}

void TestRemoteWrite::requestGroupsSamplesBySeries() {
  PromSampleMapper m(0, {{"instance", "c1"}});
  std::vector<PromSample> out;
  for (int t = 10; t < 13; ++t) {
    m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, t, 1, {{"s", "a"}}), &out);
    m.map(update(wire::COUNTER, wire::LiveUpdate::FINAL, t, 2, {{"s", "b"}}), &out);
  }
  prometheus::WriteRequest req;
  QVERIFY(decode(encode_write_request(out), &req));
  QCOMPARE(req.timeseries_size(), 2);
  const auto& a = req.timeseries(0);
  QCOMPARE(a.labels_size(), 3);
  QCOMPARE(a.labels(0).name(), std::string("__name__"));
  QCOMPARE(a.labels(1).name(), std::string("instance"));
  QCOMPARE(a.labels(2).value(), std::string("a"));
  QCOMPARE(a.samples_size(), 4);  // 0, then 1, 2, 3
  for (int i = 1; i < a.samples_size(); ++i)
    QVERIFY(a.samples(i).timestamp() > a.samples(i - 1).timestamp());
  QCOMPARE(a.samples(3).value(), 3.0);
  QCOMPARE(req.timeseries(1).samples(3).value(), 6.0);

  // The hand-written encoding against the generated parser: odd values, long strings, big times.
  auto series = std::make_shared<const PromSeries>(
      PromLabels{{"__name__", "g"}, {"long", std::string(300, 'x')}, {"utf8", "größe"}});
  std::vector<PromSample> odd = {{series, 0, 0.0},
                                 {series, 1, -2.25},
                                 {series, 1'800'000'000'000, 1e300},
                                 {series, INT64_C(1) << 62, -0.0}};
  prometheus::WriteRequest r2;
  QVERIFY(decode(encode_write_request(odd), &r2));
  QCOMPARE(r2.timeseries_size(), 1);
  QCOMPARE(r2.timeseries(0).labels(1).value(), std::string(300, 'x'));
  QCOMPARE(r2.timeseries(0).labels(2).value(), std::string("größe"));
  QCOMPARE(series->labels()[1].second, std::string(300, 'x'));  // a two-byte length read back
  QCOMPARE(r2.timeseries(0).samples_size(), 4);
  for (int i = 0; i < 4; ++i) {
    QCOMPARE(r2.timeseries(0).samples(i).timestamp(), odd[static_cast<size_t>(i)].time_ms);
    QCOMPARE(r2.timeseries(0).samples(i).value(), odd[static_cast<size_t>(i)].value);
  }
  QVERIFY(decode(encode_write_request({}), &r2));
  QCOMPARE(r2.timeseries_size(), 0);
}

void TestRemoteWrite::optionsAreChecked_data() {
  QTest::addColumn<QString>("url");
  QTest::addColumn<QString>("label");
  QTest::addColumn<bool>("ok");
  QTest::newRow("off") << ""
                       << "" << true;
  QTest::newRow("http") << "http://vm:8428/api/v1/write"
                        << "" << true;
  QTest::newRow("https") << "https://mimir.example/api/v1/push"
                         << "cluster=eu" << true;
  QTest::newRow("no path") << "http://127.0.0.1:8480"
                           << "" << true;
  QTest::newRow("scheme") << "ftp://vm/api/v1/write"
                          << "" << false;
  QTest::newRow("no scheme") << "vm:8428/api/v1/write"
                             << "" << false;
  QTest::newRow("reserved label") << "http://vm/w"
                                  << "__name__=x" << false;
  QTest::newRow("dotted label") << "http://vm/w"
                                << "a.b=x" << false;
  QTest::newRow("header") << "http://vm/w"
                          << "H:X-Scope-OrgID: t1" << true;
  QTest::newRow("bad header") << "http://vm/w"
                              << "H:Bad Header: t1" << false;
}

void TestRemoteWrite::optionsAreChecked() {
  QFETCH(QString, url);
  QFETCH(QString, label);
  QFETCH(bool, ok);
  RemoteWriteOptions o;
  o.url = url.toStdString();
  if (label.startsWith("H:"))
    QVERIFY(o.add_header(label.mid(2).toStdString()).is_ok());
  else if (!label.isEmpty())
    QVERIFY(o.set_label(label.toStdString()).is_ok());
  QCOMPARE(o.validate().is_ok(), ok);
  QCOMPARE(parse_duration_ms("250ms").value(), int64_t(250));
  QCOMPARE(parse_duration_ms("2s").value(), int64_t(2000));
  QVERIFY(!parse_duration_ms("-5ms").has_value());
  QCOMPARE(format_duration_ms(1500), std::string("1500ms"));
  QCOMPARE(format_duration_ms(60000), std::string("1m"));
}

void TestRemoteWrite::configFileKeys_data() {
  QTest::addColumn<QString>("toml");
  QTest::addColumn<QString>("error");  // empty = must load
  QTest::newRow("off") << ""
                       << "";
  QTest::newRow("all keys")
      << "remote_write_url = \"http://vm:8428/api/v1/write\"\nremote_write_labels = { instance = "
         "\"c1\", dc = \"eu\" }\n"
         "remote_write_headers = { \"X-Scope-OrgID\" = \"t\" }\nremote_write_max_samples = 500\n"
         "remote_write_flush_interval = \"250ms\"\nremote_write_max_buffered = "
         "10000\nremote_write_timeout = \"3s\"\n"
         "remote_write_min_backoff = \"10ms\"\nremote_write_max_backoff = \"1m\"\n"
      << "";
  QTest::newRow("labels not a table") << "remote_write_labels = \"instance=c1\""
                                      << "must be a table";
  QTest::newRow("bad label name")
      << "remote_write_url = \"http://vm/w\"\nremote_write_labels = { \"a-b\" = \"x\" }"
      << "label name";
  QTest::newRow("bad duration") << "remote_write_flush_interval = \"soon\""
                                << "remote_write_flush_interval";
  QTest::newRow("buffer below request")
      << "remote_write_url = \"http://vm/w\"\nremote_write_max_buffered = 10"
      << "max_buffered";
  QTest::newRow("typo") << "remote_write_uri = \"http://vm/w\""
                        << "unknown setting";
}

void TestRemoteWrite::configFileKeys() {
  QFETCH(QString, toml);
  QFETCH(QString, error);
  QTemporaryDir dir;
  const std::string path = (dir.path() + "/c.toml").toStdString();
  std::ofstream(path) << toml.toStdString();
  auto c = load_config_file(path, CollectorConfig());
  Status s = c.has_value() ? c->validate() : c.status();
  if (!error.isEmpty()) {
    QVERIFY(!s.is_ok());
    QVERIFY2(s.message().find(error.toStdString()) != std::string::npos, s.message().c_str());
    return;
  }
  QVERIFY2(s.is_ok(), s.to_string().c_str());
  if (QTest::currentDataTag() == QString("all keys")) {
    const RemoteWriteOptions& o = c->remote_write;
    QCOMPARE(o.labels,
             (std::vector<std::pair<std::string, std::string>>{{"dc", "eu"}, {"instance", "c1"}}));
    QCOMPARE(o.headers.size(), size_t(1));
    QCOMPARE(o.max_samples_per_request, uint64_t(500));
    QCOMPARE(o.flush_interval_ms, int64_t(250));
    QCOMPARE(o.max_buffered_samples, uint64_t(10000));
    QCOMPARE(o.timeout_ms, int64_t(3000));
    QCOMPARE(o.min_backoff_ms, int64_t(10));
    QCOMPARE(o.max_backoff_ms, int64_t(60000));
    QVERIFY(config_to_toml(*c).find("remote_write_labels = { dc = \"eu\", instance = \"c1\" }") !=
            std::string::npos);
  } else {
    QVERIFY(!c->remote_write.enabled());
    QVERIFY(c->remote_write.labels.empty());  // no default label while forwarding is off
  }
}

// ---------------------------------------------------------------------------------------------
// The real collector against a fake receiver

void TestRemoteWrite::receiverSeesTheProtocolAndRetriesOnlyServerErrors() {
  // The receiver answers 503 twice, then takes everything; later it answers 400.
  std::mutex mu;
  std::atomic<int> requests{0}, failures_left{2};
  std::atomic<bool> reject{false};
  std::map<std::string, std::string> headers;
  std::map<std::string, double> last;  // __name__ + labels -> newest value
  bool ordered = true;
  std::map<std::string, int64_t> newest_ts;
  httplib::Server server;
  server.Post("/api/v1/write", [&](const httplib::Request& req, httplib::Response& res) {
    ++requests;
    {
      std::lock_guard lock(mu);
      for (const char* h : {"Content-Encoding", "Content-Type", "X-Prometheus-Remote-Write-Version",
                            "X-Scope-OrgID"})
        headers[h] = req.get_header_value(h);
    }
    if (failures_left.fetch_sub(1) > 0) {
      res.status = 503;
      return;
    }
    if (reject) {
      res.status = 400;
      res.set_content("out of bounds", "text/plain");
      return;
    }
    prometheus::WriteRequest w;
    if (!decode(req.body, &w)) {
      res.status = 400;
      return;
    }
    std::lock_guard lock(mu);
    for (const auto& ts : w.timeseries()) {
      std::string key;
      for (const auto& l : ts.labels()) key += l.name() + "=" + l.value() + ",";
      for (const auto& s : ts.samples()) {
        if (newest_ts.count(key) && s.timestamp() <= newest_ts[key]) ordered = false;
        newest_ts[key] = s.timestamp();
        last[key] = s.value();
      }
    }
    res.status = 204;
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  QVERIFY(port > 0);
  std::thread serving([&] { server.listen_after_bind(); });
  struct Join {
    httplib::Server& s;
    std::thread& t;
    ~Join() {
      s.stop();
      t.join();
    }
  } join{server, serving};

  CollectorProcess c;
  QVERIFY(c.start(
      remote_write_args("http://127.0.0.1:" + std::to_string(port) + "/api/v1/write", "fake") +
      QStringList{"--no-self-metrics", "--remote-write-header", "X-Scope-OrgID: team-a"}));
  RawProducer p(c.ingest());
  wire::Batch b;
  b.set_producer_id(7);
  b.set_seq(1);
  auto* d = b.add_defs();
  d->set_ref(1);
  d->set_metric("fake.hits");
  d->set_kind(wire::COUNTER);
  const int64_t t = now_s();
  for (int i = 0; i < 3; ++i) {
    b.mutable_counters()->add_refs(1);
    b.mutable_counters()->add_times(t - i);
    b.mutable_counters()->add_values(10 + i);
  }
  auto ack = p.send(b);
  QVERIFY(ack && ack->code() == wire::Ack::OK);

  const std::string key = "__name__=fake_hits,instance=fake,";
  QVERIFY(eventually(
      [&] {
        std::lock_guard lock(mu);
        return last.count(key) && last[key] == 33;
      },
      20000));
  {
    std::lock_guard lock(mu);
    QCOMPARE(headers["Content-Encoding"], std::string("snappy"));
    QCOMPARE(headers["Content-Type"], std::string("application/x-protobuf"));
    QCOMPARE(headers["X-Prometheus-Remote-Write-Version"], std::string("0.1.0"));
    QCOMPARE(headers["X-Scope-OrgID"], std::string("team-a"));  // --remote-write-header
    QVERIFY(ordered);
  }
  QVERIFY(eventually(
      [&] { return metric(c, "tally_remote_write_samples_total") >= 4; }));  // 0 + 3 buckets
  QCOMPARE(metric(c, "tally_remote_write_failed_requests_total"), 2.0);
  QCOMPARE(metric(c, "tally_remote_write_retries_total"), 2.0);
  QCOMPARE(metric(c, "tally_remote_write_dropped_samples_total"), 0.0);

  // 4xx: counted as failed and dropped, never retried.
  reject = true;
  const int before = requests.load();
  b.set_seq(2);
  b.clear_defs();
  b.mutable_counters()->Clear();
  b.mutable_counters()->add_refs(1);
  b.mutable_counters()->add_times(now_s());
  b.mutable_counters()->add_values(5);
  ack = p.send(b);
  QVERIFY(ack && ack->code() == wire::Ack::OK);
  QVERIFY(eventually([&] { return metric(c, "tally_remote_write_dropped_samples_total") >= 1; }));
  QCOMPARE(metric(c, "tally_remote_write_failed_requests_total"), 3.0);
  // That nothing more comes is the point: a retry would have come by now (max backoff 500 ms).
  QThread::msleep(1200);
  QCOMPARE(requests.load(), before + 1);
  QCOMPARE(metric(c, "tally_remote_write_retries_total"), 2.0);
  QCOMPARE(metric(c, "tally_remote_write_queue_samples"), 0.0);
  QCOMPARE(c.stop(), 0);
}

void TestRemoteWrite::fullBufferDropsTheOldestButCountersKeepTheirTotal() {
  // A receiver that answers 503 until told otherwise, then keeps the newest value per series.
  std::mutex mu;
  std::atomic<bool> up{false};
  std::map<std::string, double> last;
  httplib::Server server;
  server.Post("/w", [&](const httplib::Request& req, httplib::Response& res) {
    prometheus::WriteRequest w;
    if (!up || !decode(req.body, &w)) {
      res.status = 503;
      return;
    }
    std::lock_guard lock(mu);
    for (const auto& ts : w.timeseries())
      for (const auto& smp : ts.samples()) last[ts.labels(0).value()] = smp.value();
    res.status = 204;
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { server.listen_after_bind(); });
  struct Join {
    httplib::Server& s;
    std::thread& t;
    ~Join() {
      s.stop();
      t.join();
    }
  } join{server, serving};

  CollectorProcess c;
  // Room for 2 waiting samples and 1 in flight: a counter with 6 buckets must overflow it.
  QVERIFY(c.start(remote_write_args("http://127.0.0.1:" + std::to_string(port) + "/w", "full") +
                  QStringList{"--no-self-metrics", "--remote-write-max-samples", "1",
                              "--remote-write-max-buffered", "2"}));
  double sent = 0;
  {
    ClientOptions o;
    o.endpoint = c.ingest();
    o.flush_interval = std::chrono::milliseconds(200);
    Client client(o);
    auto hits = client.counter("full.hits");
    for (int i = 0; i < 6; ++i) {
      hits.add(i + 1);
      sent += i + 1;
      QThread::msleep(1000);  // one bucket (and one remote-write sample) per second: the point
    }
    QVERIFY(client.flush(std::chrono::seconds(10)));
  }
  QVERIFY(eventually([&] { return metric(c, "tally_remote_write_dropped_samples_total") >= 3; },
                     15000));
  up = true;
  // The newest cumulative sample carries every count, including those of the dropped samples.
  QVERIFY(eventually(
      [&] {
        std::lock_guard lock(mu);
        return last["full_hits"] == sent;
      },
      15000));
  QCOMPARE(metric(c, "tally_remote_write_queue_samples"), 0.0);
  QCOMPARE(c.stop(), 0);
}

// ---------------------------------------------------------------------------------------------
// The real collector against a real VictoriaMetrics

void TestRemoteWrite::victoriaMetricsHoldsExactlyWhatWasEmitted() {
  if (VictoriaMetrics::binary().isEmpty())
    QSKIP("victoria-metrics not installed (installer/install-deps.sh installs it)");
  VictoriaMetrics vm(free_port());
  QVERIFY(vm.start());
  CollectorProcess c;
  QVERIFY(c.start(remote_write_args(vm.write_url(), "c1")));

  // Late points: two batches for a second that is long final, by hand.
  RawProducer p(c.ingest());
  const int64_t old = now_s() - 20;
  for (uint64_t seq : {1, 2}) {
    wire::Batch b;
    b.set_producer_id(42);
    b.set_seq(seq);
    auto* d = b.add_defs();
    d->set_ref(1);
    d->set_metric("rw.late");
    d->set_kind(wire::COUNTER);
    b.mutable_counters()->add_refs(1);
    b.mutable_counters()->add_times(old);
    b.mutable_counters()->add_values(seq == 1 ? 5 : 3);
    auto ack = p.send(b);
    QVERIFY(ack && ack->code() == wire::Ack::OK);
    // Each its own correction: once the shard has applied this point (counted as late) its pass
    // flushes the correction before it takes the next batch.
    QVERIFY(eventually([&] { return metric(c, "tally_late_points_total") >= double(seq); }));
  }

  Emitted e;
  emit_through_sdk(c.ingest(), 5, &e, "c1");
  if (QTest::currentTestFailed()) return;
  // Stopping right away: the collector finalises and sends the last seconds before it exits.
  QCOMPARE(c.stop(), 0);

  auto hits_ok = [&] { return vm.last("rw_hits") == e.hits; };
  QVERIFY(eventually(hits_ok, 20000));
  QCOMPARE(vm.last("rw_hits"), e.hits);
  QCOMPARE(vm.last("rw_late"), (std::map<std::string, double>{{"instance=c1", 8}}));
  QCOMPARE(vm.last("rw_queue_depth"),
           (std::map<std::string, double>{{"instance=c1", e.last_depth}}));
  QCOMPARE(vm.last("rw_latency_ms_count"),
           (std::map<std::string, double>{{"instance=c1", e.latency_count}}));
  QCOMPARE(vm.last("rw_latency_ms_sum"),
           (std::map<std::string, double>{{"instance=c1", e.latency_sum}}));
  auto quantiles = vm.last("rw_latency_ms");
  QCOMPARE(quantiles.size(), size_t(3));
  QVERIFY(quantiles.count("instance=c1,quantile=0.99"));
  // The last second observed at most 50 (1% sketch accuracy).
  for (const char* q : {"0.5", "0.9", "0.99"}) {
    const double v = quantiles[std::string("instance=c1,quantile=") + q];
    QVERIFY2(v > 0 && v <= 50.5, q);
  }
  // Through VictoriaMetrics' own functions: increase() over the whole run is the emitted total.
  QCOMPARE(vm.query("sum(increase(rw_hits[10m]))")[""],
           std::accumulate(e.hits.begin(), e.hits.end(), 0.0,
                           [](double a, auto& kv) { return a + kv.second; }));
  QCOMPARE(vm.query("increase(rw_late[10m])")["instance=c1"], 8.0);

  // A restart: totals start again from 0, which VictoriaMetrics reads as a counter reset, so
  // increase() over both runs is still everything that was emitted.
  QVERIFY(c.start(remote_write_args(vm.write_url(), "c1")));
  Emitted more;
  emit_through_sdk(c.ingest(), 2, &more, "c1");
  if (QTest::currentTestFailed()) return;
  QCOMPARE(c.stop(), 0);
  std::map<std::string, double> both = e.hits;
  for (auto& [k, v] : more.hits) both[k] += v;
  QVERIFY(eventually([&] { return vm.last("rw_hits") == more.hits; }, 20000));
  auto increase = vm.query("increase(rw_hits[10m])");
  QCOMPARE(increase.size(), both.size());
  for (auto& [k, v] : both) QCOMPARE(increase[k], v);
  QCOMPARE(vm.query("increase(rw_latency_ms_count[10m])")["instance=c1"],
           e.latency_count + more.latency_count);
}

void TestRemoteWrite::victoriaMetricsStartingLateStillGetsEverything() {
  if (VictoriaMetrics::binary().isEmpty())
    QSKIP("victoria-metrics not installed (installer/install-deps.sh installs it)");
  VictoriaMetrics vm(free_port());  // not started yet: nobody listens on its port
  CollectorProcess c;
  QVERIFY(c.start(remote_write_args(vm.write_url(), "c2")));
  Emitted e;
  emit_through_sdk(c.ingest(), 3, &e, "c2");
  if (QTest::currentTestFailed()) return;
  // The collector keeps the samples and retries with backoff.
  QVERIFY(eventually([&] { return metric(c, "tally_remote_write_retries_total") >= 2; }, 15000));
  QVERIFY(metric(c, "tally_remote_write_failed_requests_total") >= 2);
  QVERIFY(metric(c, "tally_remote_write_queue_samples") > 0);
  QCOMPARE(metric(c, "tally_remote_write_samples_total"), 0.0);

  QVERIFY(vm.start());
  QVERIFY(eventually([&] { return vm.last("rw_hits") == e.hits; }, 20000));
  QCOMPARE(vm.last("rw_latency_ms_count"),
           (std::map<std::string, double>{{"instance=c2", e.latency_count}}));
  QCOMPARE(vm.last("rw_queue_depth"),
           (std::map<std::string, double>{{"instance=c2", e.last_depth}}));
  QVERIFY(eventually([&] { return metric(c, "tally_remote_write_queue_samples") == 0; }));
  QCOMPARE(metric(c, "tally_remote_write_dropped_samples_total"), 0.0);
  QCOMPARE(c.stop(), 0);
}

QTEST_GUILESS_MAIN(TestRemoteWrite)
#include "tst_remote_write.moc"
