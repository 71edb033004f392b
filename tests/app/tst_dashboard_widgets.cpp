// Widgets offscreen against FakeApi (fixed answers): every chart type renders and exports at the
// requested size, hover and legend, decimation of a million points, zoom re-queries at a finer
// step, query errors in the panel, the unreachable-collector banner, dashboard files (corrupt and
// future versions refused, nothing overwritten; recent list; last one reopens), the grid, the
// editor, the range picker, and the live stream through a real ZeroMQ PUB socket.
#include <QAbstractItemModelTester>
#include <QCheckBox>
#include <QComboBox>
#include <QCryptographicHash>
#include <QDialog>
#include <QDropEvent>
#include <QElapsedTimer>
#include <QLabel>
#include <QLegendMarker>
#include <QLineEdit>
#include <QListWidget>
#include <QMenuBar>
#include <QMimeData>
#include <QPushButton>
#include <QSettings>
#include <QStandardItemModel>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableWidget>
#include <QUndoStack>
#include <QtTest>
#include <zmq.hpp>

#include "collector_client.h"
#include "core/csv.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "exporter.h"
#include "fake_api.h"
#include "health_monitor.h"
#include "live_subscriber.h"
#include "main_window.h"
#include "metric_tree_model.h"
#include "panel_chart.h"
#include "panel_chart_view.h"
#include "panel_controller.h"
#include "panel_editor.h"
#include "panel_table_model.h"
#include "panel_widget.h"
#include "resources.h"
#include "time_range_picker.h"

using namespace tally;
using namespace tally::dash;

namespace {

constexpr int64_t kFrom = 1700000000;

// A /api/query answer: `groups` series of n points from kFrom at `step`.
QByteArray queryJson(int groups, int n, int64_t step, const char* key = "region") {
  QByteArray out = "{\"metric\":\"user.signup\",\"kind\":\"counter\",\"fn\":\"sum\",\"from\":" +
                   QByteArray::number(kFrom) + ",\"to\":" + QByteArray::number(kFrom + n * step) +
                   ",\"step\":" + QByteArray::number(step) + ",\"resolution\":1,\"series\":[";
  out.reserve(n * groups * 24 + 200);
  for (int g = 0; g < groups; ++g) {
    if (g) out += ',';
    out +=
        "{\"tags\":{\"" + QByteArray(key) + "\":\"r" + QByteArray::number(g) + "\"},\"points\":[";
    for (int i = 0; i < n; ++i) {
      if (i) out += ',';
      double v = (g + 1) * 10 + 5 * std::sin(i / 7.0 + g);
      if (i == n / 3 && g == 0) v = 1000;  // a spike decimation must keep
      out +=
          '[' + QByteArray::number(kFrom + i * step) + ',' + QByteArray::number(v, 'g', 12) + ']';
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

QByteArray histogramJson() {
  QByteArray b =
      "{\"metric\":\"api.latency_ms\",\"count\":1000,\"sum\":50000,\"min\":1,\"max\":900,"
      "\"p50\":35.1,\"p90\":88,\"p99\":410.3,\"buckets\":[";
  double lo = 1;
  for (int i = 0; i < 40; ++i) {
    double hi = lo * 1.2;
    if (i) b += ',';
    b += "{\"lower\":" + QByteArray::number(lo) + ",\"upper\":" + QByteArray::number(hi) +
         ",\"count\":" + QByteArray::number(int(100 * std::exp(-std::pow((i - 20) / 6.0, 2)))) +
         "}";
    lo = hi;
  }
  return b + "]}";
}

QByteArray heatmapJson(int columns, int64_t step) {
  QByteArray b = "{\"metric\":\"api.latency_ms\",\"step\":" + QByteArray::number(step) +
                 ",\"from\":" + QByteArray::number(kFrom) +
                 ",\"to\":" + QByteArray::number(kFrom + columns * step) + ",\"columns\":[";
  for (int c = 0; c < columns; ++c) {
    if (c) b += ',';
    b += "{\"time\":" + QByteArray::number(kFrom + c * step) +
         ",\"count\":100,\"p50\":" + QByteArray::number(20 + c % 5) +
         ",\"p90\":" + QByteArray::number(80 + c % 7) + ",\"p99\":300,\"buckets\":[";
    double lo = 2;
    for (int i = 0; i < 25; ++i) {
      double hi = lo * 1.3;
      if (i) b += ',';
      b += "{\"lower\":" + QByteArray::number(lo) + ",\"upper\":" + QByteArray::number(hi) +
           ",\"count\":" +
           QByteArray::number(1 + int(50 * std::exp(-std::pow((i - 10 - c % 4) / 4.0, 2)))) + "}";
      lo = hi;
    }
    b += "]}";
  }
  return b + "]}";
}

// A /api/query answer for the gauge queue.depth (avg, 10 s buckets over [kFrom, kFrom + 100)): one
// series holding `points` (bucket offset from kFrom, value).
QByteArray gaugeAnswer(const std::vector<std::pair<int, double>>& points) {
  QByteArray json = "{\"metric\":\"queue.depth\",\"kind\":\"gauge\",\"fn\":\"avg\",\"from\":" +
                    QByteArray::number(kFrom) + ",\"to\":" + QByteArray::number(kFrom + 100) +
                    ",\"step\":10,\"resolution\":1,\"series\":[{\"tags\":{},\"points\":[";
  for (size_t i = 0; i < points.size(); ++i)
    json += (i ? "," : "") + QByteArray("[") + QByteArray::number(kFrom + points[i].first) + "," +
            QByteArray::number(points[i].second) + "]";
  return json + "]}]}";
}

int distinctColors(const QImage& img) {
  QSet<QRgb> colors;
  for (int y = 0; y < img.height(); y += 3)
    for (int x = 0; x < img.width(); x += 3) colors.insert(img.pixel(x, y));
  return int(colors.size());
}

TimeRangeSpec fixedRange(int64_t length) {
  TimeRangeSpec r;
  r.from = kFrom;
  r.to = kFrom + length;
  return r;
}

QByteArray fileBytes(const QString& path) {
  QFile f(path);
  f.open(QIODevice::ReadOnly);
  return f.readAll();
}

}  // namespace

class TestDashboardWidgets : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void cleanupTestCase();
  void init();
  void chartTypesRenderAndExport_data();
  void chartTypesRenderAndExport();
  void svgAndPdfExport();
  void legendHidesSeriesFromChartAndCsv();
  void csvEqualsShownSeries();
  void millionPointsAreDecimated();
  void zoomRequeriesWithFinerStep();
  void mouseZoomPanAndReset();
  void queryErrorShowsInPanel();
  void unreachableCollectorShowsBannerAndBacksOff();
  void badDashboardFileRefusedAndUntouched_data();
  void badDashboardFileRefusedAndUntouched();
  void saveRecentAndReopenLast();
  void shortcutListShowsEveryKeyOfTheWindow();
  void canvasAddMoveResizeRemove();
  void metricDropSetsPanelMetric();
  void editorBuildsSpecFromWidgets();
  void editorRefusesBadRegex();
  void rangePickerPresets();
  void liveSubscriberDeliversExactTopicsOnly();
  void liveUpdatesReplaceBucketsInPanel();
  void plotLayerDrawsWhereTheAxesSay_data();
  void plotLayerDrawsWhereTheAxesSay();
  void openBucketDrawnPartial_data();
  void openBucketDrawnPartial();
  void missingBucketsAreGapsNotLines();
  void outageIsAGapNotZeros();
  void bannerClearsAsSoonAsDataFlows();
  void untitledTakesFileNameAndViewingIsNotEditing();
  void removePanelClosesHoleAndUndoes();
  void windowSizeAndFolderRemembered();
  void distinctColoursAndFilterInTitle();
  void dragZoomStopsAtNow();

 private:
  FakeApi* m_api = nullptr;
  CollectorClient* m_client = nullptr;
};

void TestDashboardWidgets::initTestCase() {
  QStandardPaths::setTestModeEnabled(true);
  QCoreApplication::setOrganizationName("TallyTest");
  QCoreApplication::setApplicationName("tst_dashboard_widgets");
  initTallyResources();
  m_api = new FakeApi;
  m_client = new CollectorClient(m_api->url(), this);
  m_api->route("/healthz", "{\"status\":\"ok\",\"uptime_s\":3,\"series\":5}");
  m_api->route("/api/metrics",
               "{\"metrics\":[{\"name\":\"api.errors\",\"kind\":\"counter\",\"series\":4},"
               "{\"name\":\"api.latency_ms\",\"kind\":\"distribution\",\"series\":2},"
               "{\"name\":\"queue.depth\",\"kind\":\"gauge\",\"series\":1},"
               "{\"name\":\"user.signup\",\"kind\":\"counter\",\"series\":3}]}");
  m_api->route("/api/tags?metric=user.signup",
               "{\"metric\":\"user.signup\",\"tags\":{\"region\":[\"eu\",\"us\"]}}");
  m_api->route("/api/tags?metric=api.errors",
               "{\"metric\":\"api.errors\",\"tags\":{\"endpoint\":[\"/cart\",\"/"
               "login\"],\"status\":[\"500\",\"503\"]}}");
  m_api->route("/api/query", queryJson(3, 120, 10));
  m_api->route("/api/histogram", histogramJson());
  m_api->route("/api/heatmap", heatmapJson(60, 60));
}

void TestDashboardWidgets::cleanupTestCase() {
  delete m_api;  // it has no parent: LeakSanitizer counted it and its canned answers as leaked
  m_api = nullptr;
}

void TestDashboardWidgets::init() {
  QSettings().clear();
  PanelChart::reloadSettings();
}

void TestDashboardWidgets::chartTypesRenderAndExport_data() {
  QTest::addColumn<QString>("chart");
  QTest::addColumn<QString>("fn");
  QTest::addColumn<int>("legendEntries");
  QTest::newRow("line") << "line"
                        << "sum" << 3;
  QTest::newRow("stacked") << "stacked"
                           << "sum" << 3;
  QTest::newRow("bars") << "bars"
                        << "sum" << 3;
  QTest::newRow("histogram") << "histogram"
                             << "sum" << 4;
  QTest::newRow("heatmap") << "heatmap"
                           << "sum" << 3;
}

void TestDashboardWidgets::chartTypesRenderAndExport() {
  QFETCH(QString, chart);
  QFETCH(QString, fn);
  QFETCH(int, legendEntries);
  PanelWidget panel(m_client, nullptr);
  panel.resize(700, 380);
  panel.show();
  panel.controller()->setRange(fixedRange(chart == "heatmap" ? 3600 : 1200));
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  PanelSpec s;
  s.metric = chart == "histogram" || chart == "heatmap" ? "api.latency_ms" : "user.signup";
  s.chart = *parseChartType(chart.toStdString());
  s.fn = parse_fn(fn.toStdString()).value();
  s.groupBy = {"region"};
  s.unit = "ms";
  panel.setSpec(s);
  QVERIFY(done.wait(5000));
  QVERIFY(done.first().first().toBool());
  panel.flushRedraw();
  PanelChart* pc = panel.chartView()->panelChart();
  QCOMPARE(pc->seriesNames().size(), legendEntries);
  QVERIFY(pc->drawnPoints() > 0);
  // Hover in the middle of the plot tells a time (or bin) and values.
  QRectF plot = pc->chart()->plotArea();
  QPointF mid = pc->chart()->mapToValue(plot.center(), pc->chart()->series().first());
  QVERIFY(!pc->hoverText(*panel.controller(), mid).isEmpty());
  // PNG export: requested size, not blank.
  QImage img = Exporter::renderPanel(*panel.controller(), QSize(640, 360));
  QCOMPARE(img.size(), QSize(640, 360));
  QVERIFY2(distinctColors(img) > 20, qPrintable(QString::number(distinctColors(img))));
  QTemporaryDir dir;
  QString path = dir.filePath(chart + ".png");
  QString err;
  QVERIFY2(Exporter::writePanelImage(*panel.controller(), path, QSize(1200, 500), &err),
           qPrintable(err));
  QImage back(path);
  QCOMPARE(back.size(), QSize(1200, 500));
  QVERIFY(panel.messageLabel()->isHidden());
}

void TestDashboardWidgets::svgAndPdfExport() {
  PanelController c(m_client, nullptr);
  c.setRange(fixedRange(1200));
  QSignalSpy done(&c, &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  c.setSpec(s);
  QVERIFY(done.wait(5000));
  QTemporaryDir dir;
  QString err;
  QVERIFY(Exporter::writePanelImage(c, dir.filePath("p.svg"), QSize(800, 400), &err));
  QVERIFY(fileBytes(dir.filePath("p.svg")).contains("<svg"));
  QVERIFY(Exporter::writePanelImage(c, dir.filePath("p.pdf"), QSize(800, 400), &err));
  QVERIFY(fileBytes(dir.filePath("p.pdf")).startsWith("%PDF"));
  QVERIFY(Exporter::writeDashboardImage("Dash", "range", {&c}, dir.filePath("d.png"),
                                        QSize(1000, 700), &err));
  QCOMPARE(QImage(dir.filePath("d.png")).size(), QSize(1000, 700));
  QVERIFY(!Exporter::writePanelImage(c, "/nonexistent-dir/x.png", QSize(100, 100), &err));
  QVERIFY(err.contains("/nonexistent-dir/x.png"));
}

void TestDashboardWidgets::legendHidesSeriesFromChartAndCsv() {
  PanelWidget panel(m_client, nullptr);
  panel.resize(700, 380);
  panel.controller()->setRange(fixedRange(1200));
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  s.groupBy = {"region"};
  panel.setSpec(s);
  QVERIFY(done.wait(5000));
  panel.flushRedraw();
  auto* chart = panel.chartView()->chart();
  QCOMPARE(chart->series().size(), 3);
  // A legend click hides the group: the same path as clicking the marker.
  auto markers = chart->legend()->markers(chart->series().at(1));
  QCOMPARE(markers.size(), 1);
  emit markers.first()->clicked();
  panel.flushRedraw();
  QVERIFY(panel.controller()->hiddenSeries().contains("region=r1"));
  QVERIFY(!chart->series().at(1)->isVisible());
  QCOMPARE(panel.controller()->visibleSeries().size(), size_t(2));
  QVERIFY(!QString::fromStdString(panel.controller()->csv()).contains(",r1,"));
  emit chart->legend()->markers(chart->series().at(1)).first()->clicked();
  panel.flushRedraw();
  QCOMPARE(panel.controller()->visibleSeries().size(), size_t(3));
}

void TestDashboardWidgets::csvEqualsShownSeries() {
  PanelController c(m_client, nullptr);
  c.setRange(fixedRange(600));  // half of what the API returns
  QSignalSpy done(&c, &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  s.groupBy = {"region"};
  c.setSpec(s);
  QVERIFY(done.wait(5000));
  auto rows = parseCsv(c.csv());
  auto shown = c.visibleSeries();
  size_t n = 0;
  for (const auto& se : shown) n += se.points.size();
  QCOMPARE(rows.size(), n + 1);
  QCOMPARE(shown.front().points.size(), size_t(60));  // 600 s at 10 s
  size_t row = 1;
  for (const auto& se : shown)
    for (const auto& p : se.points) {
      QCOMPARE(std::stoll(rows[row][0]), p.t);
      QCOMPARE(rows[row][4], se.tags[0].value);
      QCOMPARE(std::stod(rows[row][5]), p.v);
      ++row;
    }
  PanelTableModel* model = nullptr;
  Q_UNUSED(model);
}

void TestDashboardWidgets::millionPointsAreDecimated() {
  FakeApi big;
  big.route("/api/query", queryJson(1, 1000000, 1));
  CollectorClient client(big.url());
  PanelWidget panel(&client, nullptr);
  panel.resize(900, 400);
  panel.show();
  panel.controller()->setRange(fixedRange(1000000));
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  panel.setSpec(s);
  QVERIFY(done.wait(30000));
  QCOMPARE(panel.controller()->series()->series[0].points.size(), size_t(1000000));
  QElapsedTimer t;
  t.start();
  for (int i = 0; i < 5; ++i) panel.flushRedraw();
  qint64 perRedraw = t.elapsed() / 5;
  qInfo("redraw of 1,000,000 points: %lld ms", perRedraw);
  PanelChart* pc = panel.chartView()->panelChart();
  const int px = int(pc->chart()->plotArea().width());
  QVERIFY2(pc->drawnPoints() <= 2 * px + 2,
           qPrintable(QString("%1 points for %2 px").arg(pc->drawnPoints()).arg(px)));
  bool spike = false;
  for (const auto& run : pc->lineRuns(pc->seriesNames().first()))
    for (const QPointF& p : run.points) spike |= p.y() == 1000;
  QVERIFY(spike);
  QVERIFY2(perRedraw < 500, qPrintable(QString::number(perRedraw)));
}

void TestDashboardWidgets::zoomRequeriesWithFinerStep() {
  PanelWidget panel(m_client, nullptr);
  panel.resize(1000, 400);
  panel.show();
  panel.controller()->setNowFunction([] { return kFrom + 3600; });  // 1 s data still kept
  panel.controller()->setPixelWidth(900);
  panel.controller()->setRange(fixedRange(3600));
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  panel.setSpec(s);
  QVERIFY(done.wait(5000));
  panel.controller()->setPixelWidth(900);
  QString first = m_api->lastRequest("/api/query");
  QVERIFY2(first.contains("step=15"), qPrintable(first));
  emit panel.chartView()->zoomRequested(kFrom + 600, kFrom + 900);
  QVERIFY(done.wait(5000));
  QString zoomed = m_api->lastRequest("/api/query");
  QVERIFY2(zoomed.contains("step=1&") && zoomed.contains(QString("from=%1").arg(kFrom + 600)),
           qPrintable(zoomed));
  QVERIFY(panel.controller()->isZoomed());
  emit panel.chartView()->resetZoomRequested();
  QVERIFY(done.wait(5000));
  QVERIFY(!panel.controller()->isZoomed());
  QVERIFY(m_api->lastRequest("/api/query").contains("step=15"));
}

void TestDashboardWidgets::mouseZoomPanAndReset() {
  PanelWidget panel(m_client, nullptr);
  panel.resize(900, 420);
  panel.show();
  QVERIFY(QTest::qWaitForWindowExposed(&panel));
  panel.controller()->setNowFunction([] { return kFrom + 1200; });
  panel.controller()->setRange(fixedRange(1200));
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  panel.setSpec(s);
  QVERIFY(done.wait(5000));
  panel.flushRedraw();
  PanelChartView* view = panel.chartView();
  QSignalSpy zoom(view, &PanelChartView::zoomRequested);
  QSignalSpy reset(view, &PanelChartView::resetZoomRequested);
  const QRectF plot = view->chart()->plotArea();
  auto at = [&](double fx) {
    return view->mapFromScene(QPointF(plot.left() + plot.width() * fx, plot.center().y()));
  };
  // Rubber band from 25% to 75% of the plot: the middle half of the window.
  QTest::mousePress(view->viewport(), Qt::LeftButton, Qt::NoModifier, at(0.25));
  QTest::mouseMove(view->viewport(), at(0.5));
  QTest::mouseMove(view->viewport(), at(0.75));
  QTest::mouseRelease(view->viewport(), Qt::LeftButton, Qt::NoModifier, at(0.75));
  QCOMPARE(zoom.size(), 1);
  const qint64 from = zoom[0][0].toLongLong(), to = zoom[0][1].toLongLong();
  QVERIFY2(std::abs(from - (kFrom + 300)) <= 10 && std::abs(to - (kFrom + 900)) <= 10,
           qPrintable(QString("%1..%2").arg(from - kFrom).arg(to - kFrom)));
  QTRY_VERIFY_WITH_TIMEOUT(panel.controller()->isZoomed() && !panel.controller()->isLoading(),
                           5000);
  panel.flushRedraw();
  // Right-drag pans: the window moves by the dragged span, keeping its length.
  zoom.clear();
  QTest::mousePress(view->viewport(), Qt::RightButton, Qt::NoModifier, at(0.6));
  QTest::mouseMove(view->viewport(), at(0.4));
  QTest::mouseRelease(view->viewport(), Qt::RightButton, Qt::NoModifier, at(0.4));
  QCOMPARE(zoom.size(), 1);
  const qint64 len = zoom[0][1].toLongLong() - zoom[0][0].toLongLong();
  QVERIFY(std::abs(len - (to - from)) <= 2);
  QVERIFY(zoom[0][0].toLongLong() > from);  // dragged left: later times
  // Double-click resets.
  QTest::mouseDClick(view->viewport(), Qt::LeftButton, Qt::NoModifier, at(0.5));
  QCOMPARE(reset.size(), 1);
  QTRY_VERIFY_WITH_TIMEOUT(!panel.controller()->isZoomed(), 3000);
}

void TestDashboardWidgets::queryErrorShowsInPanel() {
  FakeApi bad;
  bad.route("/api/query", "{\"error\":\"fn 'rate' is not defined for gauges\"}", 400);
  CollectorClient client(bad.url());
  PanelWidget panel(&client, nullptr);
  panel.show();
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "queue.depth";
  s.fn = Fn::kRate;
  panel.setSpec(s);
  QVERIFY(done.wait(5000));
  QCOMPARE(done.first().first().toBool(), false);
  QVERIFY(panel.messageLabel()->isVisible());
  QVERIFY2(panel.messageLabel()->text().contains("fn 'rate' is not defined for gauges"),
           qPrintable(panel.messageLabel()->text()));
  QImage img = Exporter::renderPanel(*panel.controller(), QSize(400, 300));
  QCOMPARE(img.size(), QSize(400, 300));
}

void TestDashboardWidgets::unreachableCollectorShowsBannerAndBacksOff() {
  // A port nobody listens on: bind, note, close.
  QTcpServer probe;
  probe.listen(QHostAddress::LocalHost, 0);
  const quint16 port = probe.serverPort();
  probe.close();
  MainWindowOptions o;
  o.collector = QUrl(QStringLiteral("http://127.0.0.1:%1").arg(port));
  o.live = "tcp://127.0.0.1:1";
  MainWindow w(o);
  w.show();
  QTRY_VERIFY_WITH_TIMEOUT(w.health()->state() == HealthMonitor::State::Unreachable, 5000);
  QTRY_VERIFY_WITH_TIMEOUT(w.banner()->isVisible(), 3000);
  const int first = w.health()->nextRetrySeconds();
  QTRY_VERIFY_WITH_TIMEOUT(
      w.health()->nextRetrySeconds() > first || w.health()->nextRetrySeconds() >= 1, 5000);
  // Panels say why they are empty.
  QVERIFY(!w.canvas()->panels().isEmpty());
  PanelWidget* p = w.canvas()->panels().first();
  QTRY_VERIFY_WITH_TIMEOUT(!p->controller()->error().isEmpty(), 5000);
  QVERIFY(p->controller()->error().contains("unreachable"));
  // The collector comes up: banner goes, panels re-query.
  FakeApi up;
  up.route("/healthz", "{\"status\":\"ok\",\"uptime_s\":1,\"series\":1}");
  up.route("/api/query", queryJson(1, 10, 10));
  w.client()->setBaseUrl(up.url());
  w.health()->checkNow();
  QTRY_VERIFY_WITH_TIMEOUT(w.health()->state() == HealthMonitor::State::Healthy, 5000);
  QTRY_VERIFY_WITH_TIMEOUT(!w.banner()->isVisible(), 3000);
  QTRY_VERIFY_WITH_TIMEOUT(p->controller()->error().isEmpty(), 5000);
}

void TestDashboardWidgets::badDashboardFileRefusedAndUntouched_data() {
  QTest::addColumn<QString>("file");
  QTest::addColumn<QString>("reason");
  QTest::newRow("corrupt") << "corrupt-truncated.json"
                           << "not valid JSON";
  QTest::newRow("future version") << "future-version.json"
                                  << "newer Tally";
  QTest::newRow("bad chart") << "corrupt-chart.json"
                             << "panels[1].chart";
  QTest::newRow("missing") << "does-not-exist.json"
                           << "does-not-exist.json";
}

void TestDashboardWidgets::badDashboardFileRefusedAndUntouched() {
  QFETCH(QString, file);
  QFETCH(QString, reason);
  QTemporaryDir dir;
  QString path = dir.filePath(file);
  QFile::copy(QStringLiteral(TALLY_TEST_DATA "/") + file, path);
  const QByteArray before = fileBytes(path);
  MainWindowOptions o;
  o.collector = m_api->url();
  MainWindow w(o);
  const Dashboard current = w.canvas()->dashboard();
  QVERIFY(!w.openDashboard(path, false));
  QVERIFY(w.canvas()->dashboard() == current);
  QCOMPARE(fileBytes(path), before);
  QString message = w.statusBar()->currentMessage();
  QVERIFY2(message.contains(path) && message.contains(reason), qPrintable(message));
  Dashboard d;
  QString error;
  QVERIFY(!DashboardDocument::read(path, &d, &error));
  QVERIFY(error.startsWith(path));
  // Closing the window does not write the refused file either.
  w.document()->setModified(false);
  w.close();
  QCOMPARE(fileBytes(path), before);
}

void TestDashboardWidgets::shortcutListShowsEveryKeyOfTheWindow() {
  MainWindowOptions o;
  o.collector = m_api->url();
  MainWindow w(o);
  w.show();
  QVERIFY(QTest::qWaitForWindowExposed(&w));
  auto* help = w.findChild<QAction*>("shortcutsAction");
  QVERIFY(help);
  QCOMPARE(help->shortcut(), QKeySequence(QKeySequence::HelpContents));
  help->trigger();
  auto* dialog = w.findChild<QDialog*>("shortcutsDialog");
  QVERIFY(dialog && dialog->isVisible());
  auto* table = dialog->findChild<QTableWidget*>("shortcutsTable");
  QVERIFY(table);
  QMap<QString, QString> rows;
  for (int i = 0; i < table->rowCount(); ++i)
    rows.insert(table->item(i, 0)->text(), table->item(i, 1)->text());
  // Every action of the window that has keys is listed with them, under its menu text.
  int withKeys = 0;
  QSet<QAction*> actions;
  for (QAction* a : w.findChildren<QAction*>()) actions.insert(a);
  for (QAction* m : w.menuBar()->actions())
    if (m->menu())
      for (QAction* a : m->menu()->actions()) actions.insert(a);
  for (QAction* a : actions) {
    if (a->shortcut().isEmpty()) continue;
    ++withKeys;
    QString name = a->text().remove('&');
    if (name.endsWith(QStringLiteral("…"))) name.chop(1);
    QVERIFY2(rows.value(name) == a->shortcut().toString(QKeySequence::NativeText),
             qPrintable(name + ": " + rows.value(name)));
  }
  QVERIFY2(withKeys >= 8, qPrintable(QStringList(rows.keys()).join(", ")));
  QCOMPARE(rows.value("Live"),
           QKeySequence(Qt::CTRL | Qt::Key_L).toString(QKeySequence::NativeText));
  QCOMPARE(rows.value("Save"), QKeySequence(QKeySequence::Save).toString(QKeySequence::NativeText));
  QVERIFY(rows.contains("Pan"));  // the charts' mouse gestures too
  // The keys work: Ctrl+L toggles Live.
  const bool live = w.liveAction()->isChecked();
  QTest::keyClick(&w, Qt::Key_L, Qt::ControlModifier);
  QCOMPARE(w.liveAction()->isChecked(), !live);
  w.document()->setModified(false);
}

void TestDashboardWidgets::saveRecentAndReopenLast() {
  QTemporaryDir dir;
  const QString path = dir.filePath("mine.json");
  MainWindowOptions o;
  o.collector = m_api->url();
  {
    MainWindow w(o);
    w.canvas()->setTitle("Mine");
    PanelSpec s;
    s.metric = "api.errors";
    s.groupBy = {"status"};
    w.canvas()->addPanel(s);
    QVERIFY(w.saveDashboard(path));
    QCOMPARE(w.document()->recentFiles().first(), QFileInfo(path).absoluteFilePath());
    QVERIFY(!w.document()->isModified());
  }
  Dashboard saved;
  QString err;
  QVERIFY(DashboardDocument::read(path, &saved, &err));
  QCOMPARE(saved.title, std::string("Mine"));
  {
    MainWindow again(o);  // no --dashboard: the last one reopens
    QCOMPARE(again.document()->path(), QFileInfo(path).absoluteFilePath());
    QVERIFY(again.canvas()->dashboard() == saved);
    again.duplicate();
    QVERIFY(again.document()->path().isEmpty());
    QCOMPARE(again.canvas()->dashboard().title, std::string("Copy of Mine"));
    again.document()->setModified(false);
  }
}

void TestDashboardWidgets::canvasAddMoveResizeRemove() {
  DashboardCanvas canvas(m_client, nullptr);
  canvas.resize(1200, 800);
  Dashboard d;
  canvas.setDashboard(d);
  QSignalSpy modified(&canvas, &DashboardCanvas::modified);
  PanelSpec s;
  s.metric = "user.signup";
  PanelWidget* a = canvas.addPanel(s);
  PanelWidget* b = canvas.addPanel(s);
  QCOMPARE(a->spec().grid, (GridRect{0, 0, 6, 4}));
  QCOMPARE(b->spec().grid, (GridRect{6, 0, 6, 4}));
  QCOMPARE(a->geometry(), canvas.cellRect(a->spec().grid));
  canvas.movePanel(b, -6, 0);  // onto a: a is pushed below
  QCOMPARE(b->spec().grid, (GridRect{0, 0, 6, 4}));
  QCOMPARE(a->spec().grid, (GridRect{0, 4, 6, 4}));
  canvas.resizePanel(b, 10, 1);  // clamped to the grid
  QCOMPARE(b->spec().grid, (GridRect{0, 0, 12, 5}));
  QCOMPARE(a->spec().grid.y, 5);
  // Header drag snaps to cells.
  emit b->headerDragged(b, QPoint(int(canvas.width() / 12.0 * 3), 0), true);
  QCOMPARE(b->spec().grid.x, 0);  // full width cannot move right
  canvas.resizePanel(b, -6, 0);
  emit b->headerDragged(b, QPoint(int(canvas.width() / 12.0 * 3), DashboardCanvas::kRowHeight * 2),
                        true);
  QCOMPARE(b->spec().grid.x, 3);
  QCOMPARE(b->spec().grid.y, 2);
  emit b->gripDragged(b, QPoint(int(canvas.width() / 12.0 * 2), DashboardCanvas::kRowHeight), true);
  QCOMPARE(b->spec().grid.w, 8);
  QCOMPARE(b->spec().grid.h, 6);
  QCOMPARE(canvas.dashboard().panels.size(), size_t(2));
  canvas.removePanel(a);
  QCOMPARE(canvas.panels().size(), 1);
  QVERIFY(modified.size() >= 6);
  QVERIFY(validateDashboard(canvas.dashboard()).is_ok());
}

void TestDashboardWidgets::metricDropSetsPanelMetric() {
  DashboardCanvas canvas(m_client, nullptr);
  canvas.resize(1000, 600);
  canvas.show();
  PanelWidget* p = canvas.addPanel(PanelSpec{});
  QVERIFY(p->messageLabel()->text().contains("Drop a metric"));
  QMimeData mime;
  mime.setData(kMetricMimeType, "api.errors");
  QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QApplication::sendEvent(p, &enter);
  QVERIFY(enter.isAccepted());
  QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QApplication::sendEvent(p, &drop);
  QCOMPARE(p->spec().metric, std::string("api.errors"));
  QSignalSpy done(p->controller(), &PanelController::queryFinished);
  QVERIFY(done.wait(5000) || p->controller()->hasData());
}

void TestDashboardWidgets::editorBuildsSpecFromWidgets() {
  PanelSpec start;
  start.metric = "user.signup";
  PanelEditor editor(m_client, start);
  QSignalSpy tags(&editor, &PanelEditor::tagsLoaded);
  QSignalSpy metrics(&editor, &PanelEditor::metricsLoaded);
  QVERIFY(metrics.wait(5000) || metrics.size() > 0);
  QVERIFY(editor.metricCombo()->findText("api.errors") >= 0);
  editor.metricCombo()->setEditText("api.errors");
  QTRY_VERIFY_WITH_TIMEOUT(editor.hasTags() && editor.tagValues().count("status"), 5000);
  QCOMPARE(editor.groupByList()->count(), 2);
  auto row = editor.addFilterRow();
  QVERIFY(row.key->findText("status") >= 0);
  row.key->setCurrentText("status");
  QVERIFY(row.value->findText("503") >= 0);  // values completed for the chosen key
  row.op->setCurrentText("!=");
  row.value->setEditText("503");
  auto row2 = editor.addFilterRow();
  row2.key->setCurrentText("endpoint");
  row2.op->setCurrentText("=~");
  row2.value->setEditText("/(cart|login)");
  for (int i = 0; i < editor.groupByList()->count(); ++i)
    if (editor.groupByList()->item(i)->text() == "endpoint")
      editor.groupByList()->item(i)->setCheckState(Qt::Checked);
  editor.fnCombo()->setCurrentIndex(editor.fnCombo()->findData(QVariant::fromValue(Fn::kRate)));
  editor.chartCombo()->setCurrentIndex(
      editor.chartCombo()->findData(QVariant::fromValue(ChartType::Bars)));
  editor.titleEdit()->setText("Errors");
  editor.unitEdit()->setText("/s");
  editor.logYCheck()->setChecked(true);
  PanelSpec s = editor.spec();
  QCOMPARE(s.metric, std::string("api.errors"));
  QCOMPARE(s.filters.size(), size_t(2));
  QCOMPARE(s.filters[0], (TagFilter{"status", FilterOp::NotEq, "503"}));
  QCOMPARE(s.filters[1], (TagFilter{"endpoint", FilterOp::Regex, "/(cart|login)"}));
  QCOMPARE(s.groupBy, std::vector<std::string>{"endpoint"});
  QCOMPARE(s.fn, Fn::kRate);
  QCOMPARE(s.chart, ChartType::Bars);
  QCOMPARE(s.title, std::string("Errors"));
  QVERIFY(s.logY);
  // Percentiles are not offered for a counter.
  auto* model = qobject_cast<QStandardItemModel*>(editor.fnCombo()->model());
  QVERIFY(model &&
          !model->item(editor.fnCombo()->findData(QVariant::fromValue(Fn::kP99)))->isEnabled());
  editor.accept();
  QCOMPARE(editor.result(), int(QDialog::Accepted));
}

void TestDashboardWidgets::editorRefusesBadRegex() {
  PanelSpec start;
  start.metric = "user.signup";
  PanelEditor editor(nullptr, start);
  auto row = editor.addFilterRow();
  row.key->setEditText("region");
  row.op->setCurrentText("=~");
  row.value->setEditText("(unclosed");
  editor.show();
  editor.accept();
  QVERIFY(editor.isVisible());
  QVERIFY(editor.result() != int(QDialog::Accepted));
}

void TestDashboardWidgets::rangePickerPresets() {
  TimeRangePicker picker;
  QSignalSpy spy(&picker, &TimeRangePicker::rangeChanged);
  QComboBox* combo = picker.combo();
  QCOMPARE(combo->count(), 8);  // 7 presets and custom
  int i = combo->findData("6h");
  QVERIFY(i >= 0);
  emit combo->activated(i);
  QCOMPARE(spy.size(), 1);
  QCOMPARE(picker.range().relative, std::string("6h"));
  TimeRangeSpec custom = fixedRange(600);
  picker.setRange(custom);
  QVERIFY(combo->currentText().contains(QString::fromStdString(formatLocalTime(kFrom)).left(16)));
  TimeRangeSpec odd;
  odd.relative = "2h";
  picker.setRange(odd);
  QCOMPARE(combo->currentData().toString(), QString("2h"));
}

namespace {
std::string liveFrame(const char* metric, const char* region, int64_t t, double v,
                      LiveUpdate::State st) {
  LiveUpdate u;
  u.metric = metric;
  u.tags = {{"region", region}};
  u.kind = Kind::kCounter;
  u.time = t;
  u.state = st;
  u.value = u.sum = v;
  u.count = 1;
  return encodeLiveBatch({u});
}
void publish(zmq::socket_t& pub, const std::string& topic, const std::string& payload) {
  pub.send(zmq::buffer(topic), zmq::send_flags::sndmore);
  pub.send(zmq::buffer(payload), zmq::send_flags::none);
}
}  // namespace

void TestDashboardWidgets::liveSubscriberDeliversExactTopicsOnly() {
  zmq::context_t ctx;
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  pub.bind("tcp://127.0.0.1:*");
  const std::string endpoint = pub.get(zmq::sockopt::last_endpoint);
  LiveSubscriber sub;
  QVERIFY(sub.connectTo(QString::fromStdString(endpoint)));
  QSignalSpy spy(&sub, &LiveSubscriber::updatesReceived);
  sub.subscribe("user.signup");
  // Slow joiner: publish until the subscription is in place.
  QTRY_VERIFY_WITH_TIMEOUT(
      (publish(pub, "user.signup",
               liveFrame("user.signup", "eu", 100, 1, LiveUpdate::State::Partial)),
       spy.size() > 0),
      5000);
  // Probes still on their way would count below: a marker (time 99, the probes are at 100) goes
  // after them on the same ordered connection, and once it is in, so is every probe.
  int64_t lastTime = -1;
  connect(&sub, &LiveSubscriber::updatesReceived, &sub,
          [&lastTime](const QString&, const std::vector<LiveUpdate>& updates) {
            if (!updates.empty()) lastTime = updates.back().time;
          });
  publish(pub, "user.signup", liveFrame("user.signup", "eu", 99, 1, LiveUpdate::State::Partial));
  QTRY_COMPARE_WITH_TIMEOUT(lastTime, int64_t(99), 5000);
  spy.clear();
  const quint64 bad = sub.badFrames();
  publish(pub, "user.signup.extra",
          liveFrame("user.signup.extra", "eu", 100, 1, LiveUpdate::State::Final));
  publish(pub, "user.signup", "garbage\xff\xff");
  for (int i = 0; i < 50; ++i)  // a burst: one notifier edge must drain all of it
    publish(pub, "user.signup",
            liveFrame("user.signup", "eu", 100 + i, i, LiveUpdate::State::Final));
  QTRY_COMPARE_WITH_TIMEOUT(spy.size(), 50, 5000);
  for (const auto& args : spy) QCOMPARE(args.at(0).toString(), QString("user.signup"));
  QCOMPARE(sub.badFrames(), bad + 1);
  sub.unsubscribe("user.signup");
  QVERIFY(sub.subscriptions().isEmpty());
}

void TestDashboardWidgets::liveUpdatesReplaceBucketsInPanel() {
  zmq::context_t ctx;
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  pub.bind("tcp://127.0.0.1:*");
  LiveSubscriber sub;
  QVERIFY(sub.connectTo(QString::fromStdString(pub.get(zmq::sockopt::last_endpoint))));
  // The API knows 120 s of zeros; the clock is pinned so the window is deterministic.
  int64_t now = kFrom + 120;
  FakeApi api;
  QByteArray zeros = "{\"metric\":\"user.signup\",\"kind\":\"counter\",\"fn\":\"sum\",\"from\":" +
                     QByteArray::number(kFrom) + ",\"to\":" + QByteArray::number(now) +
                     ",\"step\":1,\"resolution\":1,\"series\":[]}";
  api.route("/api/query", zeros);
  CollectorClient client(api.url());
  PanelController c(&client, &sub);
  c.setNowFunction([&now] { return now; });
  c.setPixelWidth(900);
  TimeRangeSpec r;
  r.relative = "2m";
  c.setRange(r);
  c.setLive(true);
  QSignalSpy done(&c, &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  s.groupBy = {"region"};
  c.setSpec(s);
  QVERIFY(done.wait(5000));
  QCOMPARE(c.step(), int64_t(1));
  auto valueAt = [&c](const char* region, int64_t t) -> double {
    if (!c.series()) return -1;
    for (const auto& se : c.series()->series)
      if (!se.tags.empty() && se.tags[0].value == region)
        for (const auto& p : se.points)
          if (p.t == t) return p.v;
    return -1;
  };
  const int64_t b = now + 2;  // after coverage start
  now = b + 1;
  QTRY_VERIFY_WITH_TIMEOUT(
      (publish(pub, "user.signup",
               liveFrame("user.signup", "eu", b, 2, LiveUpdate::State::Partial)),
       c.tick(), valueAt("eu", b) == 2),
      5000);
  publish(pub, "user.signup", liveFrame("user.signup", "eu", b, 5, LiveUpdate::State::Partial));
  QTRY_COMPARE_WITH_TIMEOUT(valueAt("eu", b), 5.0, 3000);  // replaced, not 7
  publish(pub, "user.signup", liveFrame("user.signup", "eu", b, 6, LiveUpdate::State::Final));
  QTRY_COMPARE_WITH_TIMEOUT(valueAt("eu", b), 6.0, 3000);
  publish(pub, "user.signup", liveFrame("user.signup", "eu", b, 9, LiveUpdate::State::Correction));
  QTRY_COMPARE_WITH_TIMEOUT(valueAt("eu", b), 9.0, 3000);
  // The window slides with the clock; new groups appear.
  now += 5;
  publish(pub, "user.signup",
          liveFrame("user.signup", "us", now - 1, 4, LiveUpdate::State::Partial));
  QTRY_COMPARE_WITH_TIMEOUT(valueAt("us", now - 1), 4.0, 3000);
  c.tick();
  QCOMPARE(c.window().to, now);
  QCOMPARE(valueAt("eu", b), 9.0);
}

namespace {
// The drawn lines of a panel's group `label`: its runs between gaps, then the open-bucket tail.
std::vector<PanelChart::LineRun> linesOf(PanelChart* pc, const QString& label) {
  return pc->lineRuns(label);
}
}  // namespace

void TestDashboardWidgets::plotLayerDrawsWhereTheAxesSay_data() {
  QTest::addColumn<int>("typeIndex");  // ChartType
  QTest::addColumn<bool>("logY");
  for (auto [name, type] :
       {std::pair{"line", ChartType::Line}, std::pair{"stacked", ChartType::StackedArea},
        std::pair{"bars", ChartType::Bars}}) {
    QTest::addRow("%s, linear", name) << int(type) << false;
    QTest::addRow("%s, log", name) << int(type) << true;
  }
}

void TestDashboardWidgets::plotLayerDrawsWhereTheAxesSay() {
  // Lines, stacked layers and bars are drawn by the panel's own layer, not by Qt Charts: on screen
  // they must sit where Qt Charts' axes map their values, also after a pan moves the axis without
  // a new render. A line crosses the value's row; a band or bar fills from it down to the floor.
  QFETCH(int, typeIndex);
  QFETCH(bool, logY);
  const auto type = ChartType(typeIndex);
  std::vector<std::pair<int, double>> points;
  for (int i = 0; i < 10; ++i) points.emplace_back(i * 10, i < 5 ? 30 : 300);
  FakeApi api;
  api.route("/api/query", gaugeAnswer(points));
  CollectorClient client(api.url());
  PanelWidget panel(&client, nullptr);
  panel.resize(700, 360);
  panel.show();
  QVERIFY(QTest::qWaitForWindowExposed(&panel));
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.controller()->setRange(fixedRange(100));
  PanelSpec spec;
  spec.metric = "queue.depth";
  spec.fn = Fn::kAvg;
  spec.logY = logY;
  spec.chart = type;
  panel.setSpec(spec);
  QVERIFY(done.wait(5000));
  panel.flushRedraw();
  PanelChartView* view = panel.chartView();
  QChart* chart = view->chart();
  QAbstractSeries* ref = chart->series().first();
  // The rows of column x (scene coordinates) that hold the line's colour.
  auto rowsAt = [&](const QImage& img, double sceneX) {
    QList<int> rows;
    const QRectF area = chart->plotArea();
    const int x = view->mapFromScene(QPointF(sceneX, 0)).x();
    for (int y = int(area.top()); y <= int(area.bottom()); ++y) {
      const QPoint at = view->mapFromScene(QPointF(sceneX, y));
      // The first series' blue (#4e79a7), also where antialiasing blends it into the white
      // background across two rows; grid lines and labels are grey (blue equals red).
      const QColor c = img.pixelColor(x, at.y());
      if (c.blue() - c.red() > 25) rows << at.y();
    }
    return rows;
  };
  auto check = [&](const char* when) {
    QApplication::processEvents();
    const QImage img = view->grab().toImage();
    for (int i : {1, 3, 6, 8}) {
      const double v = i < 5 ? 30 : 300;
      const QPointF at = chart->mapToPosition(QPointF(kFrom + i * 10 + 5, v), ref);
      const QList<int> rows = rowsAt(img, at.x());
      const int want = view->mapFromScene(at).y();
      bool near = false;
      QStringList drawn;
      for (int r : rows) {
        near |= std::abs(r - want) <= 1;
        drawn << QString::number(r);
      }
      if (type != ChartType::Line && !rows.isEmpty()) {
        // Filled from the value's row (the first coloured row) down to the plot's floor.
        const int floor = view->mapFromScene(chart->plotArea().bottomLeft()).y();
        near = std::abs(rows.first() - want) <= 1 && rows.last() >= floor - 2 &&
               rows.size() >= rows.last() - rows.first() - 1;
      }
      QVERIFY2(near, qPrintable(QString("%1: at t=+%2 the drawing should reach row %3, drawn at %4")
                                    .arg(when)
                                    .arg(i * 10 + 5)
                                    .arg(want)
                                    .arg(drawn.join(','))));
    }
  };
  check("rendered");
  // A pan (as PanelChartView does while the right button drags): the axis moves, no render.
  chart->axes(Qt::Horizontal).first()->setRange(double(kFrom - 20), double(kFrom + 80));
  check("panned");
}

void TestDashboardWidgets::openBucketDrawnPartial_data() {
  QTest::addColumn<bool>("holdBack");
  QTest::newRow("dashed (default)") << false;
  QTest::newRow("held back until final") << true;
}

void TestDashboardWidgets::openBucketDrawnPartial() {
  QFETCH(bool, holdBack);
  if (holdBack) PanelChart::setPartialStyle(PanelChart::PartialStyle::HeldBack);
  // 10 buckets of 10 s; the last one (kFrom + 90) is still filling and holds 1 of the usual 50.
  QByteArray json = "{\"metric\":\"user.signup\",\"kind\":\"counter\",\"fn\":\"sum\",\"from\":" +
                    QByteArray::number(kFrom) + ",\"to\":" + QByteArray::number(kFrom + 100) +
                    ",\"step\":10,\"resolution\":1,\"series\":[{\"tags\":{},\"points\":[";
  for (int i = 0; i < 10; ++i)
    json += (i ? "," : "") + QByteArray("[") + QByteArray::number(kFrom + i * 10) + "," +
            (i == 9 ? "1" : "50") + "]";
  json += "],\"partial_from\":" + QByteArray::number(kFrom + 90) + "}]}";
  FakeApi api;
  api.route("/api/query", json);
  CollectorClient client(api.url());
  PanelWidget panel(&client, nullptr);
  panel.resize(600, 300);
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.controller()->setRange(fixedRange(100));
  PanelSpec spec;
  spec.metric = "user.signup";
  panel.setSpec(spec);
  QVERIFY(done.wait(5000));
  panel.flushRedraw();
  PanelChart* pc = panel.chartView()->panelChart();
  const auto lines = linesOf(pc, "user.signup");
  QCOMPARE(pc->seriesNames(), QStringList{"user.signup"});  // one legend entry
  // The solid line ends at the last final bucket, whatever the style.
  QVERIFY(!lines.empty());
  const auto& solid = lines.front();
  QVERIFY(!solid.partial);
  QCOMPARE(solid.points.last(), QPointF(kFrom + 80, 50));
  if (holdBack) {
    QCOMPARE(int(lines.size()), 1);
  } else {
    QCOMPARE(int(lines.size()), 2);
    QVERIFY(lines[1].partial);  // drawn dashed in the group's colour
    QCOMPARE(lines[1].label, solid.label);
    QCOMPARE(lines[1].points, (QPolygonF{QPointF(kFrom + 80, 50), QPointF(kFrom + 90, 1)}));
  }
}

void TestDashboardWidgets::missingBucketsAreGapsNotLines() {
  // A gauge with no data in [kFrom + 30, kFrom + 60): the line stops and starts again.
  std::vector<std::pair<int, double>> points;
  for (int i = 0; i < 10; ++i)
    if (i < 3 || i >= 6) points.emplace_back(i * 10, 7);
  FakeApi api;
  api.route("/api/query", gaugeAnswer(points));
  CollectorClient client(api.url());
  PanelWidget panel(&client, nullptr);
  panel.resize(600, 300);
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.controller()->setRange(fixedRange(100));
  PanelSpec spec;
  spec.metric = "queue.depth";
  spec.fn = Fn::kAvg;
  panel.setSpec(spec);
  QVERIFY(done.wait(5000));
  panel.flushRedraw();
  const auto lines = linesOf(panel.chartView()->panelChart(), "queue.depth");
  QCOMPARE(int(lines.size()), 2);
  QCOMPARE(lines[0].points.last().x(), double(kFrom + 20));
  QCOMPARE(lines[1].points.first().x(), double(kFrom + 60));
}

void TestDashboardWidgets::outageIsAGapNotZeros() {
  zmq::context_t ctx;
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  pub.bind("tcp://127.0.0.1:*");
  LiveSubscriber sub;
  QVERIFY(sub.connectTo(QString::fromStdString(pub.get(zmq::sockopt::last_endpoint))));
  int64_t now = kFrom + 120;
  FakeApi api;
  api.route("/api/query",
            "{\"metric\":\"user.signup\",\"kind\":\"counter\",\"fn\":\"sum\","
            "\"from\":" +
                QByteArray::number(kFrom) + ",\"to\":" + QByteArray::number(now) +
                ",\"step\":1,\"resolution\":1,\"series\":[]}");
  CollectorClient client(api.url());
  PanelWidget panel(&client, &sub);
  panel.resize(700, 300);
  PanelController& c = *panel.controller();
  c.setNowFunction([&now] { return now; });
  TimeRangeSpec r;
  r.relative = "2m";
  c.setRange(r);
  c.setLive(true);
  QSignalSpy done(&c, &PanelController::queryFinished);
  PanelSpec s;
  s.metric = "user.signup";
  s.groupBy = {"region"};
  c.setSpec(s);
  QVERIFY(done.wait(5000));
  QCOMPARE(c.step(), int64_t(1));
  auto pointsFrom = [&c](int64_t t) {
    int n = 0;
    if (c.series())
      for (const auto& se : c.series()->series)
        for (const auto& p : se.points) n += p.t >= t;
    return n;
  };
  // Data flows for b .. b+2, then the collector goes away at b+3.
  const int64_t b = now + 2;
  now = b + 3;
  QTRY_VERIFY_WITH_TIMEOUT(
      (publish(pub, "user.signup",
               liveFrame("user.signup", "eu", b + 2, 4, LiveUpdate::State::Final)),
       c.tick(), pointsFrom(b + 2) == 1),
      5000);
  c.setCollectorReachable(false, b + 3);
  for (int i = 0; i < 20; ++i) {  // the window keeps sliding for 20 s
    ++now;
    c.tick();
  }
  QCOMPARE(c.window().to, b + 23);
  QCOMPARE(pointsFrom(b + 3), 0);  // unknown, not zero
  panel.flushRedraw();
  const auto lines = linesOf(panel.chartView()->panelChart(), "region=eu");
  QVERIFY(!lines.empty());
  for (const auto& l : lines) QVERIFY(l.points.last().x() < double(b + 3));
  QVERIFY(!panel.messageLabel()->isHidden());
  QVERIFY2(panel.messageLabel()->text().contains("Stale"),
           qPrintable(panel.messageLabel()->text()));
  // Back: the panel asks again and draws what the collector answers for the whole window.
  done.clear();
  c.setCollectorReachable(true);
  QVERIFY(done.wait(5000));
  QVERIFY(!c.unknownFrom());
  QVERIFY(panel.messageLabel()->isHidden() || !panel.messageLabel()->text().contains("Stale"));
}

void TestDashboardWidgets::bannerClearsAsSoonAsDataFlows() {
  zmq::context_t ctx;
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  pub.bind("tcp://127.0.0.1:*");
  QTcpServer probe;  // a port nobody listens on
  probe.listen(QHostAddress::LocalHost, 0);
  const quint16 port = probe.serverPort();
  probe.close();
  MainWindowOptions o;
  o.collector = QUrl(QStringLiteral("http://127.0.0.1:%1").arg(port));
  o.live = QString::fromStdString(pub.get(zmq::sockopt::last_endpoint));
  MainWindow w(o);
  Dashboard d;
  d.live = true;
  PanelSpec s;
  s.metric = "user.signup";
  d.panels = {s};
  w.setDashboard(d, QString());
  w.show();
  QTRY_VERIFY_WITH_TIMEOUT(w.banner()->isVisible(), 5000);
  // Backed off: the next poll is seconds away.
  QTRY_VERIFY_WITH_TIMEOUT(w.health()->nextRetrySeconds() >= 3, 10000);
  // The collector is back (same address from the app's point of view) and its stream flows.
  FakeApi up;
  up.route("/healthz", "{\"status\":\"ok\",\"uptime_s\":1,\"series\":1}");
  up.route("/api/query", queryJson(1, 10, 10));
  w.client()->setBaseUrl(up.url());
  QElapsedTimer clock;
  clock.start();
  QTRY_VERIFY_WITH_TIMEOUT(
      (publish(pub, "user.signup",
               liveFrame("user.signup", "eu", QDateTime::currentSecsSinceEpoch(), 1,
                         LiveUpdate::State::Partial)),
       !w.banner()->isVisible()),
      2000);
  QVERIFY2(clock.elapsed() < 2000, qPrintable(QString::number(clock.elapsed())));
  w.document()->setModified(false);
}

void TestDashboardWidgets::untitledTakesFileNameAndViewingIsNotEditing() {
  QTemporaryDir dir;
  MainWindowOptions o;
  o.collector = m_api->url();
  MainWindow w(o);
  w.newDashboard();
  QCOMPARE(w.canvas()->dashboard().title, std::string("Untitled"));
  QVERIFY(!DashboardCanvas::emptyHint().isEmpty());
  QVERIFY(!w.document()->isModified());
  // Looking at another range or toggling live is not an edit.
  TimeRangeSpec r;
  r.relative = "6h";
  w.rangePicker()->setRange(r);
  emit w.rangePicker()->rangeChanged(r);
  w.liveAction()->toggle();
  QVERIFY(!w.document()->isModified());
  PanelSpec s;
  s.metric = "user.signup";
  w.canvas()->addPanel(s);
  QVERIFY(w.saveDashboard(dir.filePath("checkout-errors.json")));
  QCOMPARE(w.canvas()->dashboard().title, std::string("checkout-errors"));
  QVERIFY2(w.windowTitle().startsWith("checkout-errors"), qPrintable(w.windowTitle()));
}

void TestDashboardWidgets::removePanelClosesHoleAndUndoes() {
  DashboardCanvas canvas(m_client, nullptr);
  canvas.resize(1200, 800);
  Dashboard d;
  PanelSpec a;
  a.metric = "user.signup";
  a.grid = {0, 0, 12, 4};
  PanelSpec b = a;
  b.title = "below";
  b.grid = {0, 4, 6, 4};
  d.panels = {a, b};
  canvas.setDashboard(d);
  QVERIFY(!canvas.undoStack()->canUndo());
  canvas.removePanel(canvas.panels().first());
  QCOMPARE(canvas.panels().size(), 1);
  QCOMPARE(canvas.panels().first()->spec().grid, (GridRect{0, 0, 6, 4}));  // moved up, no hole
  QVERIFY(canvas.undoStack()->canUndo());
  QCOMPARE(canvas.undoStack()->undoText(),
           QStringLiteral("Remove panel “user.signup”").replace("user.signup", "sum(user.signup)"));
  canvas.undoStack()->undo();
  QCOMPARE(canvas.dashboard().panels.size(), size_t(2));
  QCOMPARE(canvas.dashboard().panels[0].grid, (GridRect{0, 0, 12, 4}));
  QCOMPARE(canvas.dashboard().panels[1].grid, (GridRect{0, 4, 6, 4}));
  QVERIFY(!canvas.undoStack()->canUndo());
}

void TestDashboardWidgets::windowSizeAndFolderRemembered() {
  QTemporaryDir dir;
  MainWindowOptions o;
  o.collector = m_api->url();
  {
    MainWindow w(o);
    w.resize(900, 640);
    PanelSpec s;
    s.metric = "user.signup";
    w.canvas()->addPanel(s);
    QVERIFY(w.saveDashboard(dir.filePath("a.json")));
    w.close();
  }
  MainWindow again(o);
  QCOMPARE(again.size(), QSize(900, 640));
  QCOMPARE(QSettings().value("folders/dashboards").toString(),
           QFileInfo(dir.path()).absoluteFilePath());
}

void TestDashboardWidgets::distinctColoursAndFilterInTitle() {
  QSet<QRgb> colours;
  for (int i = 0; i < 40; ++i) colours.insert(PanelChart::seriesColor(i).rgb());
  QCOMPARE(colours.size(), 40);
  PanelSpec s;
  s.metric = "api.errors";
  s.fn = Fn::kRate;
  s.filters = {{"status", FilterOp::Eq, "500"}};
  s.groupBy = {"endpoint"};
  QCOMPARE(s.displayTitle(), std::string("rate(api.errors{status=500}) by endpoint"));
}

void TestDashboardWidgets::dragZoomStopsAtNow() {
  PanelWidget panel(m_client, nullptr);
  panel.resize(800, 400);
  panel.show();
  QVERIFY(QTest::qWaitForWindowExposed(&panel));
  int64_t now = kFrom + 1200;
  panel.controller()->setNowFunction([&now] { return now; });
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.controller()->setRange(fixedRange(1200));
  PanelSpec s;
  s.metric = "user.signup";
  panel.setSpec(s);
  QVERIFY(done.wait(5000));
  panel.flushRedraw();
  PanelChartView* view = panel.chartView();
  QSignalSpy zoom(view, &PanelChartView::zoomRequested);
  const QRect plot = view->mapFromScene(view->chart()->plotArea()).boundingRect();
  const QPoint from(plot.center().x(), plot.center().y());
  QTest::mousePress(view->viewport(), Qt::LeftButton, {}, from);
  QTest::mouseMove(view->viewport(), QPoint(view->width() - 2, from.y()));
  QTest::mouseRelease(view->viewport(), Qt::LeftButton, {}, QPoint(view->width() - 2, from.y()));
  QCOMPARE(zoom.size(), 1);
  QVERIFY2(zoom.first().at(1).toLongLong() <= now,
           qPrintable(QString("zoom to %1, now %2").arg(zoom.first().at(1).toLongLong()).arg(now)));
}

QTEST_MAIN(TestDashboardWidgets)
#include "tst_dashboard_widgets.moc"
