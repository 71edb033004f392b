// The dashboard against a real tally-collector process fed by the real SDK (tally::Client):
// a panel built through the editor's widgets holds exactly the API's numbers; group-by gives one
// series per tag value; live updates arrive over ZeroMQ and a late point's correction replaces
// the bucket's value; CSV export equals the shown data; PNG export has the requested size and is
// not blank; the headless command line exports and reports errors with its exit codes; the
// shipped dashboards' metrics exist.
#include <QAbstractItemModelTester>
#include <QComboBox>
#include <QDateTime>
#include <QDateTimeEdit>
#include <QDialogButtonBox>
#include <QEventLoop>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenu>
#include <QMessageBox>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QPlainTextEdit>
#include <QProcess>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableView>
#include <QTcpServer>
#include <QToolButton>
#include <QtTest>
#include <functional>
#include <map>

#include "annotation_dialog.h"
#include "cardinality_view.h"
#include "collector_client.h"
#include "collector_fixture.h"
#include "core/csv.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "exporter.h"
#include "headless.h"
#include "live_subscriber.h"
#include "main_window.h"
#include "panel_chart.h"
#include "panel_chart_view.h"
#include "panel_controller.h"
#include "panel_editor.h"
#include "panel_widget.h"
#include "resources.h"
#include "tally/client.h"
#include "tally/common/curve_keys.h"
#include "variable_bar.h"

using namespace tally;
using namespace tally::dash;

namespace {

// GET `path` (with its query) through Qt: the body as the API sent it.
QByteArray apiGet(const QUrl& base, const std::string& path) {
  QNetworkAccessManager nam;
  QUrl url = base;
  const QString p = QString::fromStdString(path);
  url.setPath(p.left(p.indexOf('?')));
  url.setQuery(p.mid(p.indexOf('?') + 1));
  QNetworkReply* reply = nam.get(QNetworkRequest(url));
  QEventLoop loop;
  QObject::connect(reply, &QNetworkReply::finished, &loop, &QEventLoop::quit);
  loop.exec();
  QByteArray body = reply->readAll();
  reply->deleteLater();
  return body;
}

// GET through Qt, parsed by the core: what the API says, independently of the panel.
QueryResult apiQuery(const QUrl& base, const QueryRequest& r) {
  const QByteArray body = apiGet(base, queryPath(r));
  auto q = parseQuery(std::string_view(body.constData(), size_t(body.size())));
  return q ? *q : QueryResult{};
}

// GET /api/annotations over the last hour, parsed by the core.
std::vector<Annotation> apiAnnotations(const QUrl& base) {
  const int64_t now = QDateTime::currentSecsSinceEpoch();
  const QByteArray body = apiGet(base, annotationsPath(now - 3600, now + 60));
  auto a = parseAnnotations(std::string_view(body.constData(), size_t(body.size())));
  return a ? *a : std::vector<Annotation>{};
}

// Calls `act` once on the first pop-up menu or modal window named `name` (a menu's exec() or a
// dialog's exec() runs its own event loop, so this polls from a timer).
void whenShown(const QString& name, std::function<void(QWidget*)> act) {
  auto* timer = new QTimer;
  timer->setInterval(20);
  QObject::connect(timer, &QTimer::timeout, [timer, name, act] {
    for (QWidget* w : {QApplication::activePopupWidget(), QApplication::activeModalWidget()})
      if (w && (w->objectName() == name || w->inherits(qPrintable(name)))) {
        timer->stop();
        timer->deleteLater();
        act(w);
        return;
      }
  });
  timer->start();
}

// Right-clicks the chart at `pos` (its viewport's coordinates) and picks the menu entry whose
// text starts with `entry`; false when there is none.
bool chooseFromChartMenu(PanelChartView* view, QPoint pos, const QString& entry,
                         QStringList* seen) {
  bool found = false;
  whenShown("chartMenu", [&](QWidget* w) {
    auto* menu = qobject_cast<QMenu*>(w);
    for (QAction* a : menu->actions()) {
      *seen << a->text();
      if (!found && a->text().startsWith(entry)) {
        found = true;
        menu->setActiveAction(a);
      }
    }
    QTest::keyClick(menu, found ? Qt::Key_Return : Qt::Key_Escape);
  });
  QTest::mousePress(view->viewport(), Qt::RightButton, {}, pos);
  QTest::mouseRelease(view->viewport(), Qt::RightButton, {}, pos);
  return found;
}

double total(const Series& s) {
  double t = 0;
  for (const auto& p : s.points) t += p.v;
  return t;
}

int distinctColors(const QImage& img) {
  QSet<QRgb> colors;
  for (int y = 0; y < img.height(); y += 2)
    for (int x = 0; x < img.width(); x += 2) colors.insert(img.pixel(x, y));
  return int(colors.size());
}

struct Run {
  int code = -1;
  QString out, err;
};

Run runDashboard(const QStringList& args) {
  QProcess p;
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.insert("QT_QPA_PLATFORM", "offscreen");
  p.setProcessEnvironment(env);
  p.start(TALLY_DASHBOARD_BIN, args);
  p.waitForFinished(60000);
  return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1,
          QString::fromUtf8(p.readAllStandardOutput()),
          QString::fromUtf8(p.readAllStandardError())};
}

}  // namespace

class TestDashboardIntegration : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void panelFromEditorHoldsApiNumbers();
  void groupByGivesOneSeriesPerTagValue();
  void csvExportEqualsShownData();
  void pngExportHasSizeAndIsNotBlank();
  void liveUpdatesArriveAndCorrectionsReplace();
  void liveSubscriberAuthenticatesWithCurve();
  void headlessExportWritesFiles();
  void headlessExitCodes();
  void shippedCollectorHealthDashboardResolves();
  void cardinalityViewShowsTheLargestAndOpensIt();
  void variablesNarrowThePanelsAndTheExport();
  void severalQueriesAnExpressionAndAnOffsetOnTheCollector();
  void annotationsAddedAndDeletedFromAChart();
  void headlessExportMarksAnnotations();

 private:
  CollectorFixture m_collector;
  std::unique_ptr<Client> m_sdk;
  CollectorClient* m_client = nullptr;
  std::unique_ptr<PanelWidget> m_panel;  // built through the editor, reused by the export tests
};

void TestDashboardIntegration::initTestCase() {
  QStandardPaths::setTestModeEnabled(true);
  initTallyResources();
  // Lateness 1 s: the live test waits for a bucket to become final.
  QVERIFY2(m_collector.start({"--lateness", "1s"}), "the collector did not start");
  ClientOptions o;
  o.endpoint = m_collector.ingest().toStdString();
  m_sdk = std::make_unique<Client>(o);
  // Known totals: api.errors by endpoint and status, user.signup by region.
  const std::map<std::pair<std::string, std::string>, int> errors = {{{"/login", "500"}, 7},
                                                                     {{"/login", "503"}, 2},
                                                                     {{"/cart", "500"}, 4},
                                                                     {{"/cart", "503"}, 9},
                                                                     {{"/search", "500"}, 1}};
  for (const auto& [k, n] : errors)
    for (int i = 0; i < n; ++i)
      m_sdk->count("api.errors", 1, {{"endpoint", k.first}, {"status", k.second}});
  for (int i = 0; i < 11; ++i) m_sdk->count("user.signup", 1, {{"region", "eu"}});
  for (int i = 0; i < 6; ++i) m_sdk->count("user.signup", 1, {{"region", "us"}});
  m_sdk->count("user.signup", 2.5, {{"region", "apac"}});
  for (int i = 1; i <= 200; ++i)
    m_sdk->observe("api.latency_ms", double(i), {{"endpoint", "/login"}});
  m_sdk->set_gauge("queue.depth", 12);
  QVERIFY(m_sdk->flush(std::chrono::seconds(10)));
  const int64_t flushed =
      QDateTime::currentSecsSinceEpoch();  // every point is stamped at or before this
  m_client = new CollectorClient(m_collector.url(), this);
  // An ack means durable (logged), not yet aggregated: wait until queries see every point.
  auto apiTotal = [this](const char* metric) {
    QueryRequest r;
    r.metric = metric;
    r.from = QDateTime::currentSecsSinceEpoch() - 900;
    r.to = QDateTime::currentSecsSinceEpoch() + 1;
    r.step = 60;
    double t = 0;
    for (const auto& s : apiQuery(m_collector.url(), r).series) t += total(s);
    return t;
  };
  QTRY_VERIFY_WITH_TIMEOUT(apiTotal("user.signup") == 19.5 && apiTotal("api.errors") == 23, 15000);
  // Panels query [now - range, now): a point stamped in the current second is not in that yet
  // (it is when `now` is not a step boundary, because the last step rounds up). Start the panel
  // tests once that second is over, so they see every point whatever the clock.
  QTRY_VERIFY_WITH_TIMEOUT(QDateTime::currentSecsSinceEpoch() > flushed, 3000);
}

void TestDashboardIntegration::panelFromEditorHoldsApiNumbers() {
  PanelEditor editor(m_client, PanelSpec{});
  QSignalSpy metrics(&editor, &PanelEditor::metricsLoaded);
  QVERIFY(metrics.wait(10000));
  QVERIFY(editor.metricCombo()->findText("api.errors") >= 0);
  editor.metricCombo()->setCurrentIndex(editor.metricCombo()->findText("api.errors"));
  QTRY_VERIFY_WITH_TIMEOUT(editor.hasTags(), 10000);
  auto row = editor.addFilterRow();
  row.key->setCurrentIndex(row.key->findText("status"));
  row.op->setCurrentText("!=");
  QVERIFY(row.value->findText("503") >= 0);
  row.value->setCurrentIndex(row.value->findText("503"));
  for (int i = 0; i < editor.groupByList()->count(); ++i)
    if (editor.groupByList()->item(i)->text() == "endpoint")
      editor.groupByList()->item(i)->setCheckState(Qt::Checked);
  editor.fnCombo()->setCurrentIndex(editor.fnCombo()->findData(QVariant::fromValue(Fn::kSum)));
  editor.chartCombo()->setCurrentIndex(
      editor.chartCombo()->findData(QVariant::fromValue(ChartType::Line)));
  editor.accept();
  QCOMPARE(editor.result(), int(QDialog::Accepted));
  const PanelSpec spec = editor.spec();
  QCOMPARE(spec.filters.size(), size_t(1));

  m_panel = std::make_unique<PanelWidget>(m_client, nullptr);
  m_panel->resize(900, 420);
  m_panel->show();
  TimeRangeSpec range;
  range.relative = "15m";
  m_panel->controller()->setRange(range);
  QSignalSpy done(m_panel->controller(), &PanelController::queryFinished);
  m_panel->setSpec(spec);
  QVERIFY(done.wait(10000));
  QVERIFY2(done.last().first().toBool(), qPrintable(m_panel->controller()->error()));
  const QueryResult* shown = m_panel->controller()->series();
  QVERIFY(shown);
  // The same query straight from the API: identical buckets and values.
  QueryRequest r;
  r.metric = spec.metric;
  r.filters = spec.filters;
  r.groupBy = spec.groupBy;
  r.fn = spec.fn;
  r.from = shown->from;
  r.to = shown->to;
  r.step = shown->step;
  QueryResult api = apiQuery(m_collector.url(), r);
  QCOMPARE(api.series.size(), shown->series.size());
  for (size_t i = 0; i < api.series.size(); ++i) {
    QCOMPARE(shown->series[i].tags, api.series[i].tags);
    QCOMPARE(shown->series[i].points, api.series[i].points);
  }
  // And the numbers are what the SDK sent: status != 503, by endpoint.
  std::map<std::string, double> byEndpoint;
  for (const auto& s : shown->series) byEndpoint[s.tags.at(0).value] = total(s);
  for (const auto& [k, v] : byEndpoint) qInfo("api.errors{status!=503} %s: %g", k.c_str(), v);
  QCOMPARE(byEndpoint,
           (std::map<std::string, double>{{"/cart", 4}, {"/login", 7}, {"/search", 1}}));
  m_panel->flushRedraw();
}

void TestDashboardIntegration::groupByGivesOneSeriesPerTagValue() {
  PanelController c(m_client, nullptr);
  TimeRangeSpec range;
  range.relative = "15m";
  c.setRange(range);
  QSignalSpy done(&c, &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  s.groupBy = {"region"};
  c.setSpec(s);
  QVERIFY(done.wait(10000));
  QVERIFY(c.series());
  QCOMPARE(c.series()->series.size(), size_t(3));
  std::map<std::string, double> totals;
  for (const auto& se : c.series()->series) {
    QCOMPARE(se.tags.size(), size_t(1));
    QCOMPARE(se.tags[0].key, std::string("region"));
    totals[se.tags[0].value] = total(se);
    qInfo("user.signup %s: %g", se.tags[0].value.c_str(), total(se));
  }
  QCOMPARE(totals, (std::map<std::string, double>{{"apac", 2.5}, {"eu", 11}, {"us", 6}}));
  // Without group-by: one series holding everything.
  s.groupBy.clear();
  c.setSpec(s);
  QVERIFY(done.wait(10000));
  QCOMPARE(c.series()->series.size(), size_t(1));
  QCOMPARE(total(c.series()->series[0]), 19.5);
}

void TestDashboardIntegration::severalQueriesAnExpressionAndAnOffsetOnTheCollector() {
  // The collector's own Prometheus API evaluates the panel's PromQL: the same exact totals as
  // /api/query (user.signup: eu 11, us 6, apac 2.5).
  PanelController c(m_client, nullptr);
  TimeRangeSpec range;
  range.relative = "15m";
  c.setRange(range);
  QSignalSpy done(&c, &PanelController::queryFinished);
  auto totals = [&c] {
    std::map<std::string, double> out;
    if (const QueryResult* r = c.series())
      for (const auto& se : r->series) {
        std::string key;
        for (const auto& t : se.tags) key += (key.empty() ? "" : ",") + t.key + "=" + t.value;
        out[key] += total(se);
      }
    return out;
  };
  PanelSpec s;
  s.metric = "user.signup";
  QuerySpec eu;
  eu.ref = "B";
  eu.metric = "user.signup";
  eu.filters = {{"region", FilterOp::Eq, "eu"}};
  s.queries = {eu};
  // Without an expression: each query's series, tagged with its ref.
  c.setSpec(s);
  QVERIFY(done.wait(10000));
  QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
  // PromQL panels ask only for finished buckets: the step holding the points must end first.
  const std::map<std::string, double> both = {{"query=A", 19.5}, {"query=B", 11}};
  for (int i = 0; i < 40 && totals() != both; ++i) {
    QTest::qWait(250);
    c.refresh();
    QVERIFY(done.wait(10000));
  }
  QCOMPARE(totals(), both);
  QVERIFY(c.lastPromQL().find("label_replace") != std::string::npos);
  // An expression between them.
  s.expression = "A - B";
  c.setSpec(s);
  QVERIFY(done.wait(10000));
  QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
  QCOMPARE(totals(), (std::map<std::string, double>{{"", 8.5}}));
  s.expression = "B * 2 + A";
  c.setSpec(s);
  QVERIFY(done.wait(10000));
  QCOMPARE(totals(), (std::map<std::string, double>{{"", 41.5}}));
  // Group by on both sides matches series by their labels.
  s.groupBy = {"region"};
  s.queries[0].groupBy = {"region"};
  s.queries[0].filters.clear();
  s.expression = "A + B";
  c.setSpec(s);
  QVERIFY(done.wait(10000));
  QCOMPARE(totals(), (std::map<std::string, double>{
                         {"region=apac", 5}, {"region=eu", 22}, {"region=us", 12}}));
  // An offset looks back: an hour ago nothing was counted.
  PanelSpec back;
  back.metric = "user.signup";
  back.offsetS = 3600;
  c.setSpec(back);
  QVERIFY(done.wait(10000));
  QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
  QVERIFY(c.lastPromQL().find("offset 1h") != std::string::npos);
  double sum = 0;
  for (const auto& [k, v] : totals()) sum += v;
  QCOMPARE(sum, 0.0);
  // A raw expression on the collector.
  PanelSpec raw;
  raw.promql = "sum(increase({__name__=\"user.signup\", region!=\"us\"}[$__interval]))";
  c.setSpec(raw);
  QVERIFY(done.wait(10000));
  QVERIFY2(c.error().isEmpty(), qPrintable(c.error()));
  QCOMPARE(totals(), (std::map<std::string, double>{{"", 13.5}}));
  // A bad one is the panel's error, in the collector's words.
  raw.promql = "sum(";
  c.setSpec(raw);
  QVERIFY(done.wait(10000));
  QVERIFY(!c.error().isEmpty());
}

void TestDashboardIntegration::csvExportEqualsShownData() {
  QVERIFY(m_panel);
  QTemporaryDir dir;
  QString path = dir.filePath("panel.csv");
  QString err;
  QVERIFY2(Exporter::writeCsv(*m_panel->controller(), path, &err), qPrintable(err));
  QFile f(path);
  QVERIFY(f.open(QIODevice::ReadOnly));
  QByteArray text = f.readAll();
  auto rows = parseCsv(std::string_view(text.constData(), size_t(text.size())));
  QVERIFY(rows.size() > 1);
  QCOMPARE(rows[0],
           (std::vector<std::string>{"timestamp", "time", "metric", "fn", "endpoint", "value"}));
  size_t row = 1;
  for (const auto& s : m_panel->controller()->visibleSeries())
    for (const auto& p : s.points) {
      QVERIFY(row < rows.size());
      QCOMPARE(std::stoll(rows[row][0]), p.t);
      QCOMPARE(rows[row][2], std::string("api.errors"));
      QCOMPARE(rows[row][4], s.tags[0].value);
      QCOMPARE(std::stod(rows[row][5]), p.v);
      ++row;
    }
  QCOMPARE(row, rows.size());
  // The shown series are the API's, clipped to the window.
  const auto& all = m_panel->controller()->series()->series;
  QCOMPARE(m_panel->controller()->visibleSeries().size(), all.size());
}

void TestDashboardIntegration::pngExportHasSizeAndIsNotBlank() {
  QVERIFY(m_panel);
  QTemporaryDir dir;
  QString path = dir.filePath("panel.png");
  QString err;
  QVERIFY2(Exporter::writePanelImage(*m_panel->controller(), path, QSize(1000, 560), &err),
           qPrintable(err));
  QImage img(path);
  QCOMPARE(img.size(), QSize(1000, 560));
  QVERIFY(distinctColors(img) > 30);
}

void TestDashboardIntegration::liveUpdatesArriveAndCorrectionsReplace() {
  LiveSubscriber sub;
  QVERIFY(sub.connectTo(m_collector.live()));
  PanelController c(m_client, &sub);
  c.setPixelWidth(900);
  TimeRangeSpec range;
  range.relative = "5m";
  c.setRange(range);
  c.setLive(true);
  QSignalSpy done(&c, &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "live.test";
  s.groupBy = {"k"};
  c.setSpec(s);
  QVERIFY(done.wait(10000));  // 404 for a metric that does not exist yet is fine
  QCOMPARE(c.step(), int64_t(1));
  // The stream covers whole seconds from coverageStart on: wait for that second. A ZeroMQ
  // subscription reaches the collector a little after subscribe(): a probe metric subscribed
  // after live.test arrives only once both subscriptions have (one connection, in order).
  QTRY_VERIFY_WITH_TIMEOUT(QDateTime::currentSecsSinceEpoch() >= c.liveBuffer().coverageStart(),
                           5000);
  sub.subscribe("live.probe");
  const quint64 framesBefore = sub.framesReceived();
  QTRY_VERIFY_WITH_TIMEOUT((m_sdk->count("live.probe", 1), m_sdk->flush(std::chrono::seconds(1)) &&
                                                               sub.framesReceived() > framesBefore),
                           10000);
  const int queriesBefore = c.queriesIssued();
  m_sdk->count("live.test", 3, {{"k", "a"}});
  QVERIFY(m_sdk->flush(std::chrono::seconds(10)));
  auto findValue = [&c](double v) -> int64_t {
    if (!c.series()) return 0;
    for (const auto& se : c.series()->series)
      for (const auto& p : se.points)
        if (p.v == v) return p.t;
    return 0;
  };
  // The bucket appears from the stream, without another query.
  QTRY_VERIFY_WITH_TIMEOUT(findValue(3) != 0, 5000);
  QCOMPARE(c.queriesIssued(), queriesBefore);
  QVERIFY(c.liveBuffer().cellCount() > 0);
  const int64_t t0 = findValue(3);
  // Wait until the stream says the bucket is final (the collector's watermark passed it), then
  // send a late point for it.
  auto finalAt = [&c](int64_t t) {
    if (!c.series() || c.series()->series.empty()) return false;
    for (const auto& se : c.series()->series)
      if (se.partialFrom && *se.partialFrom <= t) return false;
    return true;
  };
  QTRY_VERIFY_WITH_TIMEOUT(finalAt(t0), 10000);
  ManualClock past(t0 * 1000 + 500);
  ClientOptions lateOptions;
  lateOptions.endpoint = m_collector.ingest().toStdString();
  lateOptions.clock = &past;
  {
    Client late(lateOptions);
    late.count("live.test", 4, {{"k", "a"}});
    QVERIFY(late.flush(std::chrono::seconds(10)));
  }
  // The correction replaces the bucket: 7, not 3 and not 3 + 7.
  auto valueAt = [&c](int64_t t) -> double {
    if (!c.series()) return -1;
    for (const auto& se : c.series()->series)
      for (const auto& p : se.points)
        if (p.t == t) return p.v;
    return -1;
  };
  QTRY_COMPARE_WITH_TIMEOUT(valueAt(t0), 7.0, 8000);
  QueryRequest r;
  r.metric = "live.test";
  r.groupBy = {"k"};
  r.from = t0;
  r.to = t0 + 1;
  r.step = 1;
  auto apiValue = [&] {
    QueryResult api = apiQuery(m_collector.url(), r);
    return api.series.size() == 1 && !api.series[0].points.empty() ? api.series[0].points.front().v
                                                                   : -1.0;
  };
  QTRY_COMPARE_WITH_TIMEOUT(apiValue(), 7.0, 5000);
}

void TestDashboardIntegration::headlessExportWritesFiles() {
  QTemporaryDir dir;
  Dashboard d;
  d.title = "Headless";
  d.range.relative = "15m";
  PanelSpec a;
  a.metric = "user.signup";
  a.groupBy = {"region"};
  a.chart = ChartType::StackedArea;
  a.grid = {0, 0, 6, 4};
  PanelSpec b;
  b.metric = "api.latency_ms";
  b.chart = ChartType::Histogram;
  b.grid = {6, 0, 6, 4};
  d.panels = {a, b};
  QFile f(dir.filePath("d.json"));
  QVERIFY(f.open(QIODevice::WriteOnly));
  f.write(QByteArray::fromStdString(serializeDashboard(d)));
  f.close();
  Run run = runDashboard({"--collector", m_collector.url().toString(), "--dashboard",
                          dir.filePath("d.json"), "--range", "15m", "--export-png",
                          dir.filePath("out.png"), "--size", "1200x700", "--export-csv",
                          dir.filePath("out.csv")});
  QVERIFY2(run.code == 0, qPrintable(run.err));
  QImage img(dir.filePath("out.png"));
  QCOMPARE(img.size(), QSize(1200, 700));
  QVERIFY(distinctColors(img) > 30);
  QVERIFY(run.out.contains(dir.filePath("out-1.csv")));
  QFile csv1(dir.filePath("out-1.csv")), csv2(dir.filePath("out-2.csv"));
  QVERIFY(csv1.open(QIODevice::ReadOnly) && csv2.open(QIODevice::ReadOnly));
  QByteArray t1 = csv1.readAll();
  double signups = 0;
  auto rows = parseCsv(std::string_view(t1.constData(), size_t(t1.size())));
  for (size_t i = 1; i < rows.size(); ++i) signups += std::stod(rows[i].back());
  QCOMPARE(signups, 19.5);
  QVERIFY(csv2.readAll().startsWith("lower,upper,count\n"));
  // One panel alone, as SVG.
  run = runDashboard({"--collector", m_collector.url().toString(), "--dashboard",
                      dir.filePath("d.json"), "--panel", "2", "--export-png",
                      dir.filePath("hist.svg"), "--size", "800x400"});
  QVERIFY2(run.code == 0, qPrintable(run.err));
  QVERIFY(QFileInfo(dir.filePath("hist.svg")).size() > 1000);
}

void TestDashboardIntegration::headlessExitCodes() {
  QTemporaryDir dir;
  const QString demo = QStringLiteral(TALLY_SOURCE_DIR "/resources/dashboards/demo.json");
  // Unreachable collector.
  QTcpServer probe;
  probe.listen(QHostAddress::LocalHost, 0);
  const quint16 port = probe.serverPort();
  probe.close();
  Run run = runDashboard({"--collector", QStringLiteral("http://127.0.0.1:%1").arg(port),
                          "--dashboard", demo, "--export-png", dir.filePath("x.png")});
  QCOMPARE(run.code, int(kExitUnreachable));
  QVERIFY2(run.err.contains("cannot reach the collector"), qPrintable(run.err));
  QVERIFY(!QFile::exists(dir.filePath("x.png")));
  // Corrupt and future dashboards: path and reason, nothing written.
  for (const char* name : {"corrupt-truncated.json", "future-version.json"}) {
    const QString path = QStringLiteral(TALLY_TEST_DATA "/") + name;
    run = runDashboard({"--collector", m_collector.url().toString(), "--dashboard", path,
                        "--export-png", dir.filePath("y.png")});
    QCOMPARE(run.code, int(kExitDashboard));
    QVERIFY2(run.err.contains(path), qPrintable(run.err));
    QVERIFY(!QFile::exists(dir.filePath("y.png")));
  }
  // A panel whose query fails: the file is still written, the exit code says so.
  Dashboard d;
  PanelSpec bad;
  bad.metric = "queue.depth";
  bad.fn = Fn::kRate;  // not defined for gauges
  d.panels = {bad};
  QFile f(dir.filePath("bad.json"));
  QVERIFY(f.open(QIODevice::WriteOnly));
  f.write(QByteArray::fromStdString(serializeDashboard(d)));
  f.close();
  run = runDashboard({"--collector", m_collector.url().toString(), "--dashboard",
                      dir.filePath("bad.json"), "--export-png", dir.filePath("z.png")});
  QCOMPARE(run.code, int(kExitQueryFailed));
  QVERIFY(QFile::exists(dir.filePath("z.png")));
  // Bad command line.
  run = runDashboard({"--export-png", dir.filePath("w.png"), "--size", "huge"});
  QCOMPARE(run.code, int(kExitUsage));
  // Unwritable output.
  run = runDashboard({"--collector", m_collector.url().toString(), "--dashboard", demo,
                      "--export-png", "/nonexistent-dir/out.png"});
  QCOMPARE(run.code, int(kExitCantWrite));
}

void TestDashboardIntegration::shippedCollectorHealthDashboardResolves() {
  // Every metric of the shipped "Collector health" dashboard exists in the collector's own
  // metrics: the export's queries all succeed.
  QTemporaryDir dir;
  Run run;
  QTRY_VERIFY_WITH_TIMEOUT(
      (run = runDashboard(
           {"--collector", m_collector.url().toString(), "--dashboard",
            QStringLiteral(TALLY_SOURCE_DIR "/resources/dashboards/collector-health.json"),
            "--export-png", dir.filePath("health.png")}),
       run.code == 0),
      20000);
  QCOMPARE(QImage(dir.filePath("health.png")).size(), QSize(1600, 900));
}

// The Cardinality dock against the real collector: api.errors (5 series) first, the tag keys by
// distinct values, the series created this hour, and a double-click opens the metric.
void TestDashboardIntegration::cardinalityViewShowsTheLargestAndOpensIt() {
  CardinalityView view(m_client);
  QAbstractItemModelTester metricsTester(view.metricsModel(),
                                         QAbstractItemModelTester::FailureReportingMode::QtTest);
  QAbstractItemModelTester keysTester(view.tagKeysModel(),
                                      QAbstractItemModelTester::FailureReportingMode::QtTest);
  QSignalSpy loaded(&view, &CardinalityView::loaded);
  QSignalSpy opened(&view, &CardinalityView::metricActivated);
  view.reload();
  QVERIFY(loaded.wait(10000));
  CardinalityModel* m = view.metricsModel();
  QVERIFY(m->rowCount() >= 4);
  QCOMPARE(m->data(m->index(0, 0), Qt::DisplayRole).toString(), QString("api.errors"));
  QCOMPARE(m->data(m->index(0, 2), Qt::DisplayRole).toLongLong(), 5);
  QCOMPARE(m->data(m->index(0, 3), Qt::DisplayRole).toLongLong(), 0);
  CardinalityModel* k = view.tagKeysModel();
  QCOMPARE(k->data(k->index(0, 0), Qt::DisplayRole).toString(), QString("endpoint"));
  QCOMPARE(k->data(k->index(0, 1), Qt::DisplayRole).toLongLong(), 3);
  QVERIFY2(view.summary()->text().contains("series in"), qPrintable(view.summary()->text()));
  view.show();
  QVERIFY(QTest::qWaitForWindowExposed(&view));
  QTableView* table = view.metricsView();
  const QModelIndex first = m->index(0, 0);
  QTest::mouseClick(table->viewport(), Qt::LeftButton, {}, table->visualRect(first).center());
  QTest::mouseDClick(table->viewport(), Qt::LeftButton, {}, table->visualRect(first).center());
  QCOMPARE(opened.count(), 1);
  QCOMPARE(opened.at(0).at(0).toString(), QString("api.errors"));
  // The button opens the selected row too.
  auto* open = view.findChild<QPushButton*>("openMetric");
  QVERIFY(open);
  table->setCurrentIndex(m->index(1, 0));
  open->click();
  QCOMPARE(opened.count(), 2);
  QCOMPARE(opened.at(1).at(0).toString(), m->metricAt(1));
}

void TestDashboardIntegration::annotationsAddedAndDeletedFromAChart() {
  QVERIFY(apiAnnotations(m_collector.url()).empty());
  DashboardCanvas canvas(m_client, nullptr);
  Dashboard d;
  d.range.relative = "15m";
  d.live = false;
  PanelSpec s;
  s.metric = "user.signup";
  s.grid = {0, 0, 12, 6};
  d.panels = {s};
  canvas.setDashboard(d);
  canvas.resize(1000, 480);
  canvas.show();
  QVERIFY(QTest::qWaitForWindowExposed(&canvas));
  PanelWidget* panel = canvas.panels().first();
  QTRY_VERIFY_WITH_TIMEOUT(panel->controller()->hasData() && !panel->controller()->isLoading(),
                           10000);
  panel->flushRedraw();
  auto* view = panel->findChild<PanelChartView*>();
  QVERIFY(view);
  const QPoint at = view->mapFromScene(view->chart()->plotArea().center());
  const double clicked =
      view->chart()->mapToValue(view->mapToScene(at), view->chart()->series().first()).x();

  // Right-click › Add annotation at …: the dialog starts at that time; the title and tags typed
  // there reach the collector.
  QSignalSpy posted(&canvas, &DashboardCanvas::annotationPosted);
  QString dialogTime;
  whenShown("annotationDialog", [&](QWidget* w) {
    auto* dialog = qobject_cast<AnnotationDialog*>(w);
    dialogTime = dialog->timeEdit()->dateTime().toString("yyyy-MM-dd HH:mm:ss");
    QVERIFY(!dialog->findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Ok)->isEnabled());
    dialog->tagsEdit()->setText("service=api, env!=prod");  // not key=value: refused
    dialog->titleEdit()->setText("Deploy api 1.4");
    QVERIFY(!dialog->annotation());
    dialog->tagsEdit()->setText("service=api, env=prod");
    dialog->textEdit()->setPlainText("rolled out by ci");
    QVERIFY(dialog->findChild<QDialogButtonBox*>()->button(QDialogButtonBox::Ok)->isEnabled());
    dialog->accept();
  });
  QStringList entries;
  QVERIFY(chooseFromChartMenu(view, at, "Add annotation at", &entries));
  QCOMPARE(entries.size(), 1);  // no annotation under the mouse yet: nothing to delete
  QCOMPARE(
      dialogTime,
      QDateTime::fromSecsSinceEpoch(qint64(std::floor(clicked))).toString("yyyy-MM-dd HH:mm:ss"));
  QVERIFY(posted.wait(10000) || posted.count() == 1);
  std::vector<Annotation> stored = apiAnnotations(m_collector.url());
  QCOMPARE(stored.size(), size_t(1));
  QCOMPARE(stored[0].title, std::string("Deploy api 1.4"));
  QCOMPARE(stored[0].text, std::string("rolled out by ci"));
  QCOMPARE(stored[0].tags, (Tags{{"env", "prod"}, {"service", "api"}}));
  QCOMPARE(std::floor(stored[0].time), std::floor(clicked));
  QCOMPARE(stored[0].id, posted.first().first().toLongLong());
  // The panel marks it where it was clicked.
  QTRY_COMPARE_WITH_TIMEOUT(view->panelChart()->annotationMarks().size(), size_t(1), 10000);
  QCOMPARE(view->panelChart()->annotationMarks()[0].id, stored[0].id);

  // Right-click on the mark › Delete annotation, confirmed: gone from the collector and the chart.
  QSignalSpy deleted(&canvas, &DashboardCanvas::annotationDeleted);
  whenShown("QMessageBox",
            [](QWidget* w) { qobject_cast<QMessageBox*>(w)->button(QMessageBox::Yes)->click(); });
  entries.clear();
  QVERIFY(chooseFromChartMenu(view, at, "Delete annotation “Deploy api 1.4”", &entries));
  QCOMPARE(entries.size(), 2);
  QVERIFY(deleted.wait(10000) || deleted.count() == 1);
  QCOMPARE(deleted.first().first().toLongLong(), stored[0].id);
  QVERIFY(apiAnnotations(m_collector.url()).empty());
  QTRY_VERIFY_WITH_TIMEOUT(view->panelChart()->annotationMarks().empty(), 10000);
}

// The command line's export marks the collector's annotations as the window does.
void TestDashboardIntegration::headlessExportMarksAnnotations() {
  QVERIFY(apiAnnotations(m_collector.url()).empty());
  QTemporaryDir dir;
  Dashboard d;
  d.range.relative = "15m";
  PanelSpec s;
  s.metric = "user.signup";
  s.grid = {0, 0, 12, 6};
  d.panels = {s};
  QFile f(dir.filePath("d.json"));
  QVERIFY(f.open(QIODevice::WriteOnly));
  f.write(QByteArray::fromStdString(serializeDashboard(d)));
  f.close();
  // Pixels of the annotation mark's purple (#8e24aa, blended by antialiasing) in an export.
  auto exportedMarkPixels = [&](const QString& name) {
    Run run = runDashboard({"--collector", m_collector.url().toString(), "--dashboard",
                            dir.filePath("d.json"), "--export-png", dir.filePath(name), "--size",
                            "900x400"});
    if (run.code != 0) qWarning() << run.err;
    const QImage img = QImage(dir.filePath(name)).convertToFormat(QImage::Format_RGB32);
    int n = 0;
    for (int y = 0; y < img.height(); ++y)
      for (int x = 0; x < img.width(); ++x) {
        const QColor c = img.pixelColor(x, y);
        n += c.red() >= 0x70 && c.red() <= 0xb0 && c.green() <= 0x60 && c.blue() >= 0x90;
      }
    return n;
  };
  QCOMPARE(exportedMarkPixels("before.png"), 0);

  Annotation a;
  a.time = double(QDateTime::currentSecsSinceEpoch() - 450);
  a.title = "Deploy web 2.0";
  QEventLoop loop;
  int64_t id = 0;
  m_client->addAnnotation(a, &loop, [&](tally::Result<int64_t> r) {
    if (r) id = *r;
    loop.quit();
  });
  loop.exec();
  QVERIFY(id > 0);
  const int marked = exportedMarkPixels("after.png");
  // Removed again before checking, so a failure leaves the collector as the other tests expect.
  m_client->deleteAnnotation(id, &loop, [&](tally::Result<int64_t>) { loop.quit(); });
  loop.exec();
  QVERIFY(apiAnnotations(m_collector.url()).empty());
  // A dashed line down the plot and the marker at its top.
  QVERIFY2(marked >= 40, qPrintable(QString::number(marked)));
}

QTEST_MAIN(TestDashboardIntegration)
// Against a collector with CURVE on (docs/SECURITY.md), the dashboard's live subscriber takes
// its keys from TALLY_CURVE_SERVER_KEY and TALLY_CURVE_KEY_FILE, as the SDK does: with an allowed
// key it receives updates; without keys it receives nothing.
void TestDashboardIntegration::liveSubscriberAuthenticatesWithCurve() {
  QTemporaryDir dir;
  const auto server = tally::generate_curve_key_pair().value();
  const auto client = tally::generate_curve_key_pair().value();
  const std::string base = dir.filePath("server").toStdString();
  QVERIFY(tally::write_curve_key_files(base, server));
  QVERIFY(tally::write_curve_key_files(dir.filePath("client").toStdString(), client));
  const QString config = dir.filePath("curve.toml");
  {
    QFile f(config);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QByteArray::fromStdString("curve_secret_key_file = \"" + base +
                                      ".key_secret\"\ncurve_allowed_keys = [\"" +
                                      client.public_key + "\"]\n"));
  }
  CollectorFixture collector;
  QVERIFY(collector.start({"--config", config}));
  tally::ClientOptions o;
  o.endpoint = collector.ingest().toStdString();
  o.curve_server_key = server.public_key;
  o.curve_public_key = client.public_key;
  o.curve_secret_key = client.secret_key;
  tally::Client sdk(o);

  auto updatesWithin = [&](bool withKeys) {
    if (withKeys) {
      qputenv("TALLY_CURVE_SERVER_KEY", QByteArray::fromStdString(server.public_key));
      qputenv("TALLY_CURVE_KEY_FILE", dir.filePath("client.key_secret").toUtf8());
    }
    LiveSubscriber sub;
    const bool connected = sub.connectTo(collector.live());
    qunsetenv("TALLY_CURVE_SERVER_KEY");
    qunsetenv("TALLY_CURVE_KEY_FILE");
    if (!connected) return -1;
    sub.subscribe("auth.dash");
    QSignalSpy spy(&sub, &LiveSubscriber::updatesReceived);
    for (int i = 0; i < 16 && spy.isEmpty(); ++i) {
      sdk.count("auth.dash", 1);
      spy.wait(250);
    }
    return static_cast<int>(spy.size());
  };
  QVERIFY(updatesWithin(true) > 0);
  QCOMPARE(updatesWithin(false), 0);
}

// A dashboard variable over user.signup's regions (eu 11, us 6, apac 2.5): its drop-down offers
// the collector's values; choosing in it narrows every panel that names $region (= and !=, one
// value and several), retitles them, is saved with the dashboard without marking it modified;
// the command line's --var does the same for an export and refuses a name the file lacks.
void TestDashboardIntegration::variablesNarrowThePanelsAndTheExport() {
  QTemporaryDir dir;
  const QString file = dir.filePath("vars.json");
  {
    QFile f(file);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(R"({"format":"tally-dashboard","version":3,"title":"Signups","range":{"last":"15m"},
      "live":false,
      "variables":[{"name":"region","metric":"user.signup","tag":"region","multi":true}],
      "panels":[{"title":"Signups in $region","metric":"user.signup",
                 "filters":[{"key":"region","op":"=","value":"$region"}],
                 "grid":{"x":0,"y":0,"w":6,"h":4}},
                {"metric":"user.signup","filters":[{"key":"region","op":"!=","value":"${region}"}],
                 "grid":{"x":6,"y":0,"w":6,"h":4}}]})");
  }
  MainWindowOptions o;
  o.collector = m_collector.url();
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = file;
  MainWindow w(o);
  w.show();
  QCOMPARE(w.canvas()->panels().size(), qsizetype(2));
  PanelController* in = w.canvas()->panels()[0]->controller();
  PanelController* out = w.canvas()->panels()[1]->controller();
  auto shownTotal = [](PanelController* c) {
    double t = 0;
    if (const QueryResult* r = c->series())
      for (const auto& s : r->series) t += total(s);
    return t;
  };
  // All: the filters are left out.
  QTRY_COMPARE_WITH_TIMEOUT(shownTotal(in), 19.5, 10000);
  QTRY_COMPARE_WITH_TIMEOUT(shownTotal(out), 19.5, 10000);
  QCOMPARE(in->spec().displayTitle(), std::string("Signups in All"));

  VariableBar* bar = w.variableBar();
  QVERIFY(bar->isVisible());
  QToolButton* button = bar->button("region");
  QVERIFY(button);
  QCOMPARE(button->text(), QString("All"));
  QTRY_COMPARE_WITH_TIMEOUT(bar->offered("region"), (std::vector<std::string>{"apac", "eu", "us"}),
                            10000);
  auto trigger = [&](const QString& text) {
    for (QAction* a : button->menu()->actions())
      if (a->text() == text) {
        a->trigger();
        return true;
      }
    return false;
  };
  QVERIFY(trigger("eu"));
  QCOMPARE(button->text(), QString("eu"));
  QTRY_COMPARE_WITH_TIMEOUT(shownTotal(in), 11.0, 10000);
  QTRY_COMPARE_WITH_TIMEOUT(shownTotal(out), 8.5, 10000);
  QCOMPARE(in->spec().displayTitle(), std::string("Signups in eu"));
  QVERIFY(trigger("us"));  // multi-value: eu and us
  QCOMPARE(button->text(), QString("eu + us"));
  QTRY_COMPARE_WITH_TIMEOUT(shownTotal(in), 17.0, 10000);
  QTRY_COMPARE_WITH_TIMEOUT(shownTotal(out), 2.5, 10000);  // region != eu and != us
  QVERIFY(!w.document()->isModified());
  const Dashboard saved = w.canvas()->dashboard();
  QCOMPARE(saved.variables.at(0).current, (std::vector<std::string>{"eu", "us"}));
  QCOMPARE(saved.panels.at(0).filters.at(0).value, std::string("$region"));  // still the template
  QVERIFY(serializeDashboard(saved).find("\"version\": 3") != std::string::npos);
  QVERIFY(trigger("All"));
  QTRY_COMPARE_WITH_TIMEOUT(shownTotal(in), 19.5, 10000);

  // The same from the command line, for an export.
  Run run =
      runDashboard({"--collector", m_collector.url().toString(), "--dashboard", file, "--panel",
                    "1", "--var", "region=us", "--export-csv", dir.filePath("us.csv")});
  QVERIFY2(run.code == 0, qPrintable(run.err));
  QFile csv(dir.filePath("us.csv"));
  QVERIFY(csv.open(QIODevice::ReadOnly));
  const QByteArray text = csv.readAll();
  double us = 0;
  auto rows = parseCsv(std::string_view(text.constData(), size_t(text.size())));
  for (size_t i = 1; i < rows.size(); ++i) us += std::stod(rows[i].back());
  QCOMPARE(us, 6.0);
  run = runDashboard({"--collector", m_collector.url().toString(), "--dashboard", file, "--var",
                      "zone=eu", "--export-csv", dir.filePath("no.csv")});
  QCOMPARE(run.code, int(kExitUsage));
  QVERIFY2(run.err.contains("no variable 'zone'"), qPrintable(run.err));
}

#include "tst_dashboard_integration.moc"
