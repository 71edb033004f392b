// The `tally` command-line tool: its output formats as unit tables, then the real binary against
// a real tally-collector child process (exit codes, emit -> query round trips, metrics, tags,
// tail over the live stream).
#include <QtTest>

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_run.h"
#include "collector_http.h"
#include "commands.h"
#include "exit_codes.h"
#include "output.h"
#include "tally.pb.h"
#include "tally/common/wire.h"

using namespace tally;
using namespace tally::cli;
using nlohmann::json;

namespace {

using Run = tally::testing::CliRun;

}  // namespace

class TestCli : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void cleanupTestCase();

  // Output and URL handling, no processes.
  void csvQuoting_data();
  void csvQuoting();
  void numbers_data();
  void numbers();
  void times_data();
  void times();
  void annotationTimes_data();
  void annotationTimes();
  void annotationsTable();
  void collectorUrl_data();
  void collectorUrl();
  void queryTables();
  void liveUpdateFormats();

  // The binary against a collector.
  void exitCodes_data();
  void exitCodes();
  void emitThenQueryGivesExactSums();
  void emitDistributionAndGauge();
  void metricsAndTags();
  void cardinalityNamesTheLargest();
  void emitToUnreachableIngestExits2();
  void tailFollowsLiveUpdates();
  void tailNeverConnectedExits2();
  void tailEndsCleanlyOnSigterm();

 private:
  Run tally(const QStringList& args, int timeout_ms = 30000);
  json queryJson(const QStringList& extra);

  QTemporaryDir dir_;
  QProcess collector_;
  QString http_;
  QString ingest_;
  QString live_;
};

Run TestCli::tally(const QStringList& args, int timeout_ms) {
  return tally::testing::run_tally_cli(
      QStringList{"--collector", http_, "--ingest", ingest_, "--live", live_} + args, timeout_ms);
}

void TestCli::initTestCase() {
  QVERIFY(dir_.isValid());
  const QString ready = dir_.filePath("ready.json");
  collector_.setProcessChannelMode(QProcess::ForwardedErrorChannel);
  collector_.start(
      TALLY_COLLECTOR_BIN,
      {"--data-dir", dir_.filePath("data"), "--http", "127.0.0.1:0", "--ingest",
       "tcp://127.0.0.1:*", "--live", "tcp://127.0.0.1:*", "--statsd", "off", "--no-self-metrics",
       "--shards", "2", "--log-level", "warn", "--ready-file", ready});
  QVERIFY2(collector_.waitForStarted(10000), qPrintable(collector_.errorString()));
  QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(ready), 20000);
  QFile f(ready);
  QVERIFY(f.open(QIODevice::ReadOnly));
  json j = json::parse(f.readAll().toStdString());
  http_ = QString("http://127.0.0.1:%1").arg(j["http_port"].get<int>());
  ingest_ = QString::fromStdString(j["ingest"].get<std::string>());
  live_ = QString::fromStdString(j["live"].get<std::string>());
}

void TestCli::cleanupTestCase() {
  if (collector_.state() == QProcess::NotRunning) return;
  collector_.terminate();
  if (!collector_.waitForFinished(20000)) {
    collector_.kill();
    collector_.waitForFinished();
    QFAIL("the collector did not stop on SIGTERM");
  }
  QCOMPARE(collector_.exitCode(), 0);
}

// ---------------------------------------------------------------------------------------------

void TestCli::csvQuoting_data() {
  QTest::addColumn<QString>("in");
  QTest::addColumn<QString>("out");
  QTest::newRow("plain") << "eu-west"
                         << "eu-west";
  QTest::newRow("comma") << "a,b"
                         << "\"a,b\"";
  QTest::newRow("quote") << "say \"hi\""
                         << "\"say \"\"hi\"\"\"";
  QTest::newRow("newline") << "a\nb"
                           << "\"a\nb\"";
  QTest::newRow("empty") << ""
                         << "";
  // A text cell a spreadsheet would run is written as text; numbers stay numbers.
  QTest::newRow("formula") << "=HYPERLINK(\"http://x\")"
                           << "\"'=HYPERLINK(\"\"http://x\"\")\"";
  QTest::newRow("at") << "@SUM(A1)"
                      << "\"'@SUM(A1)\"";
  QTest::newRow("minus text") << "-x"
                              << "\"'-x\"";
  QTest::newRow("negative number") << "-3"
                                   << "-3";
  QTest::newRow("exponent") << "-1.5e+20"
                            << "-1.5e+20";
  QTest::newRow("plus") << "+1"
                        << "\"'+1\"";
}

void TestCli::csvQuoting() {
  QFETCH(QString, in);
  QFETCH(QString, out);
  QCOMPARE(QString::fromStdString(csv_field(in.toStdString())), out);
}

void TestCli::numbers_data() {
  QTest::addColumn<double>("v");
  QTest::addColumn<QString>("full");
  QTest::addColumn<QString>("short_");
  QTest::newRow("integer") << 3.0 << "3"
                           << "3";
  QTest::newRow("big integer") << 123456789.0 << "123456789"
                               << "123456789";
  QTest::newRow("tenth") << 0.1 << "0.1"
                         << "0.1";
  QTest::newRow("sum of tenths") << (0.1 + 0.2) << "0.30000000000000004"
                                 << "0.3";
  QTest::newRow("negative") << -2.5 << "-2.5"
                            << "-2.5";
  QTest::newRow("long fraction") << 35.123456789 << "35.123456789"
                                 << "35.1235";
  QTest::newRow("nan is missing") << std::nan("") << ""
                                  << "";
}

void TestCli::numbers() {
  QFETCH(double, v);
  QFETCH(QString, full);
  QFETCH(QString, short_);
  QCOMPARE(QString::fromStdString(format_number(v)), full);
  QCOMPARE(QString::fromStdString(format_number_short(v)), short_);
  if (!std::isnan(v)) QCOMPARE(std::stod(format_number(v)), v);  // round-trips
}

void TestCli::times_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<qint64>("unix");
  QTest::newRow("Z") << "2023-11-14T22:13:20Z" << qint64(1700000000);
  QTest::newRow("no Z") << "2023-11-14T22:13:20" << qint64(1700000000);
  QTest::newRow("date") << "2023-11-14" << qint64(1699920000);
  QTest::newRow("relative is not a time") << "-1h" << qint64(-1);
  QTest::newRow("unix is not a time") << "1700000000" << qint64(-1);
  QTest::newRow("junk after") << "2023-11-14T22:13:20Zx" << qint64(-1);
  // The one RFC 3339 parser (common/time_text.h), as the Prometheus API reads times.
  QTest::newRow("offset") << "2023-11-15T00:13:20+02:00" << qint64(1700000000);
  QTest::newRow("fraction") << "2023-11-14T22:13:20.750Z" << qint64(1700000000);
  QTest::newRow("month 13") << "2023-13-14T22:13:20Z" << qint64(-1);
}

void TestCli::times() {
  QFETCH(QString, text);
  QFETCH(qint64, unix);
  auto t = parse_time_utc(text.toStdString());
  QCOMPARE(t ? static_cast<qint64>(*t) : qint64(-1), unix);
  if (t && !text.contains('+'))  // in UTC, the date reads back
    QCOMPARE(QString::fromStdString(format_time_utc(*t)).left(10), text.left(10));
}

void TestCli::annotationTimes_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<double>("seconds");  // -1: refused
  QTest::newRow("now") << "now" << 1700000000.5;
  QTest::newRow("empty is now") << "" << 1700000000.5;
  QTest::newRow("relative") << "-1h" << 1699996400.5;
  QTest::newRow("relative ms") << "-250ms" << 1700000000.25;
  QTest::newRow("unix with fraction") << "1600000000.125" << 1600000000.125;
  QTest::newRow("unix") << "1600000000" << 1600000000.0;
  QTest::newRow("iso") << "2024-05-01T12:00:00Z" << 1714564800.0;
  QTest::newRow("words") << "yesterday" << -1.0;
  QTest::newRow("bad duration") << "-1x" << -1.0;
  QTest::newRow("trailing junk") << "1600000000s" << -1.0;
}

void TestCli::annotationTimes() {
  QFETCH(QString, text);
  QFETCH(double, seconds);
  auto t = annotation_time(text.toStdString(), 1700000000.5);
  QCOMPARE(t ? *t : -1.0, seconds);
}

void TestCli::annotationsTable() {
  const json body = json::parse(R"({"annotations":[
    {"id":7,"time":1714564800.25,"end":1714564860,"title":"Deploy","text":"a\nb",
     "tags":{"env":"prod","service":"web"},"source":"api"},
    {"id":8,"time":1714564900,"title":"Incident, \"big\"","text":"","tags":{},
     "source":"dogstatsd"}],"truncated":true})");
  const TextTable table = annotations_table(body, true);
  QCOMPARE(table.header,
           (std::vector<std::string>{"ID", "TIME", "END", "TITLE", "TAGS", "SOURCE", "TEXT"}));
  QCOMPARE(table.rows.size(), size_t(2));
  QCOMPARE(table.rows[0],
           (std::vector<std::string>{"7", "2024-05-01T12:00:00Z", "2024-05-01T12:01:00Z", "Deploy",
                                     "env=prod,service=web", "api", "a b"}));
  QCOMPARE(table.rows[1][2], std::string(""));  // no end
  QCOMPARE(table.notes.size(), size_t(1));
  std::ostringstream csv;
  write_csv(annotations_table(body, false), csv);
  QCOMPARE(csv.str(), std::string("ID,TIME,END,TITLE,TAGS,SOURCE,TEXT\n"
                                  "7,1714564800.25,1714564860,Deploy,\"env=prod,service=web\",api,"
                                  "\"a\nb\"\n"
                                  "8,1714564900,,\"Incident, \"\"big\"\"\",,dogstatsd,\n"));
}

void TestCli::collectorUrl_data() {
  QTest::addColumn<QString>("url");
  QTest::addColumn<bool>("ok");
  QTest::addColumn<QString>("canonical");
  QTest::newRow("default") << "http://127.0.0.1:7071" << true << "http://127.0.0.1:7071";
  QTest::newRow("no scheme") << "localhost:9000" << true << "http://localhost:9000";
  QTest::newRow("no port") << "http://metrics.internal" << true << "http://metrics.internal:7071";
  QTest::newRow("https default port")
      << "https://metrics.example.com/tally/" << true << "https://metrics.example.com:443/tally";
  QTest::newRow("ipv6") << "http://[::1]:7071" << true << "http://[::1]:7071";
  QTest::newRow("bad scheme") << "ftp://x:1" << false << "";
  QTest::newRow("bad port") << "http://x:99999" << false << "";
  QTest::newRow("port not a number") << "http://x:abc" << false << "";
  QTest::newRow("no host") << "http://:7071" << false << "";
}

void TestCli::collectorUrl() {
  QFETCH(QString, url);
  QFETCH(bool, ok);
  QFETCH(QString, canonical);
  auto t = parse_collector_url(url.toStdString());
  QCOMPARE(t.has_value(), ok);
  if (ok) QCOMPARE(QString::fromStdString(t->url()), canonical);
}

void TestCli::queryTables() {
  const json body =
      json::parse(R"({"metric":"api.errors","kind":"counter","fn":"sum","from":1700000000,
    "to":1700000020,"step":10,"resolution":10,"series":[
      {"tags":{"region":"eu"},"points":[[1700000000,3],[1700000010,0.5]],"partial_from":1700000010},
      {"tags":{"region":"us, west"},"points":[[1700000010,7]]}]})");
  TextTable wide = query_wide_table(body);
  QCOMPARE(wide.header, (std::vector<std::string>{"TIME", "region=eu", "region=us, west"}));
  QCOMPARE(wide.rows.size(), size_t{2});
  QCOMPARE(wide.rows[0], (std::vector<std::string>{"2023-11-14T22:13:20Z", "3", ""}));
  QCOMPARE(wide.rows[1], (std::vector<std::string>{"2023-11-14T22:13:30Z*", "0.5", "7"}));
  QCOMPARE(wide.notes.size(), size_t{1});

  std::ostringstream csv;
  write_csv(query_long_table(body, false), csv);
  QCOMPARE(QString::fromStdString(csv.str()), QString("time,region,value\n"
                                                      "1700000000,eu,3\n"
                                                      "1700000010,eu,0.5\n"
                                                      "1700000010,\"us, west\",7\n"));
  std::ostringstream table;
  write_table(metrics_table(json::parse(R"({"metrics":[{"name":"a","kind":"counter","series":12},
                                                       {"name":"api.latency_ms","kind":"distribution","series":3}]})")),
              table);
  QCOMPARE(QString::fromStdString(table.str()), QString("NAME            KIND          SERIES\n"
                                                        "a               counter       12\n"
                                                        "api.latency_ms  distribution  3\n"));
  TextTable ungrouped =
      query_wide_table(json::parse(R"({"fn":"p99","series":[{"tags":{},"points":[[0,1]]}]})"));
  QCOMPARE(ungrouped.header[1], std::string("p99"));
}

void TestCli::liveUpdateFormats() {
  wire::LiveUpdate u;
  u.set_metric("api.latency_ms");
  auto* t = u.add_tags();
  t->set_key("endpoint");
  t->set_value("/login");
  u.set_kind(wire::DISTRIBUTION);
  u.set_resolution_s(1);
  u.set_time(1700000000);
  u.set_state(wire::LiveUpdate::FINAL);
  u.set_value(2);
  u.set_count(2);
  u.set_sum(30);
  u.set_min(10);
  u.set_max(20);
  Sketch sk;
  sk.add(10);
  sk.add(20);
  sketch_to_proto(sk, u.mutable_sketch());

  json j = live_update_json(u);
  QCOMPARE(j["metric"].get<std::string>(), std::string("api.latency_ms"));
  QCOMPARE(j["tags"]["endpoint"].get<std::string>(), std::string("/login"));
  QCOMPARE(j["kind"].get<std::string>(), std::string("distribution"));
  QCOMPARE(j["state"].get<std::string>(), std::string("final"));
  QCOMPARE(j["count"].get<uint64_t>(), uint64_t{2});
  QCOMPARE(j["p99"].get<double>(), sk.quantile(0.99));
  QCOMPARE(j["p50"].get<double>(), sk.quantile(0.5));
  auto row = live_update_row(u, false);
  QCOMPARE(row.size(), live_update_header().size());
  QCOMPARE(row[0], std::string("1700000000"));
  QCOMPARE(row[1], std::string("final"));
  QCOMPARE(row[3], std::string("endpoint=/login"));
  // A value that is not there (NaN) is an empty cell in the table and in CSV, as the dashboard's
  // export writes it (tally/common/csv.h), in both number forms.
  u.set_value(std::nan(""));
  QCOMPARE(live_update_row(u, false)[5], std::string(""));
  QCOMPARE(live_update_row(u, true)[5], std::string(""));
  std::ostringstream csv;
  write_csv(TextTable{{"value", "min"}, {{live_update_row(u, false)[5], "10"}}, {}}, csv);
  QCOMPARE(csv.str(), std::string("value,min\n,10\n"));
  u.set_value(2);
  QString line = QString::fromStdString(live_update_line(u));
  QVERIFY2(line.startsWith("2023-11-14T22:13:20Z  final       api.latency_ms{endpoint=/login}  "
                           "distribution  count=2"),
           qPrintable(line));
}

// ---------------------------------------------------------------------------------------------

void TestCli::exitCodes_data() {
  QTest::addColumn<QStringList>("args");
  QTest::addColumn<int>("code");
  QTest::addColumn<QString>("says");  // in stdout or stderr
  QTest::newRow("help") << QStringList{"--help"} << int(kExitOk) << "Exit codes";
  QTest::newRow("version") << QStringList{"--version"} << int(kExitOk) << "tally ";
  QTest::newRow("no subcommand") << QStringList{} << int(kExitUsage) << "subcommand is required";
  QTest::newRow("unknown subcommand")
      << QStringList{"frobnicate"} << int(kExitUsage) << "subcommand";
  QTest::newRow("query without metric")
      << QStringList{"query"} << int(kExitUsage) << "metric is required";
  QTest::newRow("bad format") << QStringList{"metrics", "--format", "xml"} << int(kExitUsage)
                              << "xml";
  QTest::newRow("bad timeout") << QStringList{"metrics", "--timeout", "soon"} << int(kExitUsage)
                               << "timeout";
  QTest::newRow("bad collector url")
      << QStringList{"metrics", "--collector", "ftp://x"} << int(kExitUsage) << "http";
  QTest::newRow("emit bad name") << QStringList{"emit", "bad name", "1"} << int(kExitUsage)
                                 << "invalid character";
  QTest::newRow("emit bad tag") << QStringList{"emit", "x", "1", "--tag", "novalue"}
                                << int(kExitUsage) << "key=value";
  QTest::newRow("emit bad kind") << QStringList{"emit", "x", "1", "--kind", "meter"}
                                 << int(kExitUsage) << "meter";
  QTest::newRow("emit nan") << QStringList{"emit", "x", "nan"} << int(kExitUsage) << "finite";
  QTest::newRow("emit word value")
      << QStringList{"emit", "x", "lots"} << int(kExitUsage) << "value";
  QTest::newRow("unreachable collector")
      << QStringList{"metrics", "--collector", "http://127.0.0.1:1"} << int(kExitUnreachable)
      << "cannot reach the collector";
  QTest::newRow("unknown metric tags")
      << QStringList{"tags", "no.such.metric"} << int(kExitNotFound) << "unknown metric";
  QTest::newRow("bad fn") << QStringList{"query", "x", "--fn", "median"} << int(kExitRejected)
                          << "400";
  QTest::newRow("bad filter") << QStringList{"query", "x", "--filter", "nonsense"}
                              << int(kExitRejected) << "400";
  QTest::newRow("bad from") << QStringList{"query", "x", "--from", "yesterday"}
                            << int(kExitRejected) << "from";
}

void TestCli::exitCodes() {
  QFETCH(QStringList, args);
  QFETCH(int, code);
  QFETCH(QString, says);
  Run r = tally(args);
  QVERIFY2(r.code == code,
           qPrintable(QString("exit %1, want %2; stderr: %3").arg(r.code).arg(code).arg(r.err)));
  QVERIFY2((r.out + r.err).contains(says), qPrintable(r.out + r.err));
}

json TestCli::queryJson(const QStringList& extra) {
  const qint64 now = QDateTime::currentSecsSinceEpoch();
  QStringList args{"query",
                   "--format",
                   "json",
                   "--from",
                   QString::number(now - 300),
                   "--to",
                   QString::number(now + 60),
                   "--step",
                   "1s"};
  Run r = tally(args + extra);
  if (r.code != 0) {
    qWarning() << "query failed" << r.code << r.err;
    return json();
  }
  return json::parse(r.out.toStdString(), nullptr, false);
}

namespace {

// Total of every point of every series, by the series' tags label.
std::map<std::string, double> totals(const json& body) {
  std::map<std::string, double> out;
  if (!body.is_object()) return out;
  for (const auto& s : body.value("series", json::array())) {
    double sum = 0;
    for (const auto& p : s["points"]) sum += p[1].get<double>();
    out[tags_label(s["tags"])] += sum;
  }
  return out;
}

}  // namespace

void TestCli::emitThenQueryGivesExactSums() {
  for (const auto& [region, value] :
       {std::pair{"eu", "3"}, {"eu", "2.5"}, {"us", "4"}, {"eu", "1"}}) {
    Run r = tally(
        {"emit", "cli.signup", value, "--tag", QString("region=") + region, "--tag", "plan=free"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY2(r.out.startsWith("acknowledged: counter cli.signup{plan=free,region="),
             qPrintable(r.out));
  }
  Run json_emit = tally({"emit", "cli.signup", "1", "--tag", "region=apac", "--tag", "plan=free",
                         "--format", "json"});
  QCOMPARE(json_emit.code, 0);
  json ack = json::parse(json_emit.out.toStdString());
  QCOMPARE(ack["acknowledged"].get<bool>(), true);
  QCOMPARE(ack["tags"]["region"].get<std::string>(), std::string("apac"));

  // Acknowledged means durable; the open bucket is visible to queries right away or very soon.
  std::map<std::string, double> got;
  const std::map<std::string, double> want{
      {"region=apac", 1}, {"region=eu", 6.5}, {"region=us", 4}};
  QTRY_VERIFY_WITH_TIMEOUT(
      (got = totals(queryJson({"cli.signup", "--group-by", "region"}))) == want, 10000);
  QCOMPARE(totals(queryJson({"cli.signup"})), (std::map<std::string, double>{{"", 11.5}}));
  QCOMPARE(totals(queryJson({"cli.signup", "--filter", "region!=eu"})),
           (std::map<std::string, double>{{"", 5}}));

  // CSV: one row per (series, point); the values add up the same.
  const qint64 now = QDateTime::currentSecsSinceEpoch();
  Run csv = tally({"query", "cli.signup", "--group-by", "region", "--format", "csv", "--from",
                   QString::number(now - 300), "--to", QString::number(now + 60), "--step", "1s"});
  QCOMPARE(csv.code, 0);
  QStringList lines = csv.out.split('\n', Qt::SkipEmptyParts);
  QCOMPARE(lines.value(0), QString("time,region,value"));
  std::map<QString, double> csv_sums;
  for (const QString& l : lines.mid(1)) {
    QStringList f = l.split(',');
    QCOMPARE(f.size(), 3);
    csv_sums[f[1]] += f[2].toDouble();
  }
  QCOMPARE(csv_sums["eu"], 6.5);
  QCOMPARE(csv_sums["us"], 4.0);

  // Table: a header line and one column per group.
  Run table =
      tally({"query", "cli.signup", "--group-by", "region", "--from", "-5m", "--step", "1m"});
  QCOMPARE(table.code, 0);
  QVERIFY2(table.out.startsWith("# cli.signup (counter) sum, step 60s"), qPrintable(table.out));
  QVERIFY2(table.out.contains(QRegularExpression("TIME\\s+region=apac\\s+region=eu\\s+region=us")),
           qPrintable(table.out));
}

void TestCli::emitDistributionAndGauge() {
  // Each emit is its own process, so the three values may land in two seconds; the quantile is
  // checked over one day-long step, which holds them all unless the emits straddle midnight UTC.
  const qint64 day_before = QDateTime::currentSecsSinceEpoch() / 86400;
  for (const char* v : {"10", "20", "30"}) {
    QCOMPARE(tally({"emit", "cli.latency_ms", v, "--kind", "distribution"}).code, 0);
  }
  QCOMPARE(tally({"emit", "cli.depth", "7", "--kind", "gauge"}).code, 0);
  QCOMPARE(tally({"emit", "cli.depth", "-3", "--kind", "gauge"}).code,
           0);  // negative values need no "--"

  auto only = [](const json& body) {
    auto t = totals(body);
    return t.size() == 1 ? t.begin()->second : -1.0;
  };
  QTRY_COMPARE_WITH_TIMEOUT(only(queryJson({"cli.latency_ms", "--fn", "count"})), 3.0, 10000);
  QCOMPARE(only(queryJson({"cli.latency_ms", "--fn", "sum"})), 60.0);
  Sketch sk;
  for (double v : {10, 20, 30}) sk.add(v);
  if (QDateTime::currentSecsSinceEpoch() / 86400 == day_before) {
    const qint64 day = day_before * 86400;
    Run p99 = tally({"query", "cli.latency_ms", "--fn", "p99", "--format", "json", "--from",
                     QString::number(day), "--to", QString::number(day + 86400), "--step", "1d"});
    QCOMPARE(p99.code, 0);
    QCOMPARE(only(json::parse(p99.out.toStdString(), nullptr, false)), sk.quantile(0.99));
  }
  // The two gauge emits may also land in two seconds, and totals() adds the per-bucket values:
  // min and max are read over one day-long step too.
  auto dayQuery = [&](const char* fn) {
    const qint64 day = day_before * 86400;
    Run r = tally({"query", "cli.depth", "--fn", fn, "--format", "json", "--from",
                   QString::number(day), "--to", QString::number(day + 86400), "--step", "1d"});
    return r.code == 0 ? only(json::parse(r.out.toStdString(), nullptr, false)) : -100.0;
  };
  if (QDateTime::currentSecsSinceEpoch() / 86400 == day_before) {
    QTRY_COMPARE_WITH_TIMEOUT(dayQuery("min"), -3.0, 10000);
    QCOMPARE(dayQuery("max"), 7.0);
  }

  // A metric is one kind: a counter emitted to a gauge is refused by the collector.
  Run r = tally({"emit", "cli.depth", "1", "--kind", "counter", "--timeout", "5s"});
  QCOMPARE(r.code, int(kExitRejected));
  QVERIFY2(r.err.contains("is a gauge"), qPrintable(r.err));
}

void TestCli::metricsAndTags() {
  QCOMPARE(tally({"emit", "cli.tagged", "1", "--tag", "b=2", "--tag", "a=x,y"}).code, 0);
  QTRY_VERIFY_WITH_TIMEOUT(tally({"metrics", "--search", "cli.tagged"}).out.contains("cli.tagged"),
                           10000);

  Run j = tally({"metrics", "--format", "json", "--search", "cli."});
  QCOMPARE(j.code, 0);
  json metrics = json::parse(j.out.toStdString());
  std::map<std::string, std::string> kinds;
  for (const auto& m : metrics["metrics"]) kinds[m["name"]] = m["kind"];
  QCOMPARE(kinds["cli.tagged"], std::string("counter"));

  Run csv = tally({"metrics", "--format", "csv", "--search", "cli.tagged"});
  QCOMPARE(csv.out, QString("NAME,KIND,SERIES\ncli.tagged,counter,1\n"));

  Run tags = tally({"tags", "cli.tagged", "--format", "csv"});
  QCOMPARE(tags.code, 0);
  QCOMPARE(tags.out, QString("KEY,VALUE\na,\"x,y\"\nb,2\n"));
  Run table = tally({"tags", "cli.tagged"});
  QCOMPARE(table.out, QString("KEY  VALUE\na    x,y\nb    2\n"));
  Run none = tally({"metrics", "--search", "nothing-matches-this"});
  QCOMPARE(none.code, 0);
  QCOMPARE(none.out, QString("NAME  KIND  SERIES\n"));
}

// `tally cardinality`: the metric with the most series first, its tag key with the most
// values, and the series created this hour, in all three formats.
void TestCli::cardinalityNamesTheLargest() {
  for (int i = 0; i < 4; ++i)
    QCOMPARE(tally({"emit", "cli.card", "1", "--tag", "req=" + QString::number(i)}).code, 0);
  QTRY_VERIFY_WITH_TIMEOUT(tally({"metrics", "--format", "csv", "--search", "cli.card"})
                               .out.contains("cli.card,counter,4"),
                           10000);

  Run j = tally({"cardinality", "--format", "json", "--top", "1000"});
  QCOMPARE(j.code, 0);
  json body = json::parse(j.out.toStdString());
  bool seen = false;
  for (const auto& m : body["top_metrics"])
    if (m["name"] == "cli.card") seen = m["series"] == 4 && m["overflow"] == 0;
  QVERIFY2(seen, j.out.toUtf8().constData());
  int created = 0;
  for (const auto& m : body["created_per_minute"]) created += m["created"].get<int>();
  QVERIFY(created >= 4);

  Run tags = tally({"cardinality", "--format", "csv", "--show", "tags", "--top", "1000"});
  QCOMPARE(tags.code, 0);
  QVERIFY2(tags.out.startsWith("KEY,VALUES,SERIES\n"), qPrintable(tags.out));
  QVERIFY2(tags.out.contains("\nreq,4,4\n"), qPrintable(tags.out));
  Run metrics = tally({"cardinality", "--format", "csv", "--top", "1000"});
  QVERIFY2(metrics.out.contains("\ncli.card,counter,4,0\n"), qPrintable(metrics.out));

  Run table = tally({"cardinality"});
  QCOMPARE(table.code, 0);
  for (const char* part : {"# Metrics by series", "METRIC", "# Tag keys by distinct values",
                           "# Series created per minute", "series per metric"})
    QVERIFY2(table.out.contains(part), qPrintable(table.out));
  QCOMPARE(tally({"cardinality", "--top", "0"}).code, 1);
}

void TestCli::emitToUnreachableIngestExits2() {
  QElapsedTimer t;
  t.start();
  Run r = tally({"emit", "cli.lost", "1", "--ingest", "tcp://127.0.0.1:1", "--timeout", "2s"});
  QCOMPARE(r.code, int(kExitUnreachable));
  QVERIFY2(r.err.contains("no acknowledgement from tcp://127.0.0.1:1"), qPrintable(r.err));
  QVERIFY2(t.elapsed() < 8000, "emit must give up after --timeout, not linger");
}

void TestCli::tailFollowsLiveUpdates() {
  QProcess tail;
  tail.start(TALLY_CLI_BIN, {"--live", live_, "tail", "cli.live", "--format", "json", "--final",
                             "--count", "1", "--duration", "60s"});
  QVERIFY(tail.waitForStarted());
  // A SUB socket misses what was published before it joined: emit until the tail has a line.
  QElapsedTimer t;
  t.start();
  int emitted = 0;
  while (tail.state() != QProcess::NotRunning && t.elapsed() < 50000) {
    QCOMPARE(tally({"emit", "cli.live", "5", "--tag", "host=a"}).code, 0);
    ++emitted;
    tail.waitForFinished(1500);
  }
  QCOMPARE(tail.exitStatus(), QProcess::NormalExit);
  QCOMPARE(tail.exitCode(), 0);
  const QString out = QString::fromUtf8(tail.readAllStandardOutput()).trimmed();
  QCOMPARE(out.count('\n'), 0);  // exactly one update: --count 1
  json u = json::parse(out.toStdString());
  QCOMPARE(u["metric"].get<std::string>(), std::string("cli.live"));
  QCOMPARE(u["tags"]["host"].get<std::string>(), std::string("a"));
  QCOMPARE(u["kind"].get<std::string>(), std::string("counter"));
  QVERIFY(u["state"] == "final" || u["state"] == "correction");
  const double v = u["value"].get<double>();
  QVERIFY2(v >= 5 && std::fmod(v, 5) == 0 && v <= 5.0 * emitted,
           qPrintable(QString::fromStdString(u.dump())));
}

// SIGINT / SIGTERM end a tail as its --duration would: exit 0, nothing on stderr (it printed
// "tally: Interrupted system call" and exited 1 when the signal came while it waited).
void TestCli::tailEndsCleanlyOnSigterm() {
  QProcess tail;
  tail.start(TALLY_CLI_BIN, {"--live", live_, "tail", "cli.sigterm", "--duration", "60s"});
  QVERIFY(tail.waitForStarted());
  QTest::qWait(700);  // connected and waiting in poll
  tail.terminate();   // SIGTERM
  QVERIFY(tail.waitForFinished(10000));
  QCOMPARE(tail.exitStatus(), QProcess::NormalExit);
  const QString err = QString::fromUtf8(tail.readAllStandardError());
  QVERIFY2(err.isEmpty(), qPrintable(err));
  QCOMPARE(tail.exitCode(), 0);
}

void TestCli::tailNeverConnectedExits2() {
  Run r = tally(
      {"tail", "cli.live", "--live", "tcp://127.0.0.1:1", "--duration", "2s", "--timeout", "1s"});
  QCOMPARE(r.code, int(kExitUnreachable));
  QVERIFY2(r.err.contains("never connected"), qPrintable(r.err));
}

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
