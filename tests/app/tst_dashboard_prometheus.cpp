// The dashboard against a real VictoriaMetrics single-node server (Debian package victoria-metrics,
// started here on a free loopback port with a temporary storage directory): known samples are
// imported with explicit timestamps (/api/v1/import/prometheus), then the app's own client and
// panel code query them, and the panel's series must equal what was loaded, bucket by bucket:
// increase per bucket (sum), rate, the four filter operators, group-by, avg/min/max/count of a
// gauge, percentiles of a histogram, a raw PromQL expression. Also: the metric list and label
// completion in the panel editor, errors shown in the panel, live re-queries, the Data sources
// dialog's connection test, and the headless CSV/PNG export of a dashboard that mixes a panel on
// the real collector with panels on VictoriaMetrics.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <QComboBox>
#include <QDateTime>
#include <QEventLoop>
#include <QImage>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenu>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QProcess>
#include <QPushButton>
#include <QStandardItemModel>
#include <QStandardPaths>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QToolButton>
#include <QtTest>
#include <map>

#include "collector_fixture.h"
#include "core/csv.h"
#include "core/promql.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "data_sources.h"
#include "data_sources_dialog.h"
#include "free_port.h"
#include "main_window.h"
#include "metric_browser.h"
#include "metric_tree_model.h"
#include "panel_controller.h"
#include "panel_editor.h"
#include "panel_widget.h"
#include "prom_client.h"
#include "resources.h"
#include "tally/client.h"
#include "variable_bar.h"

using namespace tally;
using namespace tally::dash;

using Expected = std::map<std::string, std::vector<Point>>;  // series label -> points
Q_DECLARE_METATYPE(Expected)
Q_DECLARE_METATYPE(std::vector<TagFilter>)
Q_DECLARE_METATYPE(std::vector<std::string>)

namespace {

// A blocking HTTP call through Qt: status and body.
std::pair<int, QByteArray> http(const QString& method, const QUrl& url,
                                const QByteArray& body = {}) {
  QNetworkAccessManager nam;
  QNetworkRequest req(url);
  req.setTransferTimeout(10000);
  req.setHeader(QNetworkRequest::ContentTypeHeader, "text/plain");
  QNetworkReply* reply = method == "POST" ? nam.post(req, body) : nam.get(req);
  QEventLoop loop;
  QObject::connect(reply, &QNetworkReply::finished, &loop, &QEventLoop::quit);
  loop.exec();
  const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
  QByteArray out = reply->readAll();
  reply->deleteLater();
  return {status, out};
}

class VictoriaMetrics {
 public:
  ~VictoriaMetrics() {
    if (m_proc.state() == QProcess::NotRunning) return;
    m_proc.terminate();
    if (!m_proc.waitForFinished(10000)) {
      m_proc.kill();
      m_proc.waitForFinished(5000);
    }
  }
  static QString binary() { return QStandardPaths::findExecutable("victoria-metrics"); }
  bool start() {
    m_port = tally::testing::free_port();
    m_proc.setProcessChannelMode(QProcess::ForwardedChannels);
    m_proc.start(binary(), {"-httpListenAddr=127.0.0.1:" + QString::number(m_port),
                            "-storageDataPath=" + m_dir.path(), "-retentionPeriod=1d",
                            "-search.disableCache", "-loggerLevel=ERROR"});
    if (!m_proc.waitForStarted(5000)) return false;
    for (int i = 0; i < 150; ++i) {
      if (http("GET", url("/health")).first == 200) return true;
      QThread::msleep(100);
    }
    return false;
  }
  QUrl url(const QString& path = {}) const {
    return QUrl(QStringLiteral("http://127.0.0.1:%1%2").arg(m_port).arg(path));
  }

 private:
  QTemporaryDir m_dir;
  QProcess m_proc;
  int m_port = 0;
};

// A real Prometheus server (Debian package prometheus) serving blocks that promtool builds from
// OpenMetrics text with explicit timestamps; it scrapes nothing.
class PrometheusServer {
 public:
  ~PrometheusServer() {
    if (m_proc.state() == QProcess::NotRunning) return;
    m_proc.terminate();
    if (!m_proc.waitForFinished(10000)) {
      m_proc.kill();
      m_proc.waitForFinished(5000);
    }
  }
  static bool installed() {
    return !QStandardPaths::findExecutable("prometheus").isEmpty() &&
           !QStandardPaths::findExecutable("promtool").isEmpty();
  }
  bool start(const QByteArray& openMetrics) {
    QFile om(m_dir.filePath("samples.om"));
    if (!om.open(QIODevice::WriteOnly) || om.write(openMetrics) != openMetrics.size()) return false;
    om.close();
    QFile cfg(m_dir.filePath("prometheus.yml"));
    if (!cfg.open(QIODevice::WriteOnly)) return false;
    cfg.write("global:\n  scrape_interval: 1h\n");
    cfg.close();
    QProcess tool;
    tool.setProcessChannelMode(QProcess::MergedChannels);
    tool.start(
        QStandardPaths::findExecutable("promtool"),
        {"tsdb", "create-blocks-from", "openmetrics", om.fileName(), m_dir.filePath("data")});
    if (!tool.waitForFinished(30000) || tool.exitCode() != 0) {
      qWarning("promtool: %s", tool.readAll().constData());
      return false;
    }
    m_port = tally::testing::free_port();
    m_proc.setProcessChannelMode(QProcess::ForwardedChannels);
    m_proc.start(
        QStandardPaths::findExecutable("prometheus"),
        {"--config.file=" + cfg.fileName(), "--storage.tsdb.path=" + m_dir.filePath("data"),
         "--web.listen-address=127.0.0.1:" + QString::number(m_port), "--log.level=error"});
    if (!m_proc.waitForStarted(5000)) return false;
    for (int i = 0; i < 150; ++i) {
      if (http("GET", url("/-/ready")).first == 200) return true;
      QThread::msleep(100);
    }
    return false;
  }
  QUrl url(const QString& path = {}) const {
    return QUrl(QStringLiteral("http://127.0.0.1:%1%2").arg(m_port).arg(path));
  }

 private:
  QTemporaryDir m_dir;
  QProcess m_proc;
  int m_port = 0;
};

// The loaded data: 36 samples 10 s apart at T0 + 5 + 10 k (k = 0..35), so each minute bucket
// [T0 + 60 m, T0 + 60 (m + 1)) holds samples k = 6 m .. 6 m + 5 and PromQL's window
// (b, b + 60] at the bucket's end sees exactly them.
//   req_total{path="/a"}  counter, adds k % 7 + 1 at sample k
//   req_total{path="/b"}  counter, adds 2 at each sample
//   temp{room="x"}        gauge, k % 5;   temp{room="y"}: 100 + k % 4
//   lat_bucket{le=...}    histogram: 3 observations per sample, all in (1, 2]
//   fresh_total           counter as the collector's remote-write starts one: a 0 sample 1 ms
//                         before its first value; adds 6 at each sample
constexpr int kSamples = 36;
constexpr int kMinutes = 6;
double incA(int k) {
  return k % 7 + 1;
}
double tempX(int k) {
  return k % 5;
}
double tempY(int k) {
  return 100 + k % 4;
}

QByteArray importText(int64_t t0) {
  QByteArray out;
  auto line = [&](const char* series, double v, int64_t t) {
    out += QByteArray(series) + " " + QByteArray::number(v, 'g', 17) + " " +
           QByteArray::number(qint64(t) * 1000) + "\n";
  };
  // Counters start from an explicit 0, so the first bucket's increase has a sample before it.
  line(R"(req_total{path="/a"})", 0, t0 - 5);
  line(R"(req_total{path="/b"})", 0, t0 - 5);
  out += "fresh_total 0 " + QByteArray::number(qint64(t0 + 5) * 1000 - 1) + "\n";
  for (const char* le : {"1", "2", "4", "+Inf"})
    line(QByteArray("lat_bucket{le=\"") + le + "\"}", 0, t0 - 5);
  double a = 0, b = 0, obs = 0;
  for (int k = 0; k < kSamples; ++k) {
    const int64_t t = t0 + 5 + 10 * k;
    a += incA(k);
    b += 2;
    obs += 3;
    line(R"(req_total{path="/a"})", a, t);
    line(R"(req_total{path="/b"})", b, t);
    line("fresh_total", 6.0 * (k + 1), t);
    line(R"(temp{room="x"})", tempX(k), t);
    line(R"(temp{room="y"})", tempY(k), t);
    line(R"(lat_bucket{le="1"})", 0, t);
    for (const char* le : {"2", "4", "+Inf"})
      line(QByteArray("lat_bucket{le=\"") + le + "\"}", obs, t);
  }
  return out;
}

// The gauges again, as OpenMetrics for promtool (timestamps in seconds).
QByteArray openMetricsText(int64_t t0) {
  QByteArray out = "# TYPE temp gauge\n";
  for (int k = 0; k < kSamples; ++k) {
    const QByteArray t = QByteArray::number(qint64(t0 + 5 + 10 * k));
    out += "temp{room=\"x\"} " + QByteArray::number(tempX(k)) + " " + t + "\n";
    out += "temp{room=\"y\"} " + QByteArray::number(tempY(k)) + " " + t + "\n";
  }
  return out + "# EOF\n";
}

// One value per minute bucket from the samples it holds.
std::vector<Point> perMinute(int64_t t0, const std::function<double(int firstK)>& f) {
  std::vector<Point> out;
  for (int m = 0; m < kMinutes; ++m) out.push_back({t0 + 60 * m, f(6 * m)});
  return out;
}
double over6(int k0, double (*g)(int), const char* op) {
  double acc = std::string(op) == "min" ? 1e300 : std::string(op) == "max" ? -1e300 : 0;
  for (int k = k0; k < k0 + 6; ++k) {
    if (std::string(op) == "min")
      acc = std::min(acc, g(k));
    else if (std::string(op) == "max")
      acc = std::max(acc, g(k));
    else
      acc += g(k);
  }
  return acc;
}

std::string describe(const std::vector<Point>& pts) {
  std::string s;
  for (const auto& p : pts) s += "[" + std::to_string(p.t) + "," + format_number(p.v) + "]";
  return s;
}

}  // namespace

class TestDashboardPrometheus : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void panelSeriesEqualLoadedSamples_data();
  void panelSeriesEqualLoadedSamples();
  void metricListAndLabelCompletion();
  void errorsShowInThePanel();
  void liveModeRequeriesEveryStep();
  void unfinishedBucketIsNotAsked();
  void headersAreSentAndHttpErrorsShown();
  void dataSourcesDialogTestsTheConnection();
  void headlessExportMixesCollectorAndVictoriaMetrics();
  void prometheusServerAnswersTheSamePanels();
  void canvasPanelsFollowRenamedSources();
  void mainWindowOpensBrowsesAndSavesSources();
  void variableOverASourceNarrowsItsPanels();

 private:
  bool runQuery(PanelController& c, const PanelSpec& spec, int64_t from, int64_t to);
  VictoriaMetrics m_vm;
  int64_t m_t0 = 0;
  DataSources m_sources;
};

void TestDashboardPrometheus::initTestCase() {
  QStandardPaths::setTestModeEnabled(true);
  initTallyResources();
  if (VictoriaMetrics::binary().isEmpty())
    QSKIP("victoria-metrics not installed (installer/install-deps.sh installs it)");
  QVERIFY2(m_vm.start(), "victoria-metrics did not start");
  // Ten minutes ago, on a minute: inside a relative "15m" range for the headless test, and
  // older than VictoriaMetrics' 30 s search latency offset.
  m_t0 = (QDateTime::currentSecsSinceEpoch() / 60) * 60 - 600;
  auto imported = http("POST", m_vm.url("/api/v1/import/prometheus"), importText(m_t0));
  QCOMPARE(imported.first, 204);
  QCOMPARE(http("GET", m_vm.url("/internal/force_flush")).first, 200);
  QTRY_VERIFY_WITH_TIMEOUT(
      http("GET", m_vm.url("/api/v1/query?query=count(req_total)%2Bcount(temp)&time=" +
                           QString::number(m_t0 + 400)))
          .second.contains("\"4\""),
      15000);
  m_sources.setSources(
      {{"vm", m_vm.url().toString().toStdString(), {{"X-Scope-OrgID", "team-a"}}, 60}});
}

bool TestDashboardPrometheus::runQuery(PanelController& c, const PanelSpec& spec, int64_t from,
                                       int64_t to) {
  c.setDataSources(&m_sources);
  c.setPixelWidth(800);
  TimeRangeSpec range;
  range.from = from;
  range.to = to;
  c.setRange(range);
  QSignalSpy done(&c, &PanelController::queryFinished);
  c.setSpec(spec);
  return done.count() > 0 || done.wait(15000);  // a spec that cannot be queried finishes at once
}

void TestDashboardPrometheus::panelSeriesEqualLoadedSamples_data() {
  QTest::addColumn<QString>("metric");
  QTest::addColumn<std::vector<TagFilter>>("filters");
  QTest::addColumn<std::vector<std::string>>("groupBy");
  QTest::addColumn<QString>("fn");
  QTest::addColumn<QString>("promql");
  QTest::addColumn<Expected>("expected");
  using F = std::vector<TagFilter>;
  using G = std::vector<std::string>;
  const int64_t t0 = m_t0;
  auto sumA = [](int k0) { return over6(k0, incA, "sum"); };
  auto sumB = [](int) { return 12.0; };
  QTest::newRow("sum by path = increase per minute")
      << "req_total" << F{} << G{"path"} << "sum"
      << "" << Expected{{"path=/a", perMinute(t0, sumA)}, {"path=/b", perMinute(t0, sumB)}};
  QTest::newRow("sum of all paths")
      << "req_total" << F{} << G{} << "sum"
      << "" << Expected{{"req_total", perMinute(t0, [&](int k) { return sumA(k) + 12; })}};
  QTest::newRow("rate by path") << "req_total" << F{} << G{"path"} << "rate"
                                << ""
                                << Expected{
                                       {"path=/a",
                                        perMinute(t0, [&](int k) { return sumA(k) / 60; })},
                                       {"path=/b", perMinute(t0, [](int) { return 12.0 / 60; })}};
  // VictoriaMetrics' rate() would divide the first bucket by 50.001 s, not 60 (regression).
  QTest::newRow("rate of a series starting with remote-write's 0 sample")
      << "fresh_total" << F{} << G{} << "rate"
      << "" << Expected{{"fresh_total", perMinute(t0, [](int) { return 36.0 / 60; })}};
  QTest::newRow("filter =") << "req_total" << F{{"path", FilterOp::Eq, "/b"}} << G{} << "sum"
                            << "" << Expected{{"req_total", perMinute(t0, sumB)}};
  QTest::newRow("filter !=") << "req_total" << F{{"path", FilterOp::NotEq, "/b"}} << G{} << "sum"
                             << "" << Expected{{"req_total", perMinute(t0, sumA)}};
  QTest::newRow("filter =~ whole value")
      << "req_total" << F{{"path", FilterOp::Regex, "/(a|c)"}} << G{"path"} << "sum"
      << "" << Expected{{"path=/a", perMinute(t0, sumA)}};
  QTest::newRow("filter !~") << "req_total" << F{{"path", FilterOp::NotRegex, "/a"}} << G{"path"}
                             << "sum"
                             << "" << Expected{{"path=/b", perMinute(t0, sumB)}};
  QTest::newRow("max of gauge by room")
      << "temp" << F{} << G{"room"} << "max"
      << ""
      << Expected{{"room=x", perMinute(t0, [](int k) { return over6(k, tempX, "max"); })},
                  {"room=y", perMinute(t0, [](int k) { return over6(k, tempY, "max"); })}};
  QTest::newRow("min of gauge") << "temp" << F{{"room", FilterOp::Eq, "y"}} << G{} << "min"
                                << "" << Expected{{"temp", perMinute(t0, [](int k) {
                                                     return over6(k, tempY, "min");
                                                   })}};
  QTest::newRow("avg of gauge") << "temp" << F{{"room", FilterOp::Eq, "x"}} << G{} << "avg"
                                << "" << Expected{{"temp", perMinute(t0, [](int k) {
                                                     return over6(k, tempX, "sum") / 6;
                                                   })}};
  QTest::newRow("count = samples") << "temp" << F{} << G{"room"} << "count"
                                   << ""
                                   << Expected{{"room=x", perMinute(t0, [](int) { return 6.0; })},
                                               {"room=y", perMinute(t0, [](int) { return 6.0; })}};
  // Every observation lies in (1, 2]: the median interpolates to the middle of that bucket.
  QTest::newRow("p50 of histogram")
      << "lat" << F{} << G{} << "p50"
      << "" << Expected{{"lat", perMinute(t0, [](int) { return 1.5; })}};
  QTest::newRow("raw PromQL") << "" << F{} << G{} << "sum"
                              << "sum(increase(req_total{path=\"/a\"}[$__interval])) * 2"
                              << Expected{{"", perMinute(t0, [&](int k) { return sumA(k) * 2; })}};
}

void TestDashboardPrometheus::panelSeriesEqualLoadedSamples() {
  QFETCH(QString, metric);
  QFETCH(std::vector<TagFilter>, filters);
  QFETCH(std::vector<std::string>, groupBy);
  QFETCH(QString, fn);
  QFETCH(QString, promql);
  QFETCH(Expected, expected);
  PanelSpec spec;
  spec.source = "vm";
  spec.metric = metric.toStdString();
  spec.filters = filters;
  spec.groupBy = groupBy;
  spec.fn = parse_fn(fn.toStdString()).value();
  spec.promql = promql.toStdString();
  PanelController c(nullptr, nullptr);
  QVERIFY(runQuery(c, spec, m_t0, m_t0 + 60 * kMinutes));
  QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
  qInfo("%s", c.lastPromQL().c_str());
  QCOMPARE(c.step(), int64_t(60));
  QVERIFY(c.series());
  std::vector<Series> shown = c.visibleSeries();
  QCOMPARE(shown.size(), expected.size());
  size_t i = 0;
  for (const auto& [label, points] : expected) {
    QCOMPARE(QString::fromStdString(shown[i].label(spec.metric)), QString::fromStdString(label));
    QVERIFY2(shown[i].points == points,
             ("shown " + describe(shown[i].points) + "\nloaded " + describe(points)).c_str());
    ++i;
  }
  // The CSV holds the same numbers.
  auto rows = parseCsv(c.csv());
  QCOMPARE(rows.size(), 1 + expected.size() * kMinutes);
  QCOMPARE(QString::fromStdString(rows[1].back()),
           QString::fromStdString(format_number(expected.begin()->second[0].v)));
}

void TestDashboardPrometheus::metricListAndLabelCompletion() {
  PromClient* client = m_sources.client("vm");
  QVERIFY(client);
  QEventLoop loop;
  std::vector<std::string> names;
  client->fetchMetricNames(&loop, [&](Result<std::vector<std::string>> r) {
    if (r) names = *r;
    loop.quit();
  });
  loop.exec();
  QCOMPARE(names, (std::vector<std::string>{"fresh_total", "lat_bucket", "req_total", "temp"}));

  PanelSpec spec;
  spec.source = "vm";
  PanelEditor editor(nullptr, &m_sources, spec);
  QCOMPARE(editor.sourceCombo()->currentData().toString(), QStringLiteral("vm"));
  QVERIFY(editor.promqlEdit()->isVisibleTo(&editor));
  QSignalSpy metrics(&editor, &PanelEditor::metricsLoaded);
  QVERIFY(metrics.wait(10000));
  QCOMPARE(editor.metricCombo()->count(), 4);
  editor.metricCombo()->setCurrentIndex(editor.metricCombo()->findText("req_total"));
  QTRY_VERIFY_WITH_TIMEOUT(editor.hasTags(), 10000);
  QCOMPARE(editor.tagValues(), (TagValues{{"path", {"/a", "/b"}}}));
  QCOMPARE(editor.groupByList()->count(), 1);
  QCOMPARE(editor.groupByList()->item(0)->text(), QStringLiteral("path"));
  auto row = editor.addFilterRow();
  QVERIFY(row.op->findText("!~") >= 0);
  row.key->setCurrentIndex(row.key->findText("path"));
  QCOMPARE(row.value->count(), 2);
  row.op->setCurrentText("!~");
  row.value->setCurrentIndex(row.value->findText("/b"));
  editor.fnCombo()->setCurrentIndex(editor.fnCombo()->findData(QVariant::fromValue(Fn::kRate)));
  QCOMPARE(editor.promqlPreview()->text(),
           QStringLiteral("At a 1m step: sum (increase(req_total{path!~\"/b\"}[1m])) / 60"));
  // Percentiles of a counter have no PromQL form: disabled, and the note says why.
  auto* model = qobject_cast<QStandardItemModel*>(editor.fnCombo()->model());
  QVERIFY(!model->item(editor.fnCombo()->findData(QVariant::fromValue(Fn::kP99)))->isEnabled());
  QVERIFY2(editor.noteLabel()->text().contains("Percentiles need a Prometheus histogram"),
           qPrintable(editor.noteLabel()->text()));
  auto* charts = qobject_cast<QStandardItemModel*>(editor.chartCombo()->model());
  QVERIFY(!charts->item(editor.chartCombo()->findData(QVariant::fromValue(ChartType::Heatmap)))
               ->isEnabled());
  editor.metricCombo()->setCurrentIndex(editor.metricCombo()->findText("lat_bucket"));
  QVERIFY(model->item(editor.fnCombo()->findData(QVariant::fromValue(Fn::kP99)))->isEnabled());
  editor.metricCombo()->setCurrentIndex(editor.metricCombo()->findText("req_total"));
  editor.accept();
  QCOMPARE(editor.result(), int(QDialog::Accepted));
  const PanelSpec out = editor.spec();
  QCOMPARE(QString::fromStdString(out.source), QStringLiteral("vm"));
  QCOMPARE(out.filters, (std::vector<TagFilter>{{"path", FilterOp::NotRegex, "/b"}}));
  QCOMPARE(out.fn, Fn::kRate);
}

void TestDashboardPrometheus::errorsShowInThePanel() {
  {
    PanelSpec spec;
    spec.source = "vm";
    spec.promql = "sum(";
    PanelController c(nullptr, nullptr);
    QVERIFY(runQuery(c, spec, m_t0, m_t0 + 360));
    QVERIFY(!c.hasData());
    // VictoriaMetrics' {"status":"error","errorType":"422","error":"...sum(..."}
    QVERIFY2(c.error().startsWith("422: ") && c.error().contains("sum("), qPrintable(c.error()));
  }
  {
    DataSources gone;
    gone.setSources(
        {{"down",
          QStringLiteral("http://127.0.0.1:%1").arg(tally::testing::free_port()).toStdString(),
          {},
          10}});
    PanelSpec spec;
    spec.source = "down";
    spec.metric = "req_total";
    PanelController c(nullptr, nullptr);
    c.setDataSources(&gone);
    QSignalSpy done(&c, &PanelController::queryFinished);
    c.setSpec(spec);
    QVERIFY(done.wait(15000));
    QVERIFY2(c.error().contains("data source 'down'") && c.error().contains("is unreachable"),
             qPrintable(c.error()));
  }
  {
    PanelSpec spec;
    spec.source = "nowhere";
    spec.metric = "req_total";
    PanelController c(nullptr, nullptr);
    QVERIFY(runQuery(c, spec, m_t0, m_t0 + 360));
    QCOMPARE(c.error(), QStringLiteral("no data source named 'nowhere' in this dashboard"));
  }
}

void TestDashboardPrometheus::liveModeRequeriesEveryStep() {
  int64_t now = m_t0 + 600;
  PanelController c(nullptr, nullptr);
  c.setNowFunction([&] { return now; });
  c.setDataSources(&m_sources);
  c.setPixelWidth(800);
  TimeRangeSpec range;
  range.relative = "15m";
  c.setRange(range);
  c.setLive(true);
  QSignalSpy done(&c, &PanelController::queryFinished);
  PanelSpec spec;
  spec.source = "vm";
  spec.metric = "req_total";
  c.setSpec(spec);
  QVERIFY(done.wait(10000));
  QCOMPARE(c.step(), int64_t(60));
  const int before = c.queriesIssued();
  now += 30;  // less than a step: the window slides, nothing is asked
  c.tick();
  QCOMPARE(c.queriesIssued(), before);
  now += 30;  // a step later: one re-query
  c.tick();
  QCOMPARE(c.queriesIssued(), before + 1);
  QVERIFY(done.wait(10000));
  QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
}

// "Now" in the middle of the last minute: that bucket is still filling up and is left out
// (VictoriaMetrics would answer an evaluation time in the future from older samples).
void TestDashboardPrometheus::unfinishedBucketIsNotAsked() {
  PanelController c(nullptr, nullptr);
  c.setNowFunction([this] { return m_t0 + 60 * (kMinutes - 1) + 30; });
  PanelSpec spec;
  spec.source = "vm";
  spec.metric = "req_total";
  spec.filters = {{"path", FilterOp::Eq, "/b"}};
  QVERIFY(runQuery(c, spec, m_t0, m_t0 + 60 * kMinutes));
  QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
  const std::vector<Series> shown = c.visibleSeries();
  QCOMPARE(shown.size(), size_t(1));
  std::vector<Point> expected = perMinute(m_t0, [](int) { return 12.0; });
  expected.pop_back();
  QVERIFY2(shown[0].points == expected, describe(shown[0].points).c_str());
}

// A server behind a base path that wants a token: the source's headers go with the request (the
// token read from the environment), and its plain-text 401 is the panel's error.
void TestDashboardPrometheus::headersAreSentAndHttpErrorsShown() {
  QTcpServer server;
  QVERIFY(server.listen(QHostAddress::LocalHost));
  QByteArray request;
  connect(&server, &QTcpServer::newConnection, this, [&] {
    QTcpSocket* s = server.nextPendingConnection();
    connect(s, &QTcpSocket::readyRead, s, [&request, s] {
      request += s->readAll();
      if (!request.contains("\r\n\r\n")) return;
      s->write(
          "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
          "Connection: close\r\n\r\nmissing bearer token\n");
      s->disconnectFromHost();
    });
  });
  qputenv("TALLY_TEST_TOKEN", "s3cr3t");
  DataSources sources;
  sources.setSources(
      {{"auth",
        QStringLiteral("http://127.0.0.1:%1/select/0/prometheus/")
            .arg(server.serverPort())
            .toStdString(),
        {{"Authorization", "Bearer ${TALLY_TEST_TOKEN}"}, {"X-Scope-OrgID", "team-a"}},
        10}});
  PanelSpec spec;
  spec.source = "auth";
  spec.metric = "up";
  spec.fn = Fn::kMax;
  PanelController c(nullptr, nullptr);
  c.setDataSources(&sources);
  QSignalSpy done(&c, &PanelController::queryFinished);
  c.setSpec(spec);
  QVERIFY(done.wait(10000));
  QCOMPARE(c.error(), QStringLiteral("HTTP 401: missing bearer token"));
  QVERIFY2(request.startsWith(
               "GET /select/0/prometheus/api/v1/query_range?query=max%20%28max_over_time%28up%5B"),
           request.constData());
  QVERIFY2(request.contains("\r\nAuthorization: Bearer s3cr3t\r\n"), request.constData());
  QVERIFY2(request.contains("\r\nX-Scope-OrgID: team-a\r\n"), request.constData());

  qunsetenv("TALLY_TEST_TOKEN");
  request.clear();
  c.refresh();
  QVERIFY(done.wait(10000));
  QVERIFY2(
      c.error().endsWith("header Authorization: environment variable TALLY_TEST_TOKEN is not set"),
      qPrintable(c.error()));
  QVERIFY(request.isEmpty());  // nothing went out without the token
}

void TestDashboardPrometheus::dataSourcesDialogTestsTheConnection() {
  DataSourcesDialog dialog({{"vm", m_vm.url().toString().toStdString(), {}, 60}},
                           [](const std::string& name) { return name == "vm" ? 2 : 0; });
  QCOMPARE(dialog.list()->count(), 1);
  QSignalSpy tested(&dialog, &DataSourcesDialog::testFinished);
  dialog.testButton()->click();
  QVERIFY(tested.wait(10000));
  QCOMPARE(tested.last().first().toBool(), true);
  QVERIFY2(dialog.testResult()->text().startsWith("Connected: Prometheus API"),
           qPrintable(dialog.testResult()->text()));

  dialog.urlEdit()->setText(QStringLiteral("http://127.0.0.1:%1").arg(tally::testing::free_port()));
  dialog.testButton()->click();
  QVERIFY(tested.wait(10000));
  QCOMPARE(tested.last().first().toBool(), false);
  QVERIFY2(dialog.testResult()->text().contains("is unreachable"),
           qPrintable(dialog.testResult()->text()));

  dialog.urlEdit()->setText("vm:8428");
  dialog.testButton()->click();
  QCOMPARE(tested.last().first().toBool(), false);
  QVERIFY(dialog.testResult()->text().contains("is not an http:// or https:// URL"));

  // A source panels use cannot be removed; a new one can be added, renamed and kept.
  dialog.removeButton()->click();
  QCOMPARE(dialog.list()->count(), 1);
  QVERIFY(dialog.errorLabel()->text().contains("used by 2 panels"));
  dialog.urlEdit()->setText(m_vm.url().toString());
  dialog.addButton()->click();
  QCOMPARE(dialog.list()->count(), 2);
  dialog.nameEdit()->setText("vm2");
  dialog.list()->setCurrentRow(0);
  dialog.nameEdit()->setText("victoria");
  dialog.accept();
  QCOMPARE(dialog.result(), int(QDialog::Accepted));
  QCOMPARE(dialog.sources().size(), size_t(2));
  QCOMPARE(QString::fromStdString(dialog.sources()[1].name), QStringLiteral("vm2"));
  QCOMPARE(dialog.renamed(), (std::map<std::string, std::string>{{"vm", "victoria"}}));
}

void TestDashboardPrometheus::headlessExportMixesCollectorAndVictoriaMetrics() {
  CollectorFixture collector;
  QVERIFY2(collector.start(), "the collector did not start");
  ClientOptions o;
  o.endpoint = collector.ingest().toStdString();
  Client sdk(o);
  for (int i = 0; i < 5; ++i) sdk.count("api.errors", 1, {{"endpoint", "/login"}});
  QVERIFY(sdk.flush(std::chrono::seconds(10)));

  QTemporaryDir dir;
  const QString file = dir.filePath("mixed.json");
  {
    QFile f(file);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(
        QString(
            R"json({"format":"tally-dashboard","version":2,"title":"Collector and VictoriaMetrics",
      "live":false,"range":{"last":"15m"},
      "sources":[{"name":"vm","type":"prometheus","url":"%1","min_step":"1m"}],
      "panels":[
        {"metric":"api.errors","fn":"sum","chart":"bars","grid":{"x":0,"y":0,"w":6,"h":4}},
        {"source":"vm","metric":"req_total","group_by":["path"],"fn":"sum","chart":"bars","grid":{"x":6,"y":0,"w":6,"h":4}},
        {"source":"vm","promql":"max(max_over_time(temp[$__interval]))","title":"hottest room","grid":{"x":0,"y":4,"w":12,"h":4}}]})json")
            .arg(m_vm.url().toString())
            .toUtf8());
  }
  QProcess p;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert("QT_QPA_PLATFORM", "offscreen");
  p.setProcessEnvironment(env);
  // The collector's answer lags its acknowledgement a little: retry until it has all 5.
  double collectorTotal = 0;
  QList<QList<QString>> vmRows;
  for (int attempt = 0; attempt < 20 && collectorTotal != 5; ++attempt) {
    p.start(TALLY_DASHBOARD_BIN,
            {"--dashboard", file, "--collector", collector.url().toString(), "--export-csv",
             dir.filePath("out.csv"), "--export-png", dir.filePath("out.png")});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    QFile c(dir.filePath("out-1.csv"));
    QVERIFY(c.open(QIODevice::ReadOnly));
    collectorTotal = 0;
    auto rows = parseCsv(c.readAll().toStdString());
    for (size_t i = 1; i < rows.size(); ++i) collectorTotal += std::stod(rows[i].back());
    if (collectorTotal != 5) QThread::msleep(500);
  }
  QVERIFY(collectorTotal == 5);

  // The collector's own Prometheus API as a data source: it keeps metadata (kinds for the
  // browser) and its increase() is exact, so the panel counts the same 5.
  DataSources viaProm;
  viaProm.setSources({{"tally", collector.url().toString().toStdString(), {}, 1}});
  {
    QEventLoop loop;
    PromTypes types;
    viaProm.client("tally")->fetchMetadata(&loop, [&](Result<PromTypes> r) {
      if (r) types = *r;
      loop.quit();
    });
    loop.exec();
    const auto kinds = promMetricKinds({"api_errors"}, types);
    QVERIFY(kinds[0].kind == Kind::kCounter);
    PanelSpec spec;
    spec.source = "tally";
    spec.metric = "api_errors";
    spec.fn = Fn::kSum;
    PanelController c(nullptr, nullptr);
    c.setDataSources(&viaProm);
    TimeRangeSpec range;
    range.relative = "15m";
    c.setRange(range);
    QSignalSpy done(&c, &PanelController::queryFinished);
    c.setSpec(spec);
    // Only finished 5 s buckets are asked for: the newest counts may need one more step.
    double total = 0;
    for (int attempt = 0; attempt < 40 && total != 5; ++attempt) {
      if (attempt > 0) {
        QTest::qWait(250);
        c.refresh();
      }
      QVERIFY(done.wait(10000));
      QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
      total = 0;
      for (const auto& series : c.visibleSeries())
        for (const auto& point : series.points) total += point.v;
    }
    QVERIFY2(total == 5, qPrintable(QString::number(total)));
  }

  // The VictoriaMetrics panel: every loaded minute with its exact increase; nothing elsewhere.
  QFile v(dir.filePath("out-2.csv"));
  QVERIFY(v.open(QIODevice::ReadOnly));
  auto rows = parseCsv(v.readAll().toStdString());
  QCOMPARE(rows[0],
           (std::vector<std::string>{"timestamp", "time", "metric", "fn", "path", "value"}));
  std::map<std::pair<std::string, int64_t>, double> got;
  for (size_t i = 1; i < rows.size(); ++i)
    got[{rows[i][4], std::stoll(rows[i][0])}] = std::stod(rows[i][5]);
  for (int m = 0; m < kMinutes; ++m) {
    const double a = got[{"/a", m_t0 + 60 * m}], b = got[{"/b", m_t0 + 60 * m}];
    QVERIFY2(a == over6(6 * m, incA, "sum") && b == 12,
             qPrintable(QStringLiteral("minute %1: %2 %3").arg(m).arg(a).arg(b)));
  }
  for (const auto& [key, value] : got)
    if (key.second < m_t0 || key.second >= m_t0 + 60 * kMinutes) QVERIFY(value == 0);
  QFile t(dir.filePath("out-3.csv"));
  QVERIFY(t.open(QIODevice::ReadOnly));
  auto hot = parseCsv(t.readAll().toStdString());
  QCOMPARE(hot[0], (std::vector<std::string>{"timestamp", "time", "metric", "fn", "value"}));
  QCOMPARE(hot[1][3], std::string("promql"));
  double hottest = 0;
  for (size_t i = 1; i < hot.size(); ++i) hottest = std::max(hottest, std::stod(hot[i][4]));
  QVERIFY(hottest == 103);

  QImage png(dir.filePath("out.png"));
  QCOMPARE(png.size(), QSize(1600, 900));

  // Without the collector, a dashboard with a collector panel fails as before; one with only
  // VictoriaMetrics panels does not need it.
  collector.stop();
  p.start(TALLY_DASHBOARD_BIN, {"--dashboard", file, "--collector", collector.url().toString(),
                                "--export-csv", dir.filePath("again.csv")});
  QVERIFY(p.waitForFinished(60000));
  QCOMPARE(p.exitCode(), 69);
  p.start(TALLY_DASHBOARD_BIN, {"--dashboard", file, "--collector", collector.url().toString(),
                                "--panel", "2", "--export-csv", dir.filePath("vm-only.csv")});
  QVERIFY(p.waitForFinished(60000));
  QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
}

// The same panel code against Prometheus itself: gauge functions are exact there too (its
// increase() and rate() extrapolate to the window's edges, so counters are not compared here).
void TestDashboardPrometheus::prometheusServerAnswersTheSamePanels() {
  if (!PrometheusServer::installed())
    QSKIP("prometheus/promtool not installed (installer/install-deps.sh installs them)");
  PrometheusServer prom;
  QVERIFY2(prom.start(openMetricsText(m_t0)), "prometheus did not start");
  DataSources sources;
  sources.setSources({{"prom", prom.url().toString().toStdString(), {}, 60}});

  DataSourcesDialog dialog(sources.sources(), {});
  QSignalSpy tested(&dialog, &DataSourcesDialog::testFinished);
  dialog.testButton()->click();
  QVERIFY(tested.wait(10000));
  QVERIFY2(dialog.testResult()->text().startsWith("Connected: Prometheus API, version 2."),
           qPrintable(dialog.testResult()->text()));

  struct Case {
    Fn fn;
    const char* promql;
    Expected expected;
  };
  const std::vector<Case> cases = {
      {Fn::kMax,
       "",
       {{"room=x", perMinute(m_t0, [](int k) { return over6(k, tempX, "max"); })},
        {"room=y", perMinute(m_t0, [](int k) { return over6(k, tempY, "max"); })}}},
      {Fn::kMin,
       "",
       {{"room=x", perMinute(m_t0, [](int k) { return over6(k, tempX, "min"); })},
        {"room=y", perMinute(m_t0, [](int k) { return over6(k, tempY, "min"); })}}},
      {Fn::kCount,
       "",
       {{"room=x", perMinute(m_t0, [](int) { return 6.0; })},
        {"room=y", perMinute(m_t0, [](int) { return 6.0; })}}},
      {Fn::kSum,
       "sum(count_over_time(temp[$__interval]))",
       {{"", perMinute(m_t0, [](int) { return 12.0; })}}},
  };
  for (const auto& tc : cases) {
    PanelSpec spec;
    spec.source = "prom";
    spec.metric = "temp";
    spec.groupBy = {"room"};
    spec.fn = tc.fn;
    spec.promql = tc.promql;
    PanelController c(nullptr, nullptr);
    c.setDataSources(&sources);
    c.setPixelWidth(800);
    TimeRangeSpec range;
    range.from = m_t0;
    range.to = m_t0 + 60 * kMinutes;
    c.setRange(range);
    QSignalSpy done(&c, &PanelController::queryFinished);
    c.setSpec(spec);
    QVERIFY(done.wait(15000));
    QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
    std::vector<Series> shown = c.visibleSeries();
    QCOMPARE(shown.size(), tc.expected.size());
    size_t i = 0;
    for (const auto& [label, points] : tc.expected) {
      QCOMPARE(QString::fromStdString(shown[i].label(spec.promql.empty() ? spec.metric : "")),
               QString::fromStdString(label));
      QVERIFY2(shown[i].points == points, (c.lastPromQL() + "\nshown " + describe(shown[i].points) +
                                           "\nloaded " + describe(points))
                                              .c_str());
      ++i;
    }
  }
}

void TestDashboardPrometheus::canvasPanelsFollowRenamedSources() {
  DashboardCanvas canvas(nullptr, nullptr);
  Dashboard d;
  d.sources = {{"vm", m_vm.url().toString().toStdString(), {}, 60}};
  PanelSpec p;
  p.source = "vm";
  p.metric = "req_total";
  d.panels = {p, PanelSpec{}};
  canvas.setDashboard(d);
  QCOMPARE(canvas.panelsUsingSource("vm"), 1);
  QSignalSpy modified(&canvas, &DashboardCanvas::modified);
  canvas.setSources({{"victoria", m_vm.url().toString().toStdString(), {}, 60}},
                    {{"vm", "victoria"}});
  QCOMPARE(modified.count(), 1);
  QCOMPARE(QString::fromStdString(canvas.panels()[0]->spec().source), QStringLiteral("victoria"));
  QVERIFY(canvas.panels()[1]->spec().onCollector());
  const Dashboard after = canvas.dashboard();
  QCOMPARE(after.sources.size(), size_t(1));
  QVERIFY2(validateDashboard(after).is_ok(), validateDashboard(after).message().c_str());
  QSignalSpy done(canvas.panels()[0]->controller(), &PanelController::queryFinished);
  QVERIFY(done.count() > 0 || done.wait(10000));
  QVERIFY2(canvas.panels()[0]->controller()->error().isEmpty(),
           qPrintable(canvas.panels()[0]->controller()->error()));
}

void TestDashboardPrometheus::mainWindowOpensBrowsesAndSavesSources() {
  QTemporaryDir dir;
  const QString file = dir.filePath("sources.json");
  {
    QFile f(file);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QString(R"({"format":"tally-dashboard","version":2,"title":"With a source","live":false,
      "range":{"from":%2,"to":%3},
      "sources":[{"name":"vm","type":"prometheus","url":"%1","min_step":"1m"}],
      "panels":[{"metric":"api.errors","grid":{"x":0,"y":0,"w":6,"h":4}},
                {"source":"vm","metric":"req_total","fn":"sum","grid":{"x":6,"y":0,"w":6,"h":4}}]})")
                .arg(m_vm.url().toString())
                .arg(m_t0)
                .arg(m_t0 + 360)
                .toUtf8());
  }
  MainWindowOptions o;
  o.collector = QUrl(QStringLiteral("http://127.0.0.1:%1").arg(tally::testing::free_port()));
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = file;
  MainWindow w(o);
  w.show();
  QCOMPARE(w.canvas()->dataSources()->names(), QStringList{"vm"});
  QVERIFY(w.findChild<QAction*>("dataSourcesAction"));
  // The VictoriaMetrics panel draws while the collector is away.
  PanelController* vmPanel = w.canvas()->panels()[1]->controller();
  QTRY_VERIFY_WITH_TIMEOUT(vmPanel->hasData(), 10000);
  QVERIFY2(vmPanel->error().isEmpty(), qPrintable(vmPanel->error()));
  QCOMPARE(vmPanel->visibleSeries().at(0).points.size(), size_t(kMinutes));

  // The browser lists the source's metrics; a double-click adds a panel on that source.
  QComboBox* sources = w.browser()->sourceCombo();
  QVERIFY(sources->isVisibleTo(&w));
  QCOMPARE(sources->count(), 2);
  QSignalSpy loaded(w.browser(), &MetricBrowser::metricsLoaded);
  sources->setCurrentIndex(1);
  QVERIFY(loaded.wait(10000));
  QCOMPARE(w.browser()->model()->source(), QStringLiteral("vm"));
  QCOMPARE(w.browser()->model()->rowCount(), 4);
  emit w.browser()->metricActivated("req_total");
  QCOMPARE(w.canvas()->panels().size(), 3);
  const PanelSpec added = w.canvas()->panels()[2]->spec();
  QCOMPARE(QString::fromStdString(added.source), QStringLiteral("vm"));
  QCOMPARE(added.fn, Fn::kRate);

  // Saved and read back: the sources and the panels' sources survive.
  const QString saved = dir.filePath("saved.json");
  QVERIFY(w.saveDashboard(saved));
  Dashboard back;
  QString error;
  QVERIFY2(DashboardDocument::read(saved, &back, &error), qPrintable(error));
  QVERIFY(back.sources == w.canvas()->dataSources()->sources());
  QCOMPARE(back.panels.size(), size_t(3));
  QCOMPARE(QString::fromStdString(back.panels[2].source), QStringLiteral("vm"));

  // A file with a corrupt source is refused with its path and the field; nothing changes.
  const QString bad = dir.filePath("bad-source.json");
  {
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(
        R"({"format":"tally-dashboard","version":2,"sources":[{"name":"vm","type":"prometheus","url":"vm:8428"}]})");
  }
  QVERIFY(!DashboardDocument::read(bad, &back, &error));
  QVERIFY2(error.contains("bad-source.json") &&
               error.contains("sources[0].url: 'vm:8428' is not an http:// or https:// URL"),
           qPrintable(error));
  QVERIFY(!w.openDashboard(bad, false));
  QCOMPARE(w.canvas()->panels().size(), 3);
  QCOMPARE(w.canvas()->dataSources()->names(), QStringList{"vm"});
}

// A variable over a Prometheus source (VictoriaMetrics): its drop-down offers the source's label
// values; choosing one narrows the source's panel to what a panel with that filter written out
// shows, and "All" to what the panel without a filter shows.
void TestDashboardPrometheus::variableOverASourceNarrowsItsPanels() {
  QTemporaryDir dir;
  const QString file = dir.filePath("vars.json");
  {
    QFile f(file);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QString(R"({"format":"tally-dashboard","version":3,"live":false,
      "range":{"from":%2,"to":%3},
      "sources":[{"name":"vm","type":"prometheus","url":"%1","min_step":"1m"}],
      "variables":[{"name":"path","source":"vm","metric":"req_total","tag":"path"}],
      "panels":[{"source":"vm","metric":"req_total","fn":"sum","filters":[{"key":"path","op":"=","value":"$path"}],"grid":{"x":0,"y":0,"w":4,"h":4}},
                {"source":"vm","metric":"req_total","fn":"sum","filters":[{"key":"path","op":"=","value":"/b"}],"grid":{"x":4,"y":0,"w":4,"h":4}},
                {"source":"vm","metric":"req_total","fn":"sum","grid":{"x":8,"y":0,"w":4,"h":4}}]})")
                .arg(m_vm.url().toString())
                .arg(m_t0)
                .arg(m_t0 + 360)
                .toUtf8());
  }
  MainWindowOptions o;
  o.collector = QUrl(QStringLiteral("http://127.0.0.1:%1").arg(tally::testing::free_port()));
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = file;
  MainWindow w(o);
  w.show();
  PanelController* withVar = w.canvas()->panels()[0]->controller();
  PanelController* onlyB = w.canvas()->panels()[1]->controller();
  PanelController* all = w.canvas()->panels()[2]->controller();
  auto values = [](PanelController* c) {
    std::vector<double> out;
    for (const auto& s : c->visibleSeries())
      for (const auto& p : s.points) out.push_back(p.v);
    return out;
  };
  QTRY_VERIFY_WITH_TIMEOUT(withVar->hasData() && onlyB->hasData() && all->hasData(), 10000);
  QCOMPARE(values(withVar), values(all));  // All: no filter
  VariableBar* bar = w.variableBar();
  QTRY_COMPARE_WITH_TIMEOUT(bar->offered("path"), (std::vector<std::string>{"/a", "/b"}), 10000);
  QToolButton* button = bar->button("path");
  QVERIFY(button);
  bool triggered = false;
  for (QAction* a : button->menu()->actions())
    if (a->text() == "/b") {
      a->trigger();
      triggered = true;
    }
  QVERIFY(triggered);
  QTRY_VERIFY_WITH_TIMEOUT(
      !withVar->isLoading() && withVar->hasData() && values(withVar) == values(onlyB), 10000);
  QVERIFY2(withVar->lastPromQL().find("path=\"/b\"") != std::string::npos,
           withVar->lastPromQL().c_str());
  QVERIFY(values(onlyB) != values(all));
}

QTEST_MAIN(TestDashboardPrometheus)
#include "tst_dashboard_prometheus.moc"
