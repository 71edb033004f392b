// Panels on Prometheus-compatible data sources, without a network: the PromQL a panel's settings
// build (a table), string and label escaping, evaluation times, query_range and error answers
// parsed into the dashboard's series model, and data sources in the dashboard file (round trip,
// version 1 files still open and are written back as version 1, corrupt source entries refused
// with the field named).
#include <QFile>
#include <QtTest>
#include <map>

#include "core/dashboard.h"
#include "core/promql.h"
#include "tally/common/time_bucket.h"

using namespace tally;
using namespace tally::dash;

Q_DECLARE_METATYPE(std::vector<TagFilter>)
Q_DECLARE_METATYPE(std::vector<std::string>)
Q_DECLARE_METATYPE(PanelSpec)

namespace {
std::string readFile(const QString& path) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) return {};
  return f.readAll().toStdString();
}
QString testData(const char* name) {
  return QStringLiteral(TALLY_TEST_DATA "/") + name;
}
}  // namespace

class TestDashboardPromQL : public QObject {
  Q_OBJECT
 private slots:
  void promqlFromPanel_data();
  void promqlFromPanel();
  void quoting_data();
  void quoting();
  void unsupportedFunctions_data();
  void unsupportedFunctions();
  void evaluationTimes_data();
  void evaluationTimes();
  void requestPaths();
  void matrixBecomesSeriesAtBucketStarts();
  void matrixKeepsNameOnlyWhereItDistinguishes();
  void errorAnswers_data();
  void errorAnswers();
  void labelListsAndBuildInfo();
  void metricKindsFromMetadata();
  void dataSourcesRoundTrip();
  void secretHeadersLeaveTheFile_data();
  void secretHeadersLeaveTheFile();
  void urlHostPorts_data();
  void urlHostPorts();
  void headerValuesReadTheEnvironment_data();
  void headerValuesReadTheEnvironment();
  void envAllowlistDefaultsToTallyPrefix();
  void credentialsNeedHttpsBeyondLoopback_data();
  void credentialsNeedHttpsBeyondLoopback();
  void versionOneFileOpensAndStaysVersionOne();
  void corruptSourceRefused_data();
  void corruptSourceRefused();
  void multiQueryPanels_data();
  void multiQueryPanels();
  void queryRefsOutsideStringsOnly();
  void multiQueryFileRoundTrip();
};

void TestDashboardPromQL::promqlFromPanel_data() {
  QTest::addColumn<QString>("metric");
  QTest::addColumn<std::vector<TagFilter>>("filters");
  QTest::addColumn<std::vector<std::string>>("groupBy");
  QTest::addColumn<QString>("fn");
  QTest::addColumn<QString>("promql");  // raw expression, or empty
  QTest::addColumn<QString>("expected");
  using F = std::vector<TagFilter>;
  using G = std::vector<std::string>;
  QTest::newRow("sum = increase per bucket") << "api_errors" << F{} << G{} << "sum"
                                             << ""
                                             << "sum (increase(api_errors[1m]))";
  QTest::newRow("sum by") << "api_errors" << F{} << G{"endpoint", "status"} << "sum"
                          << ""
                          << "sum by (endpoint, status) (increase(api_errors[1m]))";
  QTest::newRow("rate") << "http_requests_total" << F{{"code", FilterOp::Eq, "200"}} << G{"job"}
                        << "rate"
                        << ""
                        << "sum by (job) (increase(http_requests_total{code=\"200\"}[1m])) / 60";
  QTest::newRow("all four operators")
      << "api_errors"
      << F{{"a", FilterOp::Eq, "x"},
           {"b", FilterOp::NotEq, "y"},
           {"c", FilterOp::Regex, "5.."},
           {"d", FilterOp::NotRegex, "/health|/ready"}}
      << G{} << "sum"
      << ""
      << "sum (increase(api_errors{a=\"x\", b!=\"y\", c=~\"5..\", d!~\"/health|/ready\"}[1m]))";
  QTest::newRow("avg of gauge") << "queue_depth" << F{} << G{"queue"} << "avg"
                                << ""
                                << "avg by (queue) (avg_over_time(queue_depth[1m]))";
  QTest::newRow("min") << "temp" << F{} << G{} << "min"
                       << ""
                       << "min (min_over_time(temp[1m]))";
  QTest::newRow("max") << "temp" << F{} << G{} << "max"
                       << ""
                       << "max (max_over_time(temp[1m]))";
  QTest::newRow("count = samples") << "temp" << F{} << G{"room"} << "count"
                                   << ""
                                   << "sum by (room) (count_over_time(temp[1m]))";
  QTest::newRow("p99 of histogram base name")
      << "http_duration_seconds" << F{{"job", FilterOp::Eq, "api"}} << G{"route"} << "p99"
      << ""
      << "histogram_quantile(0.99, sum by (route, le) "
         "(rate(http_duration_seconds_bucket{job=\"api\"}[1m])))";
  QTest::newRow("p50 of _bucket, le not twice")
      << "lat_bucket" << F{} << G{"le"} << "p50"
      << ""
      << "histogram_quantile(0.5, sum by (le) (rate(lat_bucket[1m])))";
  QTest::newRow("escaped regex value")
      << "m" << F{{"path", FilterOp::Regex, R"(/a\.b|"q")"}} << G{} << "sum"
      << ""
      << R"(sum (increase(m{path=~"/a\\.b|\"q\""}[1m])))";
  QTest::newRow("dotted metric goes into braces")
      << "api.latency-ms" << F{{"k", FilterOp::Eq, "v"}} << G{} << "max"
      << ""
      << R"(max (max_over_time({__name__="api.latency-ms", k="v"}[1m])))";
  QTest::newRow("keyword metric goes into braces") << "sum" << F{} << G{} << "sum"
                                                   << ""
                                                   << R"(sum (increase({__name__="sum"}[1m])))";
  QTest::newRow("colon metric stays bare") << "job:rate:5m" << F{} << G{} << "max"
                                           << ""
                                           << "max (max_over_time(job:rate:5m[1m]))";
  QTest::newRow("odd label names quoted")
      << "m" << F{{"http.method", FilterOp::Eq, "GET"}} << G{"k-8s"} << "sum"
      << ""
      << R"(sum by ("k-8s") (increase(m{"http.method"="GET"}[1m])))";
  QTest::newRow("raw promql, intervals replaced")
      << "ignored" << F{} << G{} << "sum"
      << "sum(rate(x[$__rate_interval])) / sum(rate(y[$__interval]))"
      << "sum(rate(x[1m])) / sum(rate(y[1m]))";
}

void TestDashboardPromQL::promqlFromPanel() {
  QFETCH(QString, metric);
  QFETCH(std::vector<TagFilter>, filters);
  QFETCH(std::vector<std::string>, groupBy);
  QFETCH(QString, fn);
  QFETCH(QString, promql);
  QFETCH(QString, expected);
  PanelSpec p;
  p.source = "vm";
  p.metric = metric.toStdString();
  p.filters = filters;
  p.groupBy = groupBy;
  p.fn = parse_fn(fn.toStdString()).value();
  p.promql = promql.toStdString();
  auto e = buildPromQL(p, 60);
  QVERIFY2(e.has_value(), e.status().message().c_str());
  QCOMPARE(QString::fromStdString(*e), expected);
  QVERIFY2(validatePanel(p).is_ok(), validatePanel(p).message().c_str());
}

void TestDashboardPromQL::quoting_data() {
  QTest::addColumn<QString>("in");
  QTest::addColumn<QString>("quoted");
  QTest::addColumn<QString>("label");
  QTest::newRow("plain") << "abc"
                         << "\"abc\""
                         << "abc";
  QTest::newRow("quote") << "a\"b"
                         << R"("a\"b")"
                         << R"("a\"b")";
  QTest::newRow("backslash") << R"(a\b)"
                             << R"("a\\b")"
                             << R"("a\\b")";
  QTest::newRow("newline, tab") << "a\nb\tc"
                                << R"("a\nb\tc")"
                                << R"("a\nb\tc")";
  QTest::newRow("control") << QString("a") + QChar(1) << R"("a\x01")"
                           << R"("a\x01")";
  QTest::newRow("utf-8 stays") << "größe"
                               << "\"größe\""
                               << "\"größe\"";
  QTest::newRow("leading digit") << "1x"
                                 << "\"1x\""
                                 << "\"1x\"";
  QTest::newRow("underscore name") << "_x_1"
                                   << "\"_x_1\""
                                   << "_x_1";
  QTest::newRow("dot") << "http.method"
                       << "\"http.method\""
                       << "\"http.method\"";
}

void TestDashboardPromQL::quoting() {
  QFETCH(QString, in);
  QFETCH(QString, quoted);
  QFETCH(QString, label);
  QCOMPARE(QString::fromStdString(promQuote(in.toStdString())), quoted);
  QCOMPARE(QString::fromStdString(promLabel(in.toStdString())), label);
}

void TestDashboardPromQL::unsupportedFunctions_data() {
  QTest::addColumn<QString>("fn");
  QTest::addColumn<QString>("metric");
  QTest::addColumn<QString>("error");  // empty = supported
  QTest::newRow("sum") << "sum"
                       << "req_total"
                       << "";
  QTest::newRow("p99 of a counter")
      << "p99"
      << "req_total"
      << "percentiles need a Prometheus histogram (a 'req_total_bucket' series";
  QTest::newRow("p99, histogram exists") << "p99"
                                         << "lat"
                                         << "";
  QTest::newRow("p90 of _bucket") << "p90"
                                  << "lat_bucket"
                                  << "";
}

void TestDashboardPromQL::unsupportedFunctions() {
  QFETCH(QString, fn);
  QFETCH(QString, metric);
  QFETCH(QString, error);
  const std::vector<std::string> names = {"req_total", "lat_bucket", "lat_count", "lat_sum"};
  Status st =
      promFunctionSupported(parse_fn(fn.toStdString()).value(), metric.toStdString(), names);
  if (error.isEmpty())
    QVERIFY2(st.is_ok(), st.message().c_str());
  else
    QVERIFY2(!st && QString::fromStdString(st.message()).contains(error), st.message().c_str());
}

void TestDashboardPromQL::evaluationTimes_data() {
  QTest::addColumn<qint64>("from");
  QTest::addColumn<qint64>("to");
  QTest::addColumn<qint64>("step");
  QTest::addColumn<qint64>("start");
  QTest::addColumn<qint64>("end");
  QTest::newRow("aligned") << qint64(6000) << qint64(6360) << qint64(60) << qint64(6060)
                           << qint64(6360);
  QTest::newRow("unaligned from, to")
      << qint64(6010) << qint64(6361) << qint64(60) << qint64(6060) << qint64(6420);
  QTest::newRow("one bucket") << qint64(100) << qint64(101) << qint64(10) << qint64(110)
                              << qint64(110);
}

void TestDashboardPromQL::evaluationTimes() {
  QFETCH(qint64, from);
  QFETCH(qint64, to);
  QFETCH(qint64, step);
  QFETCH(qint64, start);
  QFETCH(qint64, end);
  PromRange r = promRangeFor(from, to, step);
  QCOMPARE(r.start, start);
  QCOMPARE(r.end, end);
  QCOMPARE(r.step, step);
}

void TestDashboardPromQL::requestPaths() {
  QCOMPARE(
      QString::fromStdString(promQueryRangePath("sum(rate(x{a=~\"b+\"}[1m]))", {60, 120, 60})),
      QStringLiteral("/api/v1/query_range?query=sum%28rate%28x%7Ba%3D~%22b%2B%22%7D%5B1m%5D%29%29"
                     "&start=60&end=120&step=60"));
  QCOMPARE(QString::fromStdString(promLabelValuesPath("__name__")),
           QStringLiteral("/api/v1/label/__name__/values"));
  QCOMPARE(QString::fromStdString(promLabelValuesPath("path", promSelector("req_total", {}))),
           QStringLiteral("/api/v1/label/path/values?match%5B%5D=req_total"));
  QCOMPARE(QString::fromStdString(promLabelsPath(promSelector("a.b", {}))),
           QStringLiteral("/api/v1/labels?match%5B%5D=%7B__name__%3D%22a.b%22%7D"));
}

void TestDashboardPromQL::matrixBecomesSeriesAtBucketStarts() {
  const char* body = R"({"status":"success","data":{"resultType":"matrix","result":[
    {"metric":{"path":"/b"},"values":[[1060,"12"],[1120,"NaN"]]},
    {"metric":{"path":"/a"},"values":[[1060,"21"],[1120,"+Inf"],[1180,"0.35"]]}]}})";
  auto r = parsePromMatrix(body, 60);
  QVERIFY2(r.has_value(), r.status().message().c_str());
  QCOMPARE(r->step, int64_t(60));
  QCOMPARE(r->series.size(), size_t(2));
  QCOMPARE(QString::fromStdString(tags_to_string(r->series[0].tags)), QStringLiteral("path=/a"));
  QCOMPARE(r->series[0].points.size(), size_t(3));
  QCOMPARE(r->series[0].points[0], (Point{1000, 21}));
  QCOMPARE(r->series[0].points[1].t, int64_t(1060));
  QVERIFY(std::isinf(r->series[0].points[1].v));
  QCOMPARE(r->series[0].points[2], (Point{1120, 0.35}));
  QVERIFY(std::isnan(r->series[1].points[1].v));
  QCOMPARE(r->from, int64_t(1000));
  QCOMPARE(r->to, int64_t(1180));
  QVERIFY(
      !parsePromMatrix(R"({"status":"success","data":{"resultType":"vector","result":[]}})", 60));
  QVERIFY(!parsePromMatrix(
      R"({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}})",
      60));
}

void TestDashboardPromQL::matrixKeepsNameOnlyWhereItDistinguishes() {
  auto same = parsePromMatrix(R"({"status":"success","data":{"resultType":"matrix","result":[
    {"metric":{"__name__":"up","job":"a"},"values":[[10,"1"]]},
    {"metric":{"__name__":"up","job":"b"},"values":[[10,"0"]]}]}})",
                              10);
  QVERIFY(same.has_value());
  QCOMPARE(QString::fromStdString(tags_to_string(same->series[0].tags)), QStringLiteral("job=a"));
  auto differ = parsePromMatrix(R"({"status":"success","data":{"resultType":"matrix","result":[
    {"metric":{"__name__":"x_sum"},"values":[[10,"1"]]},
    {"metric":{"__name__":"x_count"},"values":[[10,"2"]]}]}})",
                                10);
  QVERIFY(differ.has_value());
  QCOMPARE(QString::fromStdString(tags_to_string(differ->series[0].tags)),
           QStringLiteral("__name__=x_count"));
  QCOMPARE(QString::fromStdString(tags_to_string(differ->series[1].tags)),
           QStringLiteral("__name__=x_sum"));
}

void TestDashboardPromQL::errorAnswers_data() {
  QTest::addColumn<int>("status");
  QTest::addColumn<QString>("body");
  QTest::addColumn<QString>("message");
  QTest::newRow("prometheus bad_data")
      << 400
      << R"({"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"})"
      << "bad_data: 1:5: parse error: unclosed left parenthesis";
  QTest::newRow("victoriametrics 422")
      << 422 << R"({"status":"error","errorType":"422","error":"cannot parse"})"
      << "422: cannot parse";
  QTest::newRow("plain text") << 404 << "unsupported path requested: /api/v1/x\n"
                              << "HTTP 404: unsupported path requested: /api/v1/x";
  QTest::newRow("html") << 502 << "<html>\n<body>Bad gateway</body>"
                        << "HTTP 502: <html>";
  QTest::newRow("empty") << 500 << ""
                         << "HTTP 500";
}

void TestDashboardPromQL::errorAnswers() {
  QFETCH(int, status);
  QFETCH(QString, body);
  QFETCH(QString, message);
  QCOMPARE(QString::fromStdString(promErrorMessage(status, body.toStdString())), message);
}

void TestDashboardPromQL::labelListsAndBuildInfo() {
  auto names = parsePromStrings(R"({"status":"success","data":["__name__","path"]})");
  QVERIFY(names.has_value());
  QCOMPARE(*names, (std::vector<std::string>{"__name__", "path"}));
  auto err =
      parsePromStrings(R"({"status":"error","errorType":"bad_data","error":"invalid match[]"})");
  QVERIFY(!err);
  QCOMPARE(QString::fromStdString(err.status().message()),
           QStringLiteral("bad_data: invalid match[]"));
  QCOMPARE(QString::fromStdString(
               *parsePromBuildInfo(R"({"status":"success","data":{"version":"2.42.0"}})")),
           QStringLiteral("2.42.0"));
  QCOMPARE(QString::fromStdString(*parsePromBuildInfo(R"({"status":"success","data":{}})")),
           QString());
  QVERIFY(checkPromAnswer(R"({"status":"success","data":{"resultType":"scalar","result":[1,"1"]}})")
              .is_ok());
}

void TestDashboardPromQL::metricKindsFromMetadata() {
  auto types = parsePromMetadata(R"({"status":"success","data":{
    "http_requests":[{"type":"counter","help":"","unit":""}],
    "queue_depth":[{"type":"gauge","help":"","unit":""}],
    "rpc_seconds":[{"type":"histogram","help":"","unit":""}],
    "api_latency_ms":[{"type":"summary","help":"","unit":""}],
    "odd":[]}})");
  QVERIFY2(types.has_value(), types.status().message().c_str());
  QCOMPARE(types->size(), size_t(4));
  QCOMPARE(types->at("rpc_seconds"), PromType::Histogram);
  QCOMPARE(types->at("api_latency_ms"), PromType::Summary);
  QCOMPARE(parsePromType("gaugehistogram"), PromType::Other);  // no dashboard kind of its own
  QCOMPARE(parsePromType("Counter"), PromType::Other);         // the names are lower case
  const std::vector<std::string> names = {
      "http_requests_total", "queue_depth",    "rpc_seconds_bucket",   "rpc_seconds_count",
      "rpc_seconds_sum",     "api_latency_ms", "api_latency_ms_count", "odd",
      "unknown_total"};
  const auto kinds = promMetricKinds(names, *types);
  std::vector<std::string> got;
  for (const auto& m : kinds) got.push_back(m.name + ":" + (m.kind ? kind_name(*m.kind) : ""));
  QCOMPARE(got,
           (std::vector<std::string>{"http_requests_total:counter", "queue_depth:gauge",
                                     "rpc_seconds_bucket:distribution", "rpc_seconds_count:counter",
                                     "rpc_seconds_sum:counter", "api_latency_ms:distribution",
                                     "api_latency_ms_count:counter", "odd:", "unknown_total:"}));
  // VictoriaMetrics keeps no metadata.
  auto none = parsePromMetadata(R"({"status":"success","data":{}})");
  QVERIFY(none.has_value() && none->empty());
}

void TestDashboardPromQL::dataSourcesRoundTrip() {
  Dashboard d;
  d.title = "Mixed";
  d.sources.push_back({"vm", "http://127.0.0.1:8428", {}, 10});
  d.sources.push_back(
      {"mimir",
       "https://mimir.example:8080/prometheus",
       {{"Authorization", "Bearer ${TALLY_MIMIR_TOKEN}", true}, {"X-Scope-OrgID", "team-a"}},
       60});
  PanelSpec collector;
  collector.metric = "api.errors";
  PanelSpec vm;
  vm.source = "vm";
  vm.metric = "api_errors";
  vm.filters = {{"status", FilterOp::NotRegex, "2.."}};
  vm.groupBy = {"endpoint"};
  vm.fn = Fn::kRate;
  vm.grid = {6, 0, 6, 4};
  PanelSpec raw;
  raw.source = "mimir";
  raw.promql = "sum(up)";
  raw.grid = {0, 4, 12, 4};
  d.panels = {collector, vm, raw};
  const std::string text = serializeDashboard(d);
  QVERIFY(text.find("\"version\": 2") != std::string::npos);
  auto back = parseDashboard(text);
  QVERIFY2(back.has_value(), back.status().message().c_str());
  QVERIFY(*back == d);
  QCOMPARE(serializeDashboard(*back), text);
}

// Secret values never reach the file: the name rule (Authorization, *token*, *key*, ...) or the
// user's mark puts a reference there instead; a value that only names ${VARIABLES} stays.
void TestDashboardPromQL::secretHeadersLeaveTheFile_data() {
  QTest::addColumn<QString>("name");
  QTest::addColumn<QString>("value");
  QTest::addColumn<bool>("marked");
  QTest::addColumn<bool>("inFile");
  QTest::newRow("Authorization") << "Authorization"
                                 << "Bearer abc123" << false << false;
  QTest::newRow("lower case") << "authorization"
                              << "Basic dXNlcjpwdw==" << false << false;
  QTest::newRow("Proxy-Authorization") << "Proxy-Authorization"
                                       << "Basic x" << false << false;
  QTest::newRow("Cookie") << "Cookie"
                          << "session=abc123" << false << false;
  QTest::newRow("X-API-Key") << "X-API-Key"
                             << "abc123" << false << false;
  QTest::newRow("X-Auth-Token") << "X-Auth-Token"
                                << "abc123" << false << false;
  QTest::newRow("X-Grafana-Secret") << "X-Grafana-Secret"
                                    << "abc123" << false << false;
  QTest::newRow("X-Password") << "X-Password"
                              << "abc123" << false << false;
  QTest::newRow("tenant") << "X-Scope-OrgID"
                          << "team-a" << false << true;
  QTest::newRow("tenant, marked secret") << "X-Scope-OrgID"
                                         << "team-b" << true << false;
  QTest::newRow("names a variable") << "Authorization"
                                    << "Bearer ${TALLY_TOKEN}" << false << true;
  QTest::newRow("$$ is no variable") << "Authorization"
                                     << "Bearer $${x}" << false << false;
}

void TestDashboardPromQL::secretHeadersLeaveTheFile() {
  QFETCH(QString, name);
  QFETCH(QString, value);
  QFETCH(bool, marked);
  QFETCH(bool, inFile);
  Dashboard d;
  d.sources.push_back({"vm",
                       "https://vm.example/select/0/prometheus",
                       {{name.toStdString(), value.toStdString(), marked}},
                       10});
  const std::string text = serializeDashboard(d);
  QCOMPARE(text.find(value.toStdString()) != std::string::npos, inFile);
  const std::string ref = "\"secret\": \"keychain:vm/" + name.toStdString() + "\"";
  QVERIFY2((text.find(ref) != std::string::npos) == !inFile, text.c_str());
  auto back = parseDashboard(text);
  QVERIFY2(back.has_value(), back.status().message().c_str());
  const Header& h = back->sources.at(0).headers.at(0);
  QCOMPARE(QString::fromStdString(h.name), name);
  QCOMPARE(QString::fromStdString(h.value), inFile ? value : QString());
  QCOMPARE(h.secret, marked || isSecretHeaderName(name.toStdString()));
  QCOMPARE(storedAsSecret(h), !inFile);
  // The store's key names the origin, so another host's file finds nothing under it.
  QCOMPARE(secretStoreKey(d.sources[0], d.sources[0].headers[0]),
           "https://vm.example:443 vm/" + name.toStdString());
}

void TestDashboardPromQL::urlHostPorts_data() {
  QTest::addColumn<QString>("url");
  QTest::addColumn<QString>("hostPort");
  QTest::addColumn<QString>("origin");
  QTest::newRow("https default port") << "https://VM.example/x"
                                      << "vm.example:443"
                                      << "https://vm.example:443";
  QTest::newRow("http default port") << "http://vm.example"
                                     << "vm.example:80"
                                     << "http://vm.example:80";
  QTest::newRow("explicit port") << "HTTP://10.0.0.5:8428/select"
                                 << "10.0.0.5:8428"
                                 << "http://10.0.0.5:8428";
  QTest::newRow("IPv6") << "http://[::1]:9090"
                        << "[::1]:9090"
                        << "http://[::1]:9090";
  QTest::newRow("userinfo") << "https://localhost@evil.example:8443/"
                            << "evil.example:8443"
                            << "https://evil.example:8443";
  QTest::newRow("not http") << "ftp://vm.example"
                            << ""
                            << "";
  QTest::newRow("bad port") << "http://vm.example:84x8"
                            << ""
                            << "";
}

void TestDashboardPromQL::urlHostPorts() {
  QFETCH(QString, url);
  QFETCH(QString, hostPort);
  QFETCH(QString, origin);
  QCOMPARE(QString::fromStdString(urlHostPort(url.toStdString())), hostPort);
  QCOMPARE(QString::fromStdString(urlOrigin(url.toStdString())), origin);
}

void TestDashboardPromQL::headerValuesReadTheEnvironment_data() {
  QTest::addColumn<QString>("value");
  QTest::addColumn<QString>("expanded");  // or the error
  QTest::addColumn<bool>("ok");
  QTest::newRow("plain") << "team-a"
                         << "team-a" << true;
  QTest::newRow("variable") << "Bearer ${TOKEN}"
                            << "Bearer s3cr3t" << true;
  QTest::newRow("two") << "${USER_NAME}:${TOKEN}"
                       << "ann:s3cr3t" << true;
  QTest::newRow("empty variable") << "x${EMPTY}y"
                                  << "xy" << true;
  QTest::newRow("dollar escape") << "$${TOKEN} costs $5"
                                 << "${TOKEN} costs $5" << true;
  QTest::newRow("unset") << "Bearer ${NOPE}"
                         << "environment variable NOPE is not set" << false;
  QTest::newRow("unclosed") << "Bearer ${TOKEN"
                            << "unclosed ${ in a header value" << false;
  // Only variables the user allowed (default TALLY_*; here TALLY_* and TOKEN, USER_NAME, EMPTY,
  // NOPE): a file asking for another secret is refused before it is read.
  QTest::newRow("allowed prefix") << "Bearer ${TALLY_GRAFANA_TOKEN}"
                                  << "Bearer t4lly" << true;
  QTest::newRow("outside the allowlist")
      << "Bearer ${AWS_SECRET_ACCESS_KEY}"
      << "environment variable AWS_SECRET_ACCESS_KEY is not one a dashboard file may read "
         "(allowed: TALLY_DASHBOARD_ENV_ALLOW, default TALLY_*)"
      << false;
}

void TestDashboardPromQL::headerValuesReadTheEnvironment() {
  QFETCH(QString, value);
  QFETCH(QString, expanded);
  QFETCH(bool, ok);
  const std::map<std::string, std::string> env = {{"TOKEN", "s3cr3t"},
                                                  {"USER_NAME", "ann"},
                                                  {"EMPTY", ""},
                                                  {"TALLY_GRAFANA_TOKEN", "t4lly"},
                                                  {"AWS_SECRET_ACCESS_KEY", "never"}};
  const auto allowed = envAllowPatterns("TALLY_*, TOKEN,USER_NAME,EMPTY,NOPE");
  auto r = expandHeaderValue(
      value.toStdString(),
      [&](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
      },
      &allowed);
  QCOMPARE(r.has_value(), ok);
  QCOMPARE(QString::fromStdString(ok ? *r : r.status().message()), expanded);
}

void TestDashboardPromQL::credentialsNeedHttpsBeyondLoopback_data() {
  QTest::addColumn<QString>("url");
  QTest::addColumn<bool>("headers");
  QTest::addColumn<bool>("ok");
  QTest::newRow("https remote") << "https://vm.example:8428" << true << true;
  QTest::newRow("http remote, headers") << "http://vm.example:8428" << true << false;
  QTest::newRow("HTTP remote, headers") << "HTTP://10.0.0.5/select" << true << false;
  QTest::newRow("http remote, no headers") << "http://vm.example:8428" << false << true;
  QTest::newRow("http localhost") << "http://localhost:8428" << true << true;
  QTest::newRow("http 127.0.0.1") << "http://127.0.0.1:8428/x" << true << true;
  QTest::newRow("http [::1]") << "http://[::1]:8428" << true << true;
  QTest::newRow("127.x as a name prefix") << "http://127.0.0.1.example.com" << true << false;
  QTest::newRow("userinfo trick") << "http://localhost@vm.example/" << true << false;
}

void TestDashboardPromQL::credentialsNeedHttpsBeyondLoopback() {
  QFETCH(QString, url);
  QFETCH(bool, headers);
  QFETCH(bool, ok);
  DataSource s;
  s.name = "vm";
  s.url = url.toStdString();
  if (headers) s.headers = {{"Authorization", "Bearer ${TALLY_VM_TOKEN}"}};
  QCOMPARE(static_cast<bool>(checkCredentialsTransport(s)), ok);
}

void TestDashboardPromQL::envAllowlistDefaultsToTallyPrefix() {
  const auto d = envAllowPatterns("");
  QVERIFY(envNameAllowed("TALLY_TOKEN", d));
  QVERIFY(!envNameAllowed("HOME", d));
  QVERIFY(!envNameAllowed("TALLY", d));
  QVERIFY(!envNameAllowed("XTALLY_TOKEN", d));
  const auto exact = envAllowPatterns("GRAFANA_TOKEN");
  QVERIFY(envNameAllowed("GRAFANA_TOKEN", exact));
  QVERIFY(!envNameAllowed("GRAFANA_TOKEN2", exact));
  QVERIFY(!envNameAllowed("TALLY_TOKEN", exact));
}

void TestDashboardPromQL::versionOneFileOpensAndStaysVersionOne() {
  const std::string text = readFile(testData("version1.json"));
  QVERIFY(!text.empty());
  auto d = parseDashboard(text);
  QVERIFY2(d.has_value(), d.status().message().c_str());
  QCOMPARE(d->panels.size(), size_t(2));
  QVERIFY(d->sources.empty());
  QVERIFY(d->panels[0].onCollector());
  QCOMPARE(d->panels[1].filters[0].op, FilterOp::Regex);
  // Without data sources the file stays readable by builds that know version 1 only.
  const std::string again = serializeDashboard(*d);
  QVERIFY(again.find("\"version\": 1") != std::string::npos);
  QVERIFY(again.find("\"source\"") == std::string::npos);
}

void TestDashboardPromQL::corruptSourceRefused_data() {
  QTest::addColumn<QString>("sources");  // the "sources" array
  QTest::addColumn<QString>("panels");   // the "panels" array
  QTest::addColumn<QString>("reason");
  const QString ok = R"({"name":"vm","type":"prometheus","url":"http://127.0.0.1:8428"})";
  QTest::newRow("not an array") << R"({"name":"vm"})"
                                << "[]"
                                << "sources: must be an array";
  QTest::newRow("not an object") << "[1]"
                                 << "[]"
                                 << "sources[0]: must be an object";
  QTest::newRow("no name") << R"([{"type":"prometheus","url":"http://x"}])"
                           << "[]"
                           << "sources[0].name: missing";
  QTest::newRow("no url") << R"([{"name":"vm","type":"prometheus"}])"
                          << "[]"
                          << "sources[0].url: missing";
  QTest::newRow("unknown type")
      << R"([{"name":"vm","type":"influx","url":"http://x"}])"
      << "[]"
      << "sources[0].type: unknown data source type 'influx' (prometheus)";
  QTest::newRow("bad url") << "[" + ok + R"(,{"name":"b","type":"prometheus","url":"ftp://x"}])"
                           << "[]"
                           << "sources[1].url: 'ftp://x' is not an http:// or https:// URL";
  QTest::newRow("url with /api/v1")
      << R"([{"name":"vm","type":"prometheus","url":"http://vm:8428/api/v1/"}])"
      << "[]"
      << "sources[0].url: leave out the /api/v1/... part, the dashboard adds it ('http://vm:8428')";
  QTest::newRow("url with query") << R"([{"name":"vm","type":"prometheus","url":"http://x/?a=1"}])"
                                  << "[]"
                                  << "sources[0].url:";
  QTest::newRow("secret reference elsewhere")
      << R"([{"name":"vm","type":"prometheus","url":"http://x","headers":{"A":{"secret":"vault:a"}}}])"
      << "[]"
      << "sources[0].headers.A: must be a string, or {\"secret\": \"keychain:<source>/<header>\"}";
  QTest::newRow("secret reference with a value")
      << R"([{"name":"vm","type":"prometheus","url":"http://x","headers":{"A":{"secret":"keychain:vm/A","value":"x"}}}])"
      << "[]"
      << "sources[0].headers.A: must be a string, or {\"secret\": \"keychain:<source>/<header>\"}";
  QTest::newRow("headers not an object")
      << R"([{"name":"vm","type":"prometheus","url":"http://x","headers":["a"]}])"
      << "[]"
      << "sources[0].headers: must be an object";
  QTest::newRow("bad header name")
      << R"([{"name":"vm","type":"prometheus","url":"http://x","headers":{"X Y":"1"}}])"
      << "[]"
      << "sources[0].headers: 'X Y' is not an HTTP header name";
  QTest::newRow("header line break")
      << R"([{"name":"vm","type":"prometheus","url":"http://x","headers":{"A":"1\r\nB: 2"}}])"
      << "[]"
      << "sources[0].headers.A: the value contains a line break";
  QTest::newRow("bad min_step")
      << R"([{"name":"vm","type":"prometheus","url":"http://x","min_step":"soon"}])"
      << "[]"
      << "sources[0].min_step:";
  QTest::newRow("duplicate name") << "[" + ok + "," + ok + "]"
                                  << "[]"
                                  << "sources[1].name: 'vm' is defined twice";
  QTest::newRow("panel names unknown source") << "[" + ok + "]"
                                              << R"([{"source":"vm2","metric":"x"}])"
                                              << "panels[0].source: no data source named 'vm2'";
  QTest::newRow("expression naming no query")
      << "[]"
      << R"([{"metric":"x","queries":[{"ref":"B","metric":"y"}],"expression":"C / A"}])"
      << "panels[0].expression: 'C' is not one of the panel's queries (A, B)";
  QTest::newRow("!~ on the collector")
      << "[]"
      << R"([{"metric":"x","filters":[{"key":"a","op":"!~","value":"b"}]}])"
      << "panels[0].filters[0].op: !~ needs a Prometheus data source";
  QTest::newRow("heatmap on prometheus") << "[" + ok + "]"
                                         << R"([{"source":"vm","metric":"x","chart":"heatmap"}])"
                                         << "panels[0].chart: heatmap needs the Tally collector";
}

void TestDashboardPromQL::corruptSourceRefused() {
  QFETCH(QString, sources);
  QFETCH(QString, panels);
  QFETCH(QString, reason);
  const QString text =
      QStringLiteral(R"({"format":"tally-dashboard","version":2,"sources":%1,"panels":%2})")
          .arg(sources, panels);
  auto d = parseDashboard(text.toStdString());
  QVERIFY2(!d.has_value(), qPrintable(text));
  QCOMPARE(d.status().code(), StatusCode::kCorruption);
  QVERIFY2(QString::fromStdString(d.status().message()).contains(reason),
           d.status().message().c_str());
}

void TestDashboardPromQL::multiQueryPanels_data() {
  QTest::addColumn<PanelSpec>("panel");
  QTest::addColumn<int>("dialect");
  QTest::addColumn<QString>("expected");  // or an error it must contain
  QTest::addColumn<bool>("ok");
  const int prom = int(PromDialect::Prometheus), tally = int(PromDialect::Tally);
  PanelSpec a;
  a.metric = "api.requests";
  QuerySpec b;
  b.ref = "B";
  b.metric = "api.errors";
  b.filters = {{"status", FilterOp::Regex, "5.."}};
  {
    PanelSpec p = a;
    p.queries = {b};
    p.expression = "B / A * 100";
    QTest::newRow("error ratio")
        << p << tally
        << "(sum (increase({__name__=\"api.errors\", status=~\"5..\"}[1m]))) / "
           "(sum (increase({__name__=\"api.requests\"}[1m]))) * 100"
        << true;
  }
  {
    PanelSpec p = a;
    p.groupBy = {"endpoint"};
    p.fn = Fn::kRate;
    QuerySpec lastWeek;
    lastWeek.ref = "B";
    lastWeek.metric = "api.requests";
    lastWeek.groupBy = {"endpoint"};
    lastWeek.fn = Fn::kRate;
    lastWeek.offsetS = 7 * 86400;
    p.queries = {lastWeek};
    QTest::newRow("this week and last, no expression")
        << p << prom
        << "label_replace(sum by (endpoint) (increase({__name__=\"api.requests\"}[1m])) / 60, "
           "\"query\", "
           "\"A\", \"\", \"\") or label_replace(sum by (endpoint) "
           "(increase({__name__=\"api.requests\"}[1m] "
           "offset 7d)) / 60, \"query\", \"B\", \"\", \"\")"
        << true;
    p.expression = "A - B";
    QTest::newRow("week over week difference")
        << p << prom
        << "(sum by (endpoint) (increase({__name__=\"api.requests\"}[1m])) / 60) - (sum by "
           "(endpoint) "
           "(increase({__name__=\"api.requests\"}[1m] offset 7d)) / 60)"
        << true;
  }
  {
    PanelSpec p = a;
    p.offsetS = 3600;
    QTest::newRow("offset alone") << p << tally
                                  << "sum (increase({__name__=\"api.requests\"}[1m] offset 1h))"
                                  << true;
    p.metric = "api.latency_ms";
    p.fn = Fn::kP99;
    p.groupBy = {"endpoint"};
    QTest::newRow("percentile from the collector's sketches")
        << p << tally
        << "tally_quantile by (endpoint) (0.99, {__name__=\"api.latency_ms\"} offset 1h)" << true;
    QTest::newRow("percentile from a histogram elsewhere")
        << p << prom
        << "histogram_quantile(0.99, sum by (endpoint, le) "
           "(rate({__name__=\"api.latency_ms_bucket\"}[1m] "
           "offset 1h)))"
        << true;
  }
  {
    PanelSpec p = a;
    p.queries = {b};
    p.expression = "C / A";
    QTest::newRow("unknown ref") << p << prom
                                 << "expression: 'C' is not one of the panel's queries (A, B)"
                                 << false;
    p.expression = "sum(up)";
    QTest::newRow("no ref") << p << prom << "names none of the queries" << false;
    p.expression = "A / B";
    p.queries[0].metric.clear();
    QTest::newRow("empty query") << p << prom << "query B: choose a metric" << false;
  }
}

void TestDashboardPromQL::multiQueryPanels() {
  QFETCH(PanelSpec, panel);
  QFETCH(int, dialect);
  QFETCH(QString, expected);
  QFETCH(bool, ok);
  auto e = buildPanelPromQL(panel, 60, PromDialect(dialect));
  if (!ok) {
    QVERIFY(!e.has_value());
    QVERIFY2(QString::fromStdString(e.status().message()).contains(expected),
             e.status().message().c_str());
    return;
  }
  QVERIFY2(e.has_value(), e.status().message().c_str());
  QCOMPARE(QString::fromStdString(*e), expected);
  QVERIFY(panel.needsPromQL());
}

void TestDashboardPromQL::queryRefsOutsideStringsOnly() {
  const std::map<std::string, std::string> exprs = {{"A", "a"}, {"B", "b"}};
  auto e =
      substituteQueryRefs(R"(A / on(job) B{x="A"} + label_replace(B, "A", "B", "", ""))", exprs);
  QVERIFY2(e.has_value(), e.status().message().c_str());
  const std::string want = R"((a) / on(job) (b){x="A"} + label_replace((b), "A", "B", "", ""))";
  QCOMPARE(*e, want);
  QVERIFY(substituteQueryRefs("AB + A_x + A", exprs).has_value());  // only a lone letter counts
  QCOMPARE(*substituteQueryRefs("AB + A_x + A", exprs), std::string("AB + A_x + (a)"));
  const std::string unclosed = R"(A + "unclosed)";
  QVERIFY(!substituteQueryRefs(unclosed, exprs).has_value());
}

void TestDashboardPromQL::multiQueryFileRoundTrip() {
  Dashboard d;
  PanelSpec p;
  p.metric = "api.requests";
  p.offsetS = 86400;
  QuerySpec b;
  b.ref = "B";
  b.metric = "api.errors";
  b.filters = {{"status", FilterOp::Regex, "5.."}};
  b.groupBy = {"endpoint"};
  b.fn = Fn::kRate;
  b.offsetS = 3600;
  QuerySpec c;
  c.ref = "C";
  c.promql = "sum(up)";
  p.queries = {b, c};
  p.expression = "B / A";
  d.panels = {p};
  QCOMPARE(dashboardFileVersion(d), 4);
  auto back = parseDashboard(serializeDashboard(d));
  QVERIFY2(back.has_value(), back.status().message().c_str());
  QVERIFY(*back == d);
  QCOMPARE(back->panels[0].displayTitle(),
           std::string("B / A: A = sum(api.requests) offset 1d, B = rate(api.errors{status=~5..}) "
                       "by endpoint offset 1h, ..."));  // cut at 100 bytes
  // A raw expression on the collector is PromQL too (its Prometheus API evaluates it).
  PanelSpec raw;
  raw.promql = "sum(rate({\"api.errors\"}[$__interval]))";
  QVERIFY(raw.needsPromQL());
  QVERIFY(validatePanel(raw, "panel").is_ok());
  // Filters as the editor types them.
  auto f = parseFilterList(" status=~5.. , endpoint!=/login,region=eu, host!~db-.*");
  QVERIFY2(f.has_value(), f.status().message().c_str());
  QCOMPARE(formatFilterList(*f),
           std::string("status=~5.., endpoint!=/login, region=eu, host!~db-.*"));
  QVERIFY(!parseFilterList("status").has_value());
  QVERIFY(!parseFilterList("=x").has_value());
}

QTEST_APPLESS_MAIN(TestDashboardPromQL)
#include "tst_dashboard_promql.moc"
