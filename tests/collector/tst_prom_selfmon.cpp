// Self-monitoring as Prometheus sees it: the collector's /metrics passes `promtool check
// metrics`, and a real Prometheus server (Debian package prometheus, started here on loopback
// with a config this test writes) scrapes it until its own query API shows exactly the batches
// this test sent.
#include <QtTest>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "collector_process.h"
#include "free_port.h"
#include "server_process.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::testing;

namespace {

// Runs promtool check metrics on `text`; returns (exit code, what it printed).
std::pair<int, QString> promtool_check(const QString& promtool, const std::string& text) {
  QProcess p;
  p.setProcessChannelMode(QProcess::MergedChannels);
  p.start(promtool, {"check", "metrics"});
  if (!p.waitForStarted(5000)) return {-1, "promtool did not start"};
  p.write(text.data(), static_cast<qint64>(text.size()));
  p.closeWriteChannel();
  if (!p.waitForFinished(20000)) return {-1, "promtool did not finish"};
  return {p.exitCode(), QString::fromUtf8(p.readAll())};
}

// Sends hand-made traffic: `ok` new batches, one duplicate, one malformed frame.
void send_traffic(const CollectorProcess& c, int ok) {
  RawProducer p(c.ingest());
  const int64_t t = SystemClock::instance().now_s() - 5;
  for (int i = 1; i <= ok; ++i) {
    wire::Batch b;
    b.set_producer_id(77);
    b.set_seq(static_cast<uint64_t>(i));
    if (i == 1) {
      auto* d = b.add_defs();
      d->set_ref(1);
      d->set_metric("selfmon.hits");
      d->set_kind(wire::COUNTER);
    }
    b.mutable_counters()->add_refs(1);
    b.mutable_counters()->add_times(t);
    b.mutable_counters()->add_values(i);
    auto ack = p.send(b);
    QVERIFY(ack && ack->code() == wire::Ack::OK);
    if (i == ok) {
      auto dup = p.send(b);
      QVERIFY(dup && dup->code() == wire::Ack::DUPLICATE);
    }
  }
  auto bad = p.send_frame("not a batch");
  QVERIFY(bad && bad->code() == wire::Ack::INVALID);
}

}  // namespace

class TestPromSelfMonitoring : public QObject {
  Q_OBJECT
 private slots:
  void metricsPassPromtoolCheck();
  void promtoolCatchesBrokenExposition_data();
  void promtoolCatchesBrokenExposition();
  void prometheusScrapesTheExactBatchCount();
  void producerClockSkewIsShownAndLoggedOnce();
};

// A producer whose clock is an hour ahead is listed in tally_producer_clock_skew_seconds and
// logged once, however many batches it sends; a producer with a good clock is not listed.
void TestPromSelfMonitoring::producerClockSkewIsShownAndLoggedOnce() {
  CollectorProcess c;
  const QString log = c.temp_path() + "/collector.log";
  QVERIFY(c.start({"--log-file", log}));
  RawProducer p(c.ingest());
  const int64_t now_ms = SystemClock::instance().now_ms();
  for (uint64_t producer : {0xABCDEFull, 0x123456ull}) {
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      wire::Batch b;
      b.set_producer_id(producer);
      b.set_seq(seq);
      b.set_sent_unix_ms(producer == 0xABCDEF ? now_ms + 3600 * 1000 : now_ms);
      auto ack = p.send(b);
      QVERIFY(ack && ack->code() == wire::Ack::OK);
    }
  }
  auto [status, metrics] = c.get_raw("/metrics");
  QCOMPARE(status, 200);
  const std::string prefix = "tally_producer_clock_skew_seconds{producer=\"0000000000abcdef\"} ";
  const size_t at = metrics.find(prefix);
  QVERIFY2(at != std::string::npos, metrics.c_str());
  const double skew = std::stod(metrics.substr(at + prefix.size()));
  QVERIFY2(skew > 3590 && skew <= 3600, std::to_string(skew).c_str());
  QVERIFY(metrics.find("producer=\"0000000000123456\"") == std::string::npos);
  QCOMPARE(c.stop(), 0);
  std::ifstream in(log.toStdString());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t lines = 0;
  for (size_t pos = 0; (pos = text.find("event=producer_clock_skew", pos)) != std::string::npos;
       ++pos)
    ++lines;
  QCOMPARE(lines, size_t(1));
  QVERIFY(text.find("producer=0000000000abcdef") != std::string::npos);
}

void TestPromSelfMonitoring::metricsPassPromtoolCheck() {
  const QString promtool = QStandardPaths::findExecutable("promtool");
  if (promtool.isEmpty())
    QSKIP("promtool not installed (installer/install-deps.sh installs the prometheus package)");
  CollectorProcess c;
  QVERIFY(c.start());
  // Fresh, then after traffic and queries (every family has samples, latency summaries non-zero).
  auto [s0, fresh] = c.get_raw("/metrics");
  QCOMPARE(s0, 200);
  auto [rc0, out0] = promtool_check(promtool, fresh);
  QVERIFY2(rc0 == 0 && out0.trimmed().isEmpty(), qPrintable(out0));
  send_traffic(c, 3);
  c.get_raw("/api/v1/query?query=sum(selfmon_hits)");
  c.get_raw("/api/v1/query?query=sum(selfmon_hits");  // a rejected query (a parse error)
  c.get_raw("/api/query?metric=selfmon.hits");
  QVERIFY(eventually([&] {
    return c.get_raw("/metrics").second.find("tally_batches_received_total 5\n") !=
           std::string::npos;
  }));
  auto [s1, busy] = c.get_raw("/metrics");
  auto [rc1, out1] = promtool_check(promtool, busy);
  QVERIFY2(rc1 == 0 && out1.trimmed().isEmpty(),
           qPrintable(out1 + "\n" + QString::fromStdString(busy)));
  QVERIFY(busy.find("tally_queries_rejected_total 1\n") != std::string::npos);
}

void TestPromSelfMonitoring::promtoolCatchesBrokenExposition_data() {
  // Controls: the check above means something only if promtool fails these.
  QTest::addColumn<QString>("text");
  QTest::newRow("counter without _total")
      << "# HELP x_hits Hits.\n# TYPE x_hits counter\nx_hits 1\n";
  QTest::newRow("no HELP") << "# TYPE x_total counter\nx_total 1\n";
  QTest::newRow("syntax") << "# HELP x_total Hits.\n# TYPE x_total counter\nx_total{a=\"b\" 1\n";
}

void TestPromSelfMonitoring::promtoolCatchesBrokenExposition() {
  QFETCH(QString, text);
  const QString promtool = QStandardPaths::findExecutable("promtool");
  if (promtool.isEmpty()) QSKIP("promtool not installed");
  auto [rc, out] = promtool_check(promtool, text.toStdString());
  QVERIFY2(rc != 0, qPrintable(out));
}

void TestPromSelfMonitoring::prometheusScrapesTheExactBatchCount() {
  const QString prometheus = QStandardPaths::findExecutable("prometheus");
  if (prometheus.isEmpty())
    QSKIP("prometheus not installed (installer/install-deps.sh installs it)");
  CollectorProcess c;
  QVERIFY(c.start());
  const int port = free_port();
  QVERIFY(port > 0);
  const QString dir = c.temp_path() + "/prometheus";
  QVERIFY(QDir().mkpath(dir + "/data"));
  {
    std::ofstream cfg((dir + "/prometheus.yml").toStdString());
    cfg << "global:\n"
           "  scrape_interval: 1s\n"
           "  scrape_timeout: 1s\n"
           "  evaluation_interval: 1s\n"
           "scrape_configs:\n"
           "  - job_name: tally\n"
           "    static_configs:\n"
           "      - targets: ['127.0.0.1:"
        << c.http_port() << "']\n";
  }
  ServerProcess prom;
  QVERIFY(prom.start(
      prometheus,
      {"--config.file=" + dir + "/prometheus.yml", "--storage.tsdb.path=" + dir + "/data",
       "--web.listen-address=127.0.0.1:" + QString::number(port), "--log.level=warn"},
      port, "/-/ready", 30000));

  send_traffic(c, 5);  // 5 new + 1 duplicate + 1 malformed = 7 frames received

  httplib::Client api("127.0.0.1", port);
  api.set_read_timeout(5, 0);
  auto value = [&](const std::string& query) -> std::string {
    auto r = api.Get("/api/v1/query", httplib::Params{{"query", query}}, httplib::Headers{});
    if (!r || r->status != 200) return {};
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j["data"]["result"].empty()) return {};
    return j["data"]["result"][0]["value"][1].get<std::string>();
  };
  // Prometheus starts, scrapes every second; wait for the count, not for time.
  const bool seen = eventually(
      [&] { return value("tally_batches_received_total{job=\"tally\"}") == "7"; }, 45000);
  QVERIFY2(seen, qPrintable("Prometheus shows '" +
                            QString::fromStdString(value("tally_batches_received_total")) +
                            "' (its log is above: the server's output is forwarded)"));
  QCOMPARE(QString::fromStdString(value("tally_batches_duplicate_total")), QString("1"));
  QCOMPARE(QString::fromStdString(value("tally_batches_rejected_total")), QString("1"));
  QCOMPARE(QString::fromStdString(value(
               "up{job=\"tally\",instance=\"127.0.0.1:" + std::to_string(c.http_port()) + "\"}")),
           QString("1"));
  // Prometheus stored the samples as the types /metrics declared (a summary's quantiles included).
  QVERIFY(!value("tally_query_latency_seconds{quantile=\"0.99\"}").empty());
}

QTEST_GUILESS_MAIN(TestPromSelfMonitoring)
#include "tst_prom_selfmon.moc"
