// Unit tests for the dashboard's Qt-free core: dashboard JSON, API parsing, CSV, decimation,
// step selection and ticks, and the live merge. Links no GUI.
#include <QtTest>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "core/api.h"
#include "core/csv.h"
#include "core/dashboard.h"
#include "core/decimate.h"
#include "core/live_buffer.h"
#include "core/panel_defaults.h"
#include "core/series_stats.h"
#include "core/time_range.h"
#include "core/variables.h"

using namespace tally;
using namespace tally::dash;

namespace {
std::string readFile(const QString& path) {
  std::ifstream in(path.toStdString(), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
QString testData(const char* name) {
  return QStringLiteral(TALLY_TEST_DATA "/") + name;
}
}  // namespace

class TestDashboardCore : public QObject {
  Q_OBJECT
 private slots:
  void dashboardRoundTrip();
  void panelFnInFile_data();
  void panelFnInFile();
  void shippedDashboardsParse_data();
  void shippedDashboardsParse();
  void badDashboardRefused_data();
  void badDashboardRefused();
  void filterMatches_data();
  void filterMatches();
  void placeNewPanelAvoidsOthers();
  void queryPathEncodes();
  void parseQueryAnswer();
  void parseQueryUnusualShapes();
  void parseHistogramAndHeatmap();
  void parseErrors();
  void csvEscapesAndRoundTrips();
  void panelForMetricDefaults_data();
  void panelForMetricDefaults();
  void retargetPanelKeepsOnlyWhatFits();
  void seriesCsvHasTagsAndOnlyVisibleRange();
  void lttbKeepsEndpointsAndExtremes_data();
  void lttbKeepsEndpointsAndExtremes();
  void minMaxPerPixelKeepsExtremes();
  void visibleRangeWidens();
  void chooseStep_data();
  void chooseStep();
  void niceTicksAreNice();
  void timeTicksAligned();
  void formatValueShort_data();
  void formatValueShort();
  void liveBatchRoundTrip();
  void liveReplacesBucketValues();
  void liveGroupsAndAggregates();
  void liveCorrectionBeforeCoverageAsksForRequery();
  void livePercentilesFromMergedSketch();
  void liveBoundedMemory();
  void variablesApplyToFilters_data();
  void variablesApplyToFilters();
  void variablesInPromqlAndTitles();
  void variablesInTheFile();
  void variableFromTheCommandLine();
  void version4PanelFieldsRoundTrip();
  void badVersion4PanelFields_data();
  void badVersion4PanelFields();
  void thresholdText_data();
  void thresholdText();
  void seriesStatsLeaveOutTheOpenBucket();
  void collapsedRowsHideTheirPanelsAndCloseTheGap();
};

static Dashboard sampleDashboard() {
  Dashboard d;
  d.title = "Sample \"quoted\" ünïcode";
  d.range.relative = "6h";
  d.live = false;
  PanelSpec p;
  p.title = "Errors by endpoint";
  p.metric = "api.errors";
  p.filters = {{"status", FilterOp::NotEq, "200"}, {"endpoint", FilterOp::Regex, "/api/.*"}};
  p.groupBy = {"endpoint"};
  p.fn = Fn::kRate;
  p.chart = ChartType::StackedArea;
  p.unit = "req/s";
  p.logY = true;
  p.grid = {6, 4, 6, 5};
  d.panels.push_back(p);
  PanelSpec h;
  h.metric = "api.latency_ms";
  h.chart = ChartType::Heatmap;
  d.panels.push_back(h);
  return d;
}

void TestDashboardCore::dashboardRoundTrip() {
  Dashboard d = sampleDashboard();
  std::string text = serializeDashboard(d);
  auto back = parseDashboard(text);
  QVERIFY2(back.has_value(), back.status().message().c_str());
  QVERIFY(*back == d);
  QCOMPARE(serializeDashboard(*back), text);
  // A custom range round-trips too.
  d.range.from = 1700000000;
  d.range.to = 1700003600;
  auto custom = parseDashboard(serializeDashboard(d));
  QVERIFY(custom.has_value());
  QVERIFY(custom->range.isCustom());
  QCOMPARE(*custom->range.from, int64_t(1700000000));
}

// A panel's function is written as the API names it, so saved files read the same as before the
// dashboard held functions as an enum.
void TestDashboardCore::panelFnInFile_data() {
  QTest::addColumn<int>("fn");
  QTest::addColumn<QString>("text");
  QTest::newRow("sum") << int(Fn::kSum) << "sum";
  QTest::newRow("rate") << int(Fn::kRate) << "rate";
  QTest::newRow("avg") << int(Fn::kAvg) << "avg";
  QTest::newRow("min") << int(Fn::kMin) << "min";
  QTest::newRow("max") << int(Fn::kMax) << "max";
  QTest::newRow("count") << int(Fn::kCount) << "count";
  QTest::newRow("p50") << int(Fn::kP50) << "p50";
  QTest::newRow("p90") << int(Fn::kP90) << "p90";
  QTest::newRow("p99") << int(Fn::kP99) << "p99";
}

void TestDashboardCore::panelFnInFile() {
  QFETCH(int, fn);
  QFETCH(QString, text);
  Dashboard d = sampleDashboard();
  d.panels[0].fn = static_cast<Fn>(fn);
  const std::string file = serializeDashboard(d);
  QVERIFY2(file.find("\"fn\": \"" + text.toStdString() + "\"") != std::string::npos, file.c_str());
  auto back = parseDashboard(file);
  QVERIFY2(back.has_value(), back.status().message().c_str());
  QCOMPARE(back->panels[0].fn, static_cast<Fn>(fn));
}

void TestDashboardCore::shippedDashboardsParse_data() {
  QTest::addColumn<QString>("path");
  QTest::newRow("demo") << QStringLiteral(TALLY_SOURCE_DIR "/resources/dashboards/demo.json");
  QTest::newRow("collector health")
      << QStringLiteral(TALLY_SOURCE_DIR "/resources/dashboards/collector-health.json");
}

void TestDashboardCore::shippedDashboardsParse() {
  QFETCH(QString, path);
  std::string text = readFile(path);
  QVERIFY(!text.empty());
  auto d = parseDashboard(text);
  QVERIFY2(d.has_value(), d.status().message().c_str());
  QVERIFY(d->panels.size() >= 4);
}

void TestDashboardCore::badDashboardRefused_data() {
  QTest::addColumn<QString>("file");
  QTest::addColumn<QString>("reason");
  QTest::newRow("truncated") << "corrupt-truncated.json"
                             << "not valid JSON";
  QTest::newRow("not an object") << "corrupt-array.json"
                                 << "top level must be a JSON object";
  QTest::newRow("wrong format") << "corrupt-format.json"
                                << "\"format\" must be \"tally-dashboard\"";
  QTest::newRow("future version") << "future-version.json"
                                  << "newer Tally: dashboard version 99";
  QTest::newRow("bad chart") << "corrupt-chart.json"
                             << "panels[1].chart: unknown chart type 'pie'";
  QTest::newRow("bad filter op") << "corrupt-filter.json"
                                 << "panels[0].filters[0].op: unknown operator '~'";
  QTest::newRow("grid overflow") << "corrupt-grid.json"
                                 << "panels[0].grid";
  QTest::newRow("bad fn") << "corrupt-fn.json"
                          << "panels[0].fn: unknown function 'median'";
  QTest::newRow("bad regex") << "corrupt-regex.json"
                             << "bad regular expression";
  QTest::newRow("no version") << "corrupt-noversion.json"
                              << "\"version\" is missing";
}

void TestDashboardCore::badDashboardRefused() {
  QFETCH(QString, file);
  QFETCH(QString, reason);
  std::string text = readFile(testData(file.toUtf8().constData()));
  QVERIFY2(!text.empty(), qPrintable(file));
  auto d = parseDashboard(text);
  QVERIFY(!d.has_value());
  QVERIFY2(QString::fromStdString(d.status().message()).contains(reason),
           d.status().message().c_str());
}

void TestDashboardCore::filterMatches_data() {
  QTest::addColumn<QString>("op");
  QTest::addColumn<QString>("value");
  QTest::addColumn<QString>("tagValue");  // empty = tag absent
  QTest::addColumn<bool>("match");
  QTest::newRow("eq") << "="
                      << "eu"
                      << "eu" << true;
  QTest::newRow("eq other") << "="
                            << "eu"
                            << "us" << false;
  QTest::newRow("eq absent") << "="
                             << "eu"
                             << "" << false;
  QTest::newRow("ne") << "!="
                      << "eu"
                      << "us" << true;
  QTest::newRow("ne same") << "!="
                           << "eu"
                           << "eu" << false;
  QTest::newRow("ne absent") << "!="
                             << "eu"
                             << "" << true;
  QTest::newRow("re whole") << "=~"
                            << "e."
                            << "eu" << true;
  QTest::newRow("re not partial") << "=~"
                                  << "e"
                                  << "eu" << false;
  QTest::newRow("re alt") << "=~"
                          << "us|eu"
                          << "us" << true;
  // The collector's syntax (RE2, as Prometheus): what ECMAScript lacks matches here too.
  QTest::newRow("re2 unicode class") << "=~"
                                     << "\\pL+"
                                     << "eu" << true;
  QTest::newRow("re2 flag group") << "=~"
                                  << "(?i:EU)"
                                  << "eu" << true;
  QTest::newRow("nre absent") << "!~"
                              << "e."
                              << "" << true;
}

void TestDashboardCore::filterMatches() {
  QFETCH(QString, op);
  QFETCH(QString, value);
  QFETCH(QString, tagValue);
  QFETCH(bool, match);
  TagFilter f{"region", *parseFilterOp(op.toStdString()), value.toStdString()};
  Tags tags = {{"host", "a"}};
  if (!tagValue.isEmpty()) tags.push_back({"region", tagValue.toStdString()});
  QCOMPARE(f.matches(tags), match);
}

void TestDashboardCore::placeNewPanelAvoidsOthers() {
  std::vector<PanelSpec> panels(2);
  panels[0].grid = {0, 0, 6, 4};
  panels[1].grid = {6, 0, 6, 4};
  GridRect r = placeNewPanel(panels, 6, 4);
  QCOMPARE(r, (GridRect{0, 4, 6, 4}));
  panels.push_back({});
  panels[2].grid = r;
  QCOMPARE(placeNewPanel(panels, 6, 4), (GridRect{6, 4, 6, 4}));
}

void TestDashboardCore::queryPathEncodes() {
  QueryRequest r;
  r.metric = "api.errors";
  r.filters = {{"endpoint", FilterOp::Regex, "/api/.*"}, {"status", FilterOp::NotEq, "200"}};
  r.groupBy = {"endpoint", "status"};
  r.fn = Fn::kRate;
  r.from = 100;
  r.to = 200;
  r.step = 10;
  QCOMPARE(queryPath(r),
           std::string("/api/query?metric=api.errors&filter=endpoint%3D~%2Fapi%2F.%2A"
                       "&filter=status%21%3D200&from=100&to=200&group_by=endpoint%2Cstatus"
                       "&step=10&fn=rate"));
  r.step = 0;
  QVERIFY(heatmapPath(r).find("&step=auto") != std::string::npos);
  r.histogramBuckets = 40;
  QVERIFY(histogramPath(r).find("&buckets=40") != std::string::npos);
  QCOMPARE(tagsPath("a b"), std::string("/api/tags?metric=a%20b"));
}

void TestDashboardCore::parseQueryAnswer() {
  auto r = parseQuery(readFile(testData("query.json")));
  QVERIFY2(r.has_value(), r.status().message().c_str());
  QCOMPARE(r->metric, std::string("api.errors"));
  QCOMPARE(r->step, int64_t(10));
  QCOMPARE(r->series.size(), size_t(2));
  QCOMPARE(r->series[0].tags, (Tags{{"endpoint", "/cart"}}));
  QCOMPARE(r->series[0].points.size(), size_t(3));
  QCOMPARE(r->series[0].points[1], (Point{1700000010, 2.5}));
  QVERIFY(r->series[1].partialFrom.has_value());
  QCOMPARE(*r->series[1].partialFrom, int64_t(1700000020));
  QVERIFY(!r->series[0].partialFrom.has_value());
}

void TestDashboardCore::parseQueryUnusualShapes() {
  // Answers the collector does not write but a proxy or another version might: each reads as
  // the JSON document says (a tag value's JSON text, a timestamp truncated, a short or non-array
  // point skipped, a null value NaN, unknown keys ignored), whichever reader takes it.
  auto r = parseQuery(R"({"metric":"m","from":10,"to":40,"step":10,"extra":{"a":[1,{"b":2}]},
    "series":[{"tags":{"code":500,"ok":true},"points":[[10,1],[20.9,2],[30],7,[40,null,9]],
               "note":[1,2]},
              {"tags":{"b":"2","a":"1"},"points":[[10,4]],"partial_from":10}]})");
  QVERIFY2(r.has_value(), r.status().message().c_str());
  QCOMPARE(r->from, int64_t(10));
  QCOMPARE(r->series.size(), size_t(2));
  QCOMPARE(r->series[0].tags, (Tags{{"code", "500"}, {"ok", "true"}}));
  QCOMPARE(r->series[0].points.size(), size_t(3));
  QCOMPARE(r->series[0].points[0], (Point{10, 1}));
  QCOMPARE(r->series[0].points[1], (Point{20, 2}));
  QCOMPARE(r->series[0].points[2].t, int64_t(40));
  QVERIFY(std::isnan(r->series[0].points[2].v));
  QCOMPARE(r->series[1].tags, (Tags{{"a", "1"}, {"b", "2"}}));  // canonical order
  QCOMPARE(*r->series[1].partialFrom, int64_t(10));
  // The collector's own shape with a null value and an unknown key: the same answer.
  auto plain = parseQuery(R"({"metric":"m","kind":"gauge","fn":"avg","from":0,"to":20,"step":10,
    "resolution":1,"future":{"x":[1]},"series":[{"tags":{"k":"v"},"points":[[0,1.5],[10,null]]}]})");
  QVERIFY2(plain.has_value(), plain.status().message().c_str());
  QCOMPARE(plain->kind, std::optional<Kind>(Kind::kGauge));
  QCOMPARE(plain->fn, std::optional<Fn>(Fn::kAvg));
  QCOMPARE(plain->resolution, int64_t(1));
  QCOMPARE(plain->series.size(), size_t(1));
  QCOMPARE(plain->series[0].points.size(), size_t(2));
  QCOMPARE(plain->series[0].points[0], (Point{0, 1.5}));
  QVERIFY(std::isnan(plain->series[0].points[1].v));
  QVERIFY(!parseQuery("{\"series\":3}").has_value());
  QVERIFY(!parseQuery("[]").has_value());
  QVERIFY(!parseQuery("{\"series\":[{\"points\":[[1,2]]}]").has_value());  // cut short
}

void TestDashboardCore::parseHistogramAndHeatmap() {
  auto h = parseHistogram(readFile(testData("histogram.json")));
  QVERIFY(h.has_value());
  QCOMPARE(h->count, uint64_t(6));
  QCOMPARE(h->buckets.size(), size_t(3));
  QCOMPARE(h->buckets[2], (Bin{9.9, 10.1, 1}));
  auto m = parseHeatmap(readFile(testData("heatmap.json")));
  QVERIFY(m.has_value());
  QCOMPARE(m->columns.size(), size_t(2));
  QCOMPARE(m->columns[1].p99, 40.0);
  QCOMPARE(m->columns[1].buckets.size(), size_t(2));
}

void TestDashboardCore::parseErrors() {
  QVERIFY(!parseQuery("{\"metric\":\"x\"}").has_value());
  QVERIFY(!parseQuery("[1,2").has_value());
  QCOMPARE(errorMessage(400, "{\"error\":\"unknown fn 'x'\"}"), std::string("unknown fn 'x'"));
  QCOMPARE(errorMessage(502, "<html>"), std::string("HTTP 502"));
  Health ok = parseHealth(200, "{\"status\":\"ok\",\"uptime_s\":12,\"series\":340}");
  QVERIFY(ok.ok);
  QCOMPARE(ok.series, int64_t(340));
  Health bad = parseHealth(503, "{\"status\":\"unavailable\",\"reason\":\"disk full\"}");
  QVERIFY(!bad.ok);
  QCOMPARE(bad.reason, std::string("disk full"));
  auto metrics =
      parseMetrics("{\"metrics\":[{\"name\":\"a.b\",\"kind\":\"counter\",\"series\":2}]}");
  QVERIFY(metrics.has_value());
  QCOMPARE(metrics->at(0), (MetricInfo{"a.b", Kind::kCounter, 2}));
  auto card = parseCardinality(
      R"({"series":24,"metrics":2,"overflow_total":10,
          "limits":{"series_max_per_metric":20,"series_max_total":1000,"series_max_new_per_minute":5},
          "top_metrics":[{"name":"a","kind":"counter","series":21,"overflow":10}],
          "top_tag_keys":[{"key":"user","values":20,"series":20}],
          "created_per_minute":[{"time":60,"created":0},{"time":120,"created":24}]})");
  QVERIFY(card.has_value());
  QCOMPARE(card->series, int64_t(24));
  QCOMPARE(card->overflowTotal, int64_t(10));
  QCOMPARE(card->maxPerMetric, int64_t(20));
  QCOMPARE(card->maxNewPerMinute, int64_t(5));
  QCOMPARE(card->topMetrics.at(0), (Cardinality::Metric{"a", Kind::kCounter, 21, 10}));
  QCOMPARE(card->topTagKeys.at(0), (Cardinality::TagKey{"user", 20, 20}));
  QCOMPARE(card->createdPerMinute.at(1), (std::pair<int64_t, int64_t>(120, 24)));
  QCOMPARE(parseCardinality("{\"series\":1}").status().code(), StatusCode::kCorruption);
  QCOMPARE(cardinalityPath(7), std::string("/api/cardinality?limit=7"));
  auto tags = parseTags("{\"metric\":\"a\",\"tags\":{\"k\":[\"v1\",\"v2\"]}}");
  QVERIFY(tags.has_value());
  QCOMPARE(tags->at("k").size(), size_t(2));
}

// The panel a metric gets from the metric browser, by source and kind (one rule for the window).
void TestDashboardCore::panelForMetricDefaults_data() {
  QTest::addColumn<QString>("metric");
  QTest::addColumn<QString>("kind");
  QTest::addColumn<QString>("source");
  QTest::addColumn<QString>("fn");
  QTest::addColumn<QString>("groupBy");
  QTest::newRow("collector counter") << "api.errors"
                                     << "counter"
                                     << ""
                                     << "rate"
                                     << "";
  QTest::newRow("collector gauge") << "queue.depth"
                                   << "gauge"
                                   << ""
                                   << "avg"
                                   << "";
  QTest::newRow("collector distribution") << "api.latency"
                                          << "distribution"
                                          << ""
                                          << "p99"
                                          << "";
  QTest::newRow("collector unknown kind") << "new.metric"
                                          << ""
                                          << ""
                                          << "rate"
                                          << "";
  QTest::newRow("prom histogram") << "http_seconds_bucket"
                                  << "distribution"
                                  << "vm"
                                  << "p99"
                                  << "";
  QTest::newRow("prom summary") << "rpc_seconds"
                                << "distribution"
                                << "vm"
                                << "max"
                                << "quantile";
  QTest::newRow("prom gauge") << "up"
                              << "gauge"
                              << "vm"
                              << "avg"
                              << "";
  QTest::newRow("prom counter") << "req_total"
                                << "counter"
                                << "vm"
                                << "rate"
                                << "";
  QTest::newRow("prom no metadata, _bucket") << "lat_bucket"
                                             << ""
                                             << "vm"
                                             << "p99"
                                             << "";
  QTest::newRow("prom no metadata, _total") << "req_total"
                                            << ""
                                            << "vm"
                                            << "rate"
                                            << "";
  QTest::newRow("prom no metadata, _count") << "lat_count"
                                            << ""
                                            << "vm"
                                            << "rate"
                                            << "";
  QTest::newRow("prom no metadata, _sum") << "lat_sum"
                                          << ""
                                          << "vm"
                                          << "rate"
                                          << "";
  QTest::newRow("prom no metadata, other") << "temp"
                                           << ""
                                           << "vm"
                                           << "max"
                                           << "";
}

void TestDashboardCore::panelForMetricDefaults() {
  QFETCH(QString, metric);
  QFETCH(QString, kind);
  QFETCH(QString, source);
  QFETCH(QString, fn);
  QFETCH(QString, groupBy);
  const PanelSpec s =
      panelForMetric(metric.toStdString(), parse_kind(kind.toStdString()), source.toStdString());
  QCOMPARE(QString::fromStdString(s.metric), metric);
  QCOMPARE(QString::fromStdString(s.source), source);
  QCOMPARE(QString::fromLatin1(fn_name(s.fn)), fn);
  QCOMPARE(s.groupBy.empty() ? QString() : QString::fromStdString(s.groupBy[0]), groupBy);
  QCOMPARE(s.grid.h, 5);
}

void TestDashboardCore::retargetPanelKeepsOnlyWhatFits() {
  PanelSpec s;
  s.metric = "api.latency";
  s.fn = Fn::kP90;
  s.chart = ChartType::Heatmap;
  s.filters = {{"region", FilterOp::Eq, "eu"}};
  s.groupBy = {"region"};
  s.title = "Latency";
  retargetPanel(s, "api.latency2", "");  // same source, distribution chart: fn stays
  QCOMPARE(s.fn, Fn::kP90);
  QVERIFY(s.chart == ChartType::Heatmap);
  QVERIFY(s.filters.empty() && s.groupBy.empty() && s.title.empty());
  retargetPanel(s, "lat_bucket", "vm");  // no distribution charts there: a line
  QVERIFY(s.chart == ChartType::Line);
  QCOMPARE(s.fn, Fn::kP90);  // the chart fixed it when the source changed
  QCOMPARE(s.source, std::string("vm"));
  s.promql = "up";
  retargetPanel(s, "api.errors", "");  // back to the collector: its sum
  QCOMPARE(s.fn, Fn::kSum);
  QVERIFY(s.promql.empty());
  retargetPanel(s, "req_total", "vm");
  QCOMPARE(s.fn, Fn::kRate);
}

void TestDashboardCore::csvEscapesAndRoundTrips() {
  QCOMPARE(csvField("plain"), std::string("plain"));
  QCOMPARE(csvField("a,b"), std::string("\"a,b\""));
  QCOMPARE(csvField("say \"hi\""), std::string("\"say \"\"hi\"\"\""));
  QCOMPARE(csvField("two\nlines"), std::string("\"two\nlines\""));
  // CSV injection: text cells a spreadsheet would run as a formula are written as text.
  QCOMPARE(csvField("=HYPERLINK(\"http://x\")"), std::string("\"'=HYPERLINK(\"\"http://x\"\")\""));
  QCOMPARE(csvField("+1+1"), std::string("\"'+1+1\""));
  QCOMPARE(csvField("-2+3"), std::string("\"'-2+3\""));
  QCOMPARE(csvField("@SUM(A1)"), std::string("\"'@SUM(A1)\""));
  QCOMPARE(csvField("\t=1"), std::string("\"'\t=1\""));
  QCOMPARE(csvField("a=b"), std::string("a=b"));
  QCOMPARE(format_number(-3), std::string("-3"));  // numbers stay numbers
  std::string text = "a,\"b,c\",\"d\"\"e\"\nx,\"multi\nline\",\n";
  auto rows = parseCsv(text);
  QCOMPARE(rows.size(), size_t(2));
  QCOMPARE(rows[0], (std::vector<std::string>{"a", "b,c", "d\"e"}));
  QCOMPARE(rows[1], (std::vector<std::string>{"x", "multi\nline", ""}));
  for (double v : {0.1, 1.0 / 3.0, 1e20, -2.5, 123456789.125})
    QCOMPARE(std::stod(format_number(v)), v);
  QCOMPARE(format_number(3), std::string("3"));
  // No value (NaN) is an empty cell, as the CLI writes it (tally/common/csv.h); -inf is text.
  std::vector<Series> gaps(1);
  gaps[0].points = {{100, std::nan("")}, {110, -HUGE_VAL}, {120, 1e8}};
  QCOMPARE(seriesToCsv("m", "avg", gaps, 0, 1000),
           std::string("timestamp,time,metric,fn,value\n"
                       "100,1970-01-01T00:01:40Z,m,avg,\n"
                       "110,1970-01-01T00:01:50Z,m,avg,\"'-inf\"\n"
                       "120,1970-01-01T00:02:00Z,m,avg,100000000\n"));
}

void TestDashboardCore::seriesCsvHasTagsAndOnlyVisibleRange() {
  std::vector<Series> series(2);
  series[0].tags = {{"endpoint", "/a,b"}};
  series[0].points = {{90, 1}, {100, 2}, {110, 3}, {120, 4}};
  series[1].tags = {{"endpoint", "/c"}, {"status", "500"}};
  series[1].points = {{100, 0.5}};
  auto rows = parseCsv(seriesToCsv("api.errors", "sum", series, 100, 120));
  QCOMPARE(rows.size(), size_t(4));
  QCOMPARE(rows[0], (std::vector<std::string>{"timestamp", "time", "metric", "fn", "endpoint",
                                              "status", "value"}));
  QCOMPARE(rows[1], (std::vector<std::string>{"100", "1970-01-01T00:01:40Z", "api.errors", "sum",
                                              "/a,b", "", "2"}));
  QCOMPARE(rows[3], (std::vector<std::string>{"100", "1970-01-01T00:01:40Z", "api.errors", "sum",
                                              "/c", "500", "0.5"}));
}

void TestDashboardCore::lttbKeepsEndpointsAndExtremes_data() {
  QTest::addColumn<int>("n");
  QTest::addColumn<int>("threshold");
  QTest::addColumn<int>("seed");
  QTest::newRow("1M to 1000") << 1000000 << 1000 << 1;
  QTest::newRow("10k to 300") << 10000 << 300 << 2;
  QTest::newRow("small to 3") << 50 << 3 << 3;
  QTest::newRow("below threshold") << 100 << 500 << 4;
}

void TestDashboardCore::lttbKeepsEndpointsAndExtremes() {
  QFETCH(int, n);
  QFETCH(int, threshold);
  QFETCH(int, seed);
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0, 1);
  std::vector<XY> in(n);
  for (int i = 0; i < n; ++i) in[i] = {double(i), std::sin(i / 500.0) * 10 + noise(rng)};
  in[n / 3].y = 1000;   // a spike
  in[n / 2].y = -1000;  // a dip
  auto out = lttb(in, size_t(threshold));
  QVERIFY(out.size() <= std::max<size_t>(size_t(threshold) + 1, std::min<size_t>(n, threshold)));
  QCOMPARE(out.front(), in.front());
  QCOMPARE(out.back(), in.back());
  QVERIFY(std::find(out.begin(), out.end(), in[n / 3]) != out.end());
  QVERIFY(std::find(out.begin(), out.end(), in[n / 2]) != out.end());
  QVERIFY(
      std::is_sorted(out.begin(), out.end(), [](const XY& a, const XY& b) { return a.x < b.x; }));
}

void TestDashboardCore::minMaxPerPixelKeepsExtremes() {
  std::vector<XY> in;
  for (int i = 0; i < 100000; ++i) in.push_back({double(i), double(i % 97)});
  in[5000].y = 500;
  auto out = minMaxPerPixel(in, 0, 100000, 200);
  QVERIFY(out.size() <= 800);
  QCOMPARE(out.front(), in.front());
  QCOMPARE(out.back(), in.back());
  QVERIFY(std::find(out.begin(), out.end(), in[5000]) != out.end());
}

void TestDashboardCore::visibleRangeWidens() {
  std::vector<XY> in = {{0, 0}, {10, 0}, {20, 0}, {30, 0}, {40, 0}};
  auto [a, b] = visibleRange(in, 15, 25);
  QCOMPARE(a, size_t(1));
  QCOMPARE(b, size_t(4));
  auto [c, d] = visibleRange(in, -10, 100);
  QCOMPARE(c, size_t(0));
  QCOMPARE(d, size_t(5));
}

void TestDashboardCore::chooseStep_data() {
  QTest::addColumn<qint64>("range");
  QTest::addColumn<qint64>("age");  // now - from
  QTest::addColumn<int>("pixels");
  QTest::addColumn<qint64>("step");
  QTest::newRow("5m at 900px") << qint64(300) << qint64(300) << 900 << qint64(1);
  QTest::newRow("1h at 900px") << qint64(3600) << qint64(3600) << 900 << qint64(15);
  QTest::newRow("1h at 300px") << qint64(3600) << qint64(3600) << 300 << qint64(60);
  QTest::newRow("24h at 1200px") << qint64(86400) << qint64(86400) << 1200 << qint64(300);
  QTest::newRow("7d at 1200px") << qint64(7 * 86400) << qint64(7 * 86400) << 1200 << qint64(1800);
  QTest::newRow("30d at 1200px") << qint64(30 * 86400) << qint64(30 * 86400) << 1200
                                 << qint64(7200);
  QTest::newRow("zoomed 5m two days ago: 10s data only")
      << qint64(300) << qint64(2 * 86400) << 900 << qint64(10);
  QTest::newRow("zoomed 1h 20 days ago: 1m data only")
      << qint64(3600) << qint64(20 * 86400) << 900 << qint64(60);
  QTest::newRow("tiny width") << qint64(3600) << qint64(3600) << 1 << qint64(3600);
}

void TestDashboardCore::chooseStep() {
  QFETCH(qint64, range);
  QFETCH(qint64, age);
  QFETCH(int, pixels);
  QFETCH(qint64, step);
  auto retention = parse_retention(kDefaultRetention);
  QVERIFY(retention.has_value());
  const int64_t now = 1800000000;
  TimeWindow w{now - age, now - age + range};
  QCOMPARE(qint64(dash::chooseStep(w, pixels, now, *retention)), step);
}

void TestDashboardCore::niceTicksAreNice() {
  auto t = niceTicks(0, 97, 6);
  QCOMPARE(t, (std::vector<double>{0, 20, 40, 60, 80}));
  auto u = niceTicks(0.3, 1.1, 5);
  QCOMPARE(u.size(), size_t(4));
  QVERIFY(std::abs(u[0] - 0.4) < 1e-12);
  QVERIFY(niceTicks(5, 5, 5).empty());
  QCOMPARE(niceCeil(97), 100.0);
  QCOMPARE(niceCeil(0), 1.0);
}

void TestDashboardCore::timeTicksAligned() {
  qputenv("TZ", "UTC");
  tzset();
  auto t = timeTicks(1700000030, 1700003630, 8);  // one hour
  QVERIFY(!t.empty() && t.size() <= 9);
  for (const auto& tick : t) QCOMPARE(tick.t % 600, int64_t(0));
  QCOMPARE(t.front().label.size(), size_t(5));  // HH:MM
  auto s = timeTicks(1700000000, 1700000060, 6);
  QCOMPARE(s.front().label.size(), size_t(8));  // HH:MM:SS
  auto d = timeTicks(1700000000, 1700000000 + 30 * 86400, 6);
  QVERIFY(d.front().label.find(':') == std::string::npos);
}

void TestDashboardCore::formatValueShort_data() {
  QTest::addColumn<double>("v");
  QTest::addColumn<QString>("text");
  QTest::newRow("zero") << 0.0 << "0";
  QTest::newRow("small") << 0.25 << "0.25";
  QTest::newRow("int") << 1234.0 << "1234";
  QTest::newRow("k") << 15000.0 << "15k";
  QTest::newRow("M") << 2250000.0 << "2.25M";
  QTest::newRow("negative") << -3e9 << "-3G";
  QTest::newRow("tiny") << 0.00012 << "0.00012";
}

void TestDashboardCore::formatValueShort() {
  QFETCH(double, v);
  QFETCH(QString, text);
  QCOMPARE(QString::fromStdString(formatValue(v)), text);
}

static QueryResult emptyResult(const char* kind, int64_t step, int64_t from, int64_t to) {
  QueryResult r;
  r.kind = parse_kind(kind);
  r.step = step;
  r.from = from;
  r.to = to;
  return r;
}

static LiveUpdate counterUpdate(const char* region, int64_t t, double v,
                                LiveUpdate::State st = LiveUpdate::State::Final) {
  LiveUpdate u;
  u.metric = "user.signup";
  u.tags = {{"region", region}};
  u.kind = Kind::kCounter;
  u.time = t;
  u.state = st;
  u.value = v;
  u.sum = v;
  u.count = 1;
  return u;
}

void TestDashboardCore::liveBatchRoundTrip() {
  auto s = std::make_shared<Sketch>();
  for (int i = 1; i <= 100; ++i) s->add(i);
  LiveUpdate d;
  d.metric = "api.latency_ms";
  d.tags = {{"endpoint", "/x"}};
  d.kind = Kind::kDistribution;
  d.time = 1700000000;
  d.state = LiveUpdate::State::Correction;
  d.value = 100;
  d.count = 100;
  d.sum = 5050;
  d.sketch = s;
  std::string bytes = encodeLiveBatch({counterUpdate("eu", 1700000000, 3), d});
  auto back = decodeLiveBatch(bytes.data(), bytes.size());
  QVERIFY(back.has_value());
  QCOMPARE(back->size(), size_t(2));
  QCOMPARE((*back)[0].value, 3.0);
  QCOMPARE((*back)[1].state, LiveUpdate::State::Correction);
  QVERIFY((*back)[1].sketch);
  QVERIFY(*(*back)[1].sketch == *s);
  std::string garbage = "\xff\xff\xff";
  QVERIFY(!decodeLiveBatch(garbage.data(), garbage.size()).has_value());
}

void TestDashboardCore::liveReplacesBucketValues() {
  LiveBuffer buf;
  buf.reset({"user.signup", {}, {}, Fn::kSum}, 1000);
  QueryResult r;
  r.kind = Kind::kCounter;
  r.step = 1;
  r.from = 995;
  r.to = 1002;
  r.series.push_back({});
  for (int64_t t = 995; t < 1002; ++t) r.series[0].points.push_back({t, 1});
  // A partial bucket grows and is replaced, never added up.
  QVERIFY(buf.apply(counterUpdate("eu", 1001, 2, LiveUpdate::State::Partial)));
  QVERIFY(buf.apply(counterUpdate("eu", 1001, 5, LiveUpdate::State::Partial)));
  QVERIFY(buf.apply(counterUpdate("eu", 1001, 6, LiveUpdate::State::Final)));
  QVERIFY(buf.apply(counterUpdate("eu", 1003, 4, LiveUpdate::State::Partial)));
  QVERIFY(!buf.apply([] {
    auto u = counterUpdate("eu", 1001, 1);
    u.metric = "other";
    return u;
  }()));
  QueryResult m = r;
  buf.mergeInto(m, 1004);
  QCOMPARE(m.to, int64_t(1004));
  const auto& pts = m.series[0].points;
  QCOMPARE(pts.size(), size_t(9));
  QCOMPARE(pts[0], (Point{995, 1}));   // before coverage: the HTTP answer
  QCOMPARE(pts[5], (Point{1000, 1}));  // covered, no live data: kept
  QCOMPARE(pts[6], (Point{1001, 6}));  // replaced by the final value
  QCOMPARE(pts[7], (Point{1002, 0}));  // new bucket, zero-filled counter
  QCOMPARE(pts[8], (Point{1003, 4}));  // new bucket from live
  QCOMPARE(*m.series[0].partialFrom, int64_t(1003));
  // A correction replaces the final value.
  buf.apply(counterUpdate("eu", 1001, 7, LiveUpdate::State::Correction));
  m = r;
  buf.mergeInto(m, 1004);
  QCOMPARE(m.series[0].points[6], (Point{1001, 7}));
  QVERIFY(!buf.takeStaleCorrection().has_value());
}

void TestDashboardCore::liveGroupsAndAggregates() {
  LiveBuffer buf;
  buf.reset({"user.signup", {{"region", FilterOp::NotEq, "ap"}}, {"region"}, Fn::kSum}, 1000);
  for (int64_t t = 1000; t < 1010; ++t) {
    buf.apply(counterUpdate("eu", t, 1));
    buf.apply(counterUpdate("us", t, 2));
    buf.apply(counterUpdate("ap", t, 100));  // filtered out
  }
  QueryResult r;
  r.kind = Kind::kCounter;
  r.step = 5;
  r.from = 990;
  r.to = 1000;
  buf.mergeInto(r, 1010);
  QCOMPARE(r.series.size(), size_t(2));
  QCOMPARE(r.series[0].tags, (Tags{{"region", "eu"}}));
  QCOMPARE(r.series[0].points, (std::vector<Point>{{990, 0}, {995, 0}, {1000, 5}, {1005, 5}}));
  QCOMPARE(r.series[1].points.back(), (Point{1005, 10}));
  // rate and avg follow the API table.
  LiveBuffer rate;
  rate.reset({"user.signup", {}, {}, Fn::kRate}, 1000);
  LiveBuffer avg;
  avg.reset({"user.signup", {}, {}, Fn::kAvg}, 1000);
  for (int64_t t = 1000; t < 1010; ++t)
    for (const char* region : {"eu", "us"}) {
      rate.apply(counterUpdate(region, t, region[0] == 'e' ? 1 : 3));
      avg.apply(counterUpdate(region, t, region[0] == 'e' ? 1 : 3));
    }
  QueryResult rr = emptyResult("counter", 10, 1000, 1010);
  rate.mergeInto(rr, 1010);
  QCOMPARE(rr.series[0].points, (std::vector<Point>{{1000, 4.0}}));  // 40 over 10 s
  QueryResult ar = emptyResult("counter", 10, 1000, 1010);
  avg.mergeInto(ar, 1010);
  QCOMPARE(ar.series[0].points, (std::vector<Point>{{1000, 20.0}}));  // (10 + 30) / 2 series
}

void TestDashboardCore::liveCorrectionBeforeCoverageAsksForRequery() {
  LiveBuffer buf;
  buf.reset({"user.signup", {}, {}, Fn::kSum}, 1000);
  QVERIFY(buf.apply(counterUpdate("eu", 990, 3, LiveUpdate::State::Correction)));
  auto stale = buf.takeStaleCorrection();
  QVERIFY(stale.has_value());
  QCOMPARE(*stale, int64_t(990));
  QVERIFY(!buf.takeStaleCorrection().has_value());
  QCOMPARE(buf.cellCount(), size_t(0));
}

void TestDashboardCore::livePercentilesFromMergedSketch() {
  LiveBuffer buf;
  buf.reset({"api.latency_ms", {}, {}, Fn::kP90}, 1000);
  Sketch all;
  for (int64_t t = 1000; t < 1010; ++t) {
    auto s = std::make_shared<Sketch>();
    for (int i = 0; i < 50; ++i) s->add(double(t - 999) * 10 + i);
    all.merge(*s);
    LiveUpdate u;
    u.metric = "api.latency_ms";
    u.kind = Kind::kDistribution;
    u.time = t;
    u.state = LiveUpdate::State::Final;
    u.count = s->count();
    u.value = double(s->count());
    u.sum = s->sum();
    u.min = s->min();
    u.max = s->max();
    u.sketch = s;
    buf.apply(u);
  }
  QueryResult r = emptyResult("distribution", 10, 1000, 1010);
  buf.mergeInto(r, 1010);
  QCOMPARE(r.series.size(), size_t(1));
  QCOMPARE(r.series[0].points.size(), size_t(1));
  QCOMPARE(r.series[0].points[0].v, all.quantile(0.9));
}

void TestDashboardCore::liveBoundedMemory() {
  LiveBuffer buf;
  buf.reset({"user.signup", {}, {}, Fn::kSum, 1000}, 0);
  for (int64_t t = 0; t < 5000; ++t) buf.apply(counterUpdate("eu", t, 1));
  QVERIFY(buf.cellCount() <= 1000);
  QVERIFY(buf.coverageStart() > 0);
  buf.pruneBefore(4990);
  QCOMPARE(buf.cellCount(), size_t(10));
}

void TestDashboardCore::version4PanelFieldsRoundTrip() {
  Dashboard d;
  d.panels.resize(2);
  d.panels[0].metric = "queue.depth";
  QCOMPARE(dashboardFileVersion(d), 1);  // none of the new fields: readable by older builds
  PanelSpec& p = d.panels[1];
  p.metric = "api.errors";
  p.chart = ChartType::Gauge;
  p.reduce = Reduce::kMax;
  p.minValue = -5;
  p.maxValue = 250.5;
  p.thresholds = {{80, "#f29900"}, {95.5, "#d93025"}};
  p.alert = *parse_alert_rule("avg over 5m >= 0.25 for 2m");
  p.legend = LegendMode::Table;
  p.legendRows = 7;
  p.grid.y = 4;
  QCOMPARE(dashboardFileVersion(d), 4);
  const std::string text = serializeDashboard(d);
  QVERIFY(text.find("\"alert\": \"avg over 5m >= 0.25 for 2m\"") != std::string::npos);
  auto back = parseDashboard(text);
  QVERIFY2(back.has_value(), back.status().message().c_str());
  QVERIFY(*back == d);
  // Each field alone asks for version 4.
  Dashboard one;
  one.panels.resize(1);
  one.panels[0].metric = "m";
  one.panels[0].alert = *parse_alert_rule("last > 1");
  QCOMPARE(dashboardFileVersion(one), 4);
  one.panels[0].alert.reset();
  one.panels[0].chart = ChartType::Table;
  QCOMPARE(dashboardFileVersion(one), 4);
}

void TestDashboardCore::badVersion4PanelFields_data() {
  QTest::addColumn<QString>("panel");
  QTest::addColumn<QString>("reason");
  QTest::newRow("reduce") << R"("reduce":"median")"
                          << "panels[0].reduce: unknown reduction 'median'";
  QTest::newRow("chart") << R"("chart":"pie")"
                         << "(line, stacked, bars, histogram, heatmap, stat";
  QTest::newRow("threshold colour") << R"("thresholds":[{"value":1,"color":"red"}])"
                                    << "panels[0].thresholds[0].color: 'red'";
  QTest::newRow("threshold order")
      << R"("thresholds":[{"value":5,"color":"#ff0000"},{"value":2,"color":"#00ff00"}])"
      << "panels[0].thresholds[1].value: thresholds must rise (5 then 2)";
  QTest::newRow("threshold value") << R"("thresholds":[{"value":"5","color":"#ff0000"}])"
                                   << "panels[0].thresholds[0].value: must be a number";
  QTest::newRow("alert") << R"("alert":"avg > lots")"
                         << "panels[0].alert: threshold 'lots'";
  QTest::newRow("alert type") << R"("alert":{"if":1})"
                              << "panels[0].alert: must be a rule";
  QTest::newRow("alert on heatmap") << R"("chart":"heatmap","alert":"avg > 1")"
                                    << "panels[0].alert: a heatmap panel has no series";
  QTest::newRow("min max") << R"("min":10,"max":10)"
                           << "panels[0].max: must be above min";
  QTest::newRow("legend") << R"("legend":"side")"
                          << "panels[0].legend: 'side' is not list or table";
  QTest::newRow("legend rows") << R"("legend":"table","legend_rows":0)"
                               << "legend_rows: must be in 1..1000";
}

void TestDashboardCore::badVersion4PanelFields() {
  QFETCH(QString, panel);
  QFETCH(QString, reason);
  const std::string text = R"({"format":"tally-dashboard","version":4,"title":"t","panels":[)"
                           R"({"metric":"api.latency_ms",)" +
                           panel.toStdString() + "}]}";
  auto d = parseDashboard(text);
  QVERIFY(!d.has_value());
  QVERIFY2(QString::fromStdString(d.status().message()).contains(reason),
           d.status().message().c_str());
}

void TestDashboardCore::thresholdText_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<QString>("canonical");  // "" = an error containing `error`
  QTest::addColumn<QString>("error");
  QTest::newRow("empty") << ""
                         << ""
                         << "";
  QTest::newRow("names") << "95 red, 80 Orange"
                         << "80 #f29900, 95 #d93025"
                         << "";
  QTest::newRow("hex") << " 0.5 #1A73E8 ,1e3 #000000,"
                       << "0.5 #1a73e8, 1000 #000000"
                       << "";
  QTest::newRow("negative") << "-3 blue"
                            << "-3 #1a73e8"
                            << "";
  QTest::newRow("no colour") << "80"
                             << ""
                             << "needs a value and a colour";
  QTest::newRow("bad colour") << "80 #ff00"
                              << ""
                              << "'#ff00' is not a colour";
  QTest::newRow("bad value") << "8x0 red"
                             << ""
                             << "'8x0' is not a number";
  QTest::newRow("twice") << "5 red, 5 blue"
                         << ""
                         << "two thresholds at 5";
}

void TestDashboardCore::thresholdText() {
  QFETCH(QString, text);
  QFETCH(QString, canonical);
  QFETCH(QString, error);
  auto t = parseThresholds(text.toStdString());
  if (!error.isEmpty()) {
    QVERIFY(!t.has_value());
    QVERIFY2(QString::fromStdString(t.status().message()).contains(error),
             t.status().message().c_str());
    return;
  }
  QVERIFY2(t.has_value(), t.status().message().c_str());
  QCOMPARE(QString::fromStdString(formatThresholds(*t)), canonical);
  QVERIFY(*parseThresholds(formatThresholds(*t)) == *t);
  QCOMPARE(thresholdColor(*t, -1e9, "#base00"), std::string("#base00"));
}

void TestDashboardCore::seriesStatsLeaveOutTheOpenBucket() {
  Series s;
  s.tags = {{"region", "eu"}};
  s.points = {{100, 4}, {110, std::nan("")}, {120, 2}, {130, 9}, {140, 50}};
  s.partialFrom = 140;
  const SeriesStats st = seriesStats(s, "m");
  QCOMPARE(st.label, std::string("region=eu"));
  QCOMPARE(*st.last, 9.0);
  QCOMPARE(st.lastTime, int64_t(130));
  QCOMPARE(*st.min, 2.0);
  QCOMPARE(*st.max, 9.0);
  QCOMPARE(*st.avg, 5.0);
  QCOMPARE(*st.total, 15.0);
  const SeriesStats recent = seriesStats(s, "m", 125);  // the window an alert looks at
  QCOMPARE(*recent.avg, 9.0);
  QVERIFY(!seriesStats(s, "m", 140).last.has_value());  // only the open bucket: no value
  QCOMPARE(
      statsToCsv({st, seriesStats(Series{{{"region", "a,b"}}, {}, {}}, "m")}),
      std::string("series,last,min,max,avg,total\nregion=eu,9,2,9,5,15\n\"region=a,b\",,,,,\n"));
  QCOMPARE(formatStat(1234.5, "ms"), std::string("1.23k ms"));
  QCOMPARE(formatStat(0.5, ""), std::string("0.5"));
  QCOMPARE(formatStat(-2e6, "B"), std::string("-2M B"));
  QCOMPARE(formatStat(std::nullopt, "ms"), std::string("–"));
}

void TestDashboardCore::collapsedRowsHideTheirPanelsAndCloseTheGap() {
  auto panel = [](int x, int y, int w, int h) {
    PanelSpec p;
    p.metric = "m";
    p.grid = {x, y, w, h};
    return p;
  };
  auto row = [](int y, bool collapsed) {
    PanelSpec p;
    p.chart = ChartType::Row;
    p.title = "r";
    p.collapsed = collapsed;
    p.grid = {0, y, kGridColumns, 1};
    return p;
  };
  // 0: above every row; 1: row at 4; 2, 3: its panels; 4: row at 13; 5: its panel.
  std::vector<PanelSpec> ps = {panel(0, 0, 12, 4), row(4, false),  panel(0, 5, 6, 4),
                               panel(6, 5, 6, 8),  row(13, false), panel(0, 14, 12, 4)};
  RowLayout open = layoutRows(ps);
  QCOMPARE(open.hidden, (std::vector<bool>{false, false, false, false, false, false}));
  QCOMPARE(open.displayY, (std::vector<int>{0, 4, 5, 5, 13, 14}));
  QCOMPARE(open.rows, 18);
  ps[1].collapsed = true;  // its 8 rows (5 .. 12) fold away
  RowLayout folded = layoutRows(ps);
  QCOMPARE(folded.hidden, (std::vector<bool>{false, false, true, true, false, false}));
  QCOMPARE(folded.displayY, (std::vector<int>{0, 4, 5, 5, 5, 6}));
  QCOMPARE(folded.rows, 10);
  ps[4].collapsed = true;  // the last row folds to the bottom
  RowLayout both = layoutRows(ps);
  QCOMPARE(both.hidden, (std::vector<bool>{false, false, true, true, false, true}));
  QCOMPARE(both.rows, 6);
  // In the file: a row spans the grid, one row high; only rows collapse.
  Dashboard d;
  d.panels = ps;
  auto back = parseDashboard(serializeDashboard(d));
  QVERIFY2(back.has_value(), back.status().message().c_str());
  QVERIFY(*back == d);
  QCOMPARE(dashboardFileVersion(d), 4);
  PanelSpec narrow = row(0, false);
  narrow.grid.w = 6;
  QVERIFY(!validatePanel(narrow, "p").is_ok());
  PanelSpec notRow = panel(0, 0, 6, 4);
  notRow.collapsed = true;
  QVERIFY(QString::fromStdString(validatePanel(notRow, "p").message()).contains("only a row"));
}

QTEST_APPLESS_MAIN(TestDashboardCore)
namespace {
// "key op value" for each filter, joined by "; ".
QString filtersText(const std::vector<TagFilter>& fs) {
  QStringList out;
  for (const auto& f : fs) out << QString::fromStdString(f.toString());
  return out.join("; ");
}
std::vector<Variable> regionVariable(std::vector<std::string> current) {
  Variable v;
  v.name = "region";
  v.metric = "user.signup";
  v.tag = "region";
  v.multi = true;
  v.current = std::move(current);
  return {v};
}
}  // namespace

// How a filter naming $region reads with the values chosen (core/variables.h), on the collector
// and on a Prometheus source.
void TestDashboardCore::variablesApplyToFilters_data() {
  QTest::addColumn<QString>("op");
  QTest::addColumn<QString>("value");
  QTest::addColumn<QStringList>("current");
  QTest::addColumn<bool>("prometheus");
  QTest::addColumn<QString>("want");
  const QStringList all, eu{"eu"}, two{"eu", "us-1"};
  QTest::newRow("= All: left out") << "="
                                   << "$region" << all << false << "";
  QTest::newRow("!= All: left out") << "!="
                                    << "$region" << all << false << "";
  QTest::newRow("= one") << "="
                         << "$region" << eu << false << "region=eu";
  QTest::newRow("${} form") << "="
                            << "${region}" << eu << false << "region=eu";
  QTest::newRow("!= one") << "!="
                          << "$region" << eu << false << "region!=eu";
  QTest::newRow("= two") << "="
                         << "$region" << two << false << "region=~(?:eu|us-1)";
  QTest::newRow("!= two, collector: one != each")
      << "!="
      << "$region" << two << false << "region!=eu; region!=us-1";
  QTest::newRow("!= two, prometheus: !~") << "!="
                                          << "$region" << two << true << "region!~(?:eu|us-1)";
  QTest::newRow("=~ one, quoted") << "=~"
                                  << "$region" << QStringList{"a.b"} << false << "region=~a\\.b";
  QTest::newRow("inside a regex") << "=~"
                                  << "eu-$region-.*" << two << false << "region=~eu-(?:eu|us-1)-.*";
  QTest::newRow("inside a regex, All") << "=~"
                                       << "eu-$region" << all << false << "region=~eu-.*";
  QTest::newRow("unknown name kept") << "="
                                     << "$zone" << eu << false << "region=$zone";
  QTest::newRow("not a reference") << "="
                                   << "cost$" << eu << false << "region=cost$";
  QTest::newRow("= text around is literal") << "="
                                            << "x$region" << eu << false << "region=x$region";
}

void TestDashboardCore::variablesApplyToFilters() {
  QFETCH(QString, op);
  QFETCH(QString, value);
  QFETCH(QStringList, current);
  QFETCH(bool, prometheus);
  QFETCH(QString, want);
  PanelSpec p;
  p.metric = "user.signup";
  if (prometheus) p.source = "vm";
  p.filters = {{"region", *parseFilterOp(op.toStdString()), value.toStdString()}};
  std::vector<std::string> cur;
  for (const auto& c : current) cur.push_back(c.toStdString());
  const PanelSpec applied = applyVariables(p, regionVariable(cur));
  QCOMPARE(filtersText(applied.filters), want);
  QCOMPARE(usesVariables(p, regionVariable(cur)), value.contains("region"));
}

void TestDashboardCore::variablesInPromqlAndTitles() {
  PanelSpec p;
  p.source = "vm";
  p.promql = R"q(sum(rate(req_total{region=~"$region",zone="${zone}"}[5m])))q";
  p.title = "Requests in $region ($zone)";
  auto vars = regionVariable({"eu", "us"});
  PanelSpec a = applyVariables(p, vars);
  QCOMPARE(a.promql,
           std::string(R"q(sum(rate(req_total{region=~"(?:eu|us)",zone="${zone}"}[5m])))q"));
  QCOMPARE(a.title, std::string("Requests in eu+us ($zone)"));
  vars[0].current.clear();
  a = applyVariables(p, vars);
  QCOMPARE(a.promql, std::string(R"q(sum(rate(req_total{region=~".*",zone="${zone}"}[5m])))q"));
  QCOMPARE(a.title, std::string("Requests in All ($zone)"));
  QCOMPARE(quoteRegex("a.b*c(d)|[e]{f}^$\\"),
           std::string("a\\.b\\*c\\(d\\)\\|\\[e\\]\\{f\\}\\^\\$\\\\"));
}

// Variables make a version 3 file (a dashboard without them stays version 1 or 2, so older
// builds keep opening it); they round-trip, and a bad one is named.
void TestDashboardCore::variablesInTheFile() {
  Dashboard d;
  PanelSpec p;
  p.metric = "user.signup";
  p.filters = {{"region", FilterOp::Eq, "$region"}};
  d.panels = {p};
  QVERIFY(serializeDashboard(d).find("\"version\": 1") != std::string::npos);
  d.variables = regionVariable({"eu"});
  d.variables[0].includeAll = false;
  const std::string text = serializeDashboard(d);
  QVERIFY(text.find("\"version\": 3") != std::string::npos);
  auto back = parseDashboard(text);
  QVERIFY2(back.has_value(), back ? "" : back.status().message().c_str());
  QCOMPARE(back->variables, d.variables);
  QCOMPARE(*back, d);
  auto bad = [&](const std::string& json) {
    auto r = parseDashboard(json);
    return r ? std::string("parsed") : r.status().message();
  };
  const std::string head = R"({"format":"tally-dashboard","version":3,"variables":[)";
  QCOMPARE(bad(head + R"({"name":"1x","metric":"m","tag":"t"}]})"),
           std::string("variables[0].name: '1x' must be letters, digits and _ (not starting "
                       "with a digit)"));
  QVERIFY(bad(head + R"({"name":"a","tag":"t"}]})").find("variables[0].metric: missing") !=
          std::string::npos);
  QVERIFY(bad(head + R"({"name":"a","metric":"m","tag":"t"},{"name":"a","metric":"m","tag":"u"}]})")
              .find("variables[1].name: 'a' is defined twice") != std::string::npos);
  QVERIFY(bad(head + R"({"name":"a","metric":"m","tag":"t","current":["x","y"]}]})")
              .find("takes one value") != std::string::npos);
  QVERIFY(bad(head + R"({"name":"a","source":"nope","metric":"m","tag":"t"}]})")
              .find("variables[0].source: no data source named 'nope'") != std::string::npos);
  // On a Prometheus source the names follow its rules (a label may hold what a tag key may not).
  Dashboard withSource = d;
  withSource.sources = {DataSource{"vm", "http://127.0.0.1:8428", {}, 10}};
  withSource.variables[0].source = "vm";
  withSource.variables[0].tag = "k8s/app";
  auto back2 = parseDashboard(serializeDashboard(withSource));
  QVERIFY2(back2.has_value(), back2 ? "" : back2.status().message().c_str());
  QCOMPARE(back2->variables, withSource.variables);
  QVERIFY(bad(R"({"format":"tally-dashboard","version":5})").find("newer Tally") !=
          std::string::npos);
}

void TestDashboardCore::variableFromTheCommandLine() {
  auto vars = regionVariable({});
  QVERIFY(setVariableFromArg(vars, "region=eu,us").is_ok());
  QCOMPARE(vars[0].current, (std::vector<std::string>{"eu", "us"}));
  QVERIFY(setVariableFromArg(vars, "region=All").is_ok());
  QVERIFY(vars[0].current.empty());
  QCOMPARE(setVariableFromArg(vars, "zone=eu").message(),
           std::string("--var: the dashboard has no variable 'zone' (it has: region)"));
  QVERIFY(!setVariableFromArg(vars, "region").is_ok());
  vars[0].multi = false;
  QVERIFY(!setVariableFromArg(vars, "region=eu,us").is_ok());
  vars[0].includeAll = false;
  QVERIFY(!setVariableFromArg(vars, "region=").is_ok());
  QVERIFY(setVariableFromArg(vars, "region=us").is_ok());
  QCOMPARE(vars[0].current, (std::vector<std::string>{"us"}));
}

#include "tst_dashboard_core.moc"
