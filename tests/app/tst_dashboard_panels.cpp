// Stat, gauge and table panels, thresholds, the legend table, linked zoom and the shared
// crosshair, alerts and annotation markers: real widgets offscreen against FakeApi (fixed
// answers), with exact values.
#include <QAbstractItemModelTester>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPointer>
#include <QPushButton>
#include <QSettings>
#include <QStandardPaths>
#include <QTabBar>
#include <QTabWidget>
#include <QTableView>
#include <QTemporaryDir>
#include <QToolButton>
#include <QUndoStack>
#include <QtTest>

#include "alert_manager.h"
#include "collector_client.h"
#include "core/series_stats.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "dashboard_tab.h"
#include "exporter.h"
#include "fake_api.h"
#include "main_window.h"
#include "panel_chart.h"
#include "panel_chart_view.h"
#include "panel_controller.h"
#include "panel_widget.h"
#include "series_table.h"
#include "stat_painter.h"
#include "stat_view.h"
#include "theme.h"
#include "time_range_picker.h"

using namespace tally;
using namespace tally::dash;

namespace {

constexpr int64_t kFrom = 1700000000;

// Three series at a 10 s step from kFrom; the bucket at kFrom + 50 is still filling.
//   r0: 1 2 3 4 5 | 100     last 5, min 1, max 5, avg 3, total 15
//   r1: 10 x5      | 0      last 10, ..., total 50
//   r2: 7 at +20 only        all 7
QByteArray answer(double r1 = 10) {
  auto pts = [](std::vector<std::pair<int, double>> p) {
    QByteArray out = "[";
    for (size_t i = 0; i < p.size(); ++i)
      out += (i ? "," : "") + QByteArray("[") + QByteArray::number(kFrom + p[i].first) + "," +
             QByteArray::number(p[i].second) + "]";
    return out + "]";
  };
  const QByteArray partial = ",\"partial_from\":" + QByteArray::number(kFrom + 50);
  return "{\"metric\":\"queue.depth\",\"kind\":\"gauge\",\"fn\":\"avg\",\"from\":" +
         QByteArray::number(kFrom) + ",\"to\":" + QByteArray::number(kFrom + 60) +
         ",\"step\":10,\"resolution\":10,\"series\":["
         "{\"tags\":{\"region\":\"r0\"},\"points\":" +
         pts({{0, 1}, {10, 2}, {20, 3}, {30, 4}, {40, 5}, {50, 100}}) + partial +
         "},{\"tags\":{\"region\":\"r1\"},\"points\":" +
         pts({{0, r1}, {10, r1}, {20, r1}, {30, r1}, {40, r1}, {50, 0}}) + partial +
         "},{\"tags\":{\"region\":\"r2\"},\"points\":" + pts({{20, 7}}) + "}]}";
}

TimeRangeSpec range(int64_t from, int64_t to) {
  TimeRangeSpec r;
  r.from = from;
  r.to = to;
  return r;
}

PanelSpec gaugeSpec(ChartType chart) {
  PanelSpec s;
  s.metric = "queue.depth";
  s.fn = Fn::kAvg;
  s.groupBy = {"region"};
  s.chart = chart;
  return s;
}

// Pixels of exactly `color` in img.
int pixelsOf(const QImage& img, QColor color) {
  const QImage rgb = img.convertToFormat(QImage::Format_RGB32);
  const QRgb want = color.rgb();
  int n = 0;
  for (int y = 0; y < rgb.height(); ++y) {
    const auto* line = reinterpret_cast<const QRgb*>(rgb.constScanLine(y));
    for (int x = 0; x < rgb.width(); ++x) n += (line[x] & 0xffffff) == (want & 0xffffff);
  }
  return n;
}

}  // namespace

class TestDashboardPanels : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void cleanupTestCase();
  void tablePanelShowsEveryReductionOfFinalBuckets();
  void statAndGaugeColourEachSeriesByThreshold();
  void thresholdsAreLinesOnTimeCharts();
  void legendTableSortsSearchesFoldsAndHides();
  void zoomOnOnePanelMovesAllAndTheCrosshairFollows();
  void alertFiresAfterItsDurationAndResolves();
  void annotationsAreMarkedAndNamedOnHover();
  void everyEditUndoesAndRedoes();
  void undoBackToTheSavedFileIsUnmodified();
  void darkThemeOnScreenLightExports();
  void rowsCollapseTheirPanels();
  void severalDashboardsOpenInWindowsOfTheirOwn();
  void severalDashboardsOpenAsTabs();
  void aHiddenTabDrawsWhenShown();

 private:
  // A panel on the fake API showing `spec` over [kFrom, kFrom + 60), its query answered.
  void show(PanelWidget& panel, const PanelSpec& spec);
  FakeApi* m_api = nullptr;
  CollectorClient* m_client = nullptr;
};

void TestDashboardPanels::initTestCase() {
  QStandardPaths::setTestModeEnabled(true);
  m_api = new FakeApi;
  m_client = new CollectorClient(m_api->url(), this);
  m_api->route("/healthz", "{\"status\":\"ok\",\"uptime_s\":3,\"series\":3}");
  m_api->route("/api/query", answer());
  m_api->route("/api/annotations", "{\"annotations\":[]}");
}

void TestDashboardPanels::cleanupTestCase() {
  delete m_api;
  m_api = nullptr;
}

void TestDashboardPanels::show(PanelWidget& panel, const PanelSpec& spec) {
  panel.resize(720, 360);
  panel.show();
  panel.controller()->setRange(range(kFrom, kFrom + 60));
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.setSpec(spec);
  QVERIFY(done.wait(5000));
  panel.flushRedraw();
}

void TestDashboardPanels::tablePanelShowsEveryReductionOfFinalBuckets() {
  PanelWidget panel(m_client, nullptr);
  show(panel, gaugeSpec(ChartType::Table));
  QVERIFY(panel.seriesTable()->isVisible());
  QVERIFY(!panel.chartView()->isVisible());
  SeriesStatsModel* m = panel.seriesTable()->model();
  QAbstractItemModelTester tester(m, QAbstractItemModelTester::FailureReportingMode::QtTest);
  QCOMPARE(m->rowCount(), 3);
  // The open bucket (100 for r0, 0 for r1) counts in nothing.
  QCOMPARE(QString::fromStdString(panel.controller()->csv()),
           QStringLiteral("series,last,min,max,avg,total\n"
                          "region=r0,5,1,5,3,15\n"
                          "region=r1,10,10,10,10,50\n"
                          "region=r2,7,7,7,7,7\n"));
  m->sort(SeriesStatsModel::kTotal, Qt::DescendingOrder);
  QCOMPARE(m->index(0, 0).data().toString(), QStringLiteral("region=r1"));
  QCOMPARE(m->index(2, 0).data().toString(), QStringLiteral("region=r2"));
  QCOMPARE(m->index(0, SeriesStatsModel::kAvg).data(Qt::UserRole).toDouble(), 10.0);
  QCOMPARE(m->index(1, SeriesStatsModel::kMin).data().toString(), QStringLiteral("1"));
  panel.seriesTable()->searchEdit()->setText("r2");
  QCOMPARE(m->rowCount(), 1);
  QCOMPARE(m->index(0, SeriesStatsModel::kLast).data(Qt::UserRole).toDouble(), 7.0);
}

void TestDashboardPanels::statAndGaugeColourEachSeriesByThreshold() {
  for (ChartType chart : {ChartType::Stat, ChartType::Gauge}) {
    PanelWidget panel(m_client, nullptr);
    PanelSpec s = gaugeSpec(chart);
    s.reduce = Reduce::kAvg;  // r0 3 (base), r2 7 (orange), r1 10 (red)
    s.thresholds = {{6, "#f29900"}, {9, "#d93025"}};
    s.maxValue = 12;
    show(panel, s);
    QVERIFY(panel.statView()->isVisible());
    QVERIFY(!panel.chartView()->isVisible());
    QCOMPARE(StatPainter::valueColor(s, 3.0), QColor("#188038"));
    QCOMPARE(StatPainter::valueColor(s, 7.0), QColor("#f29900"));
    QCOMPARE(StatPainter::valueColor(s, 10.0), QColor("#d93025"));
    QCOMPARE(StatPainter::valueColor(s, 9.0), QColor("#d93025"));  // from the threshold on
    const QImage screen = panel.statView()->grab().toImage();
    const QImage exported = Exporter::renderPanel(*panel.controller(), QSize(720, 360));
    for (const QImage& img : {screen, exported}) {
      QVERIFY2(pixelsOf(img, QColor("#188038")) > 20, chartTypeName(chart));
      QVERIFY2(pixelsOf(img, QColor("#f29900")) > 20, chartTypeName(chart));
      QVERIFY2(pixelsOf(img, QColor("#d93025")) > 20, chartTypeName(chart));
    }
    // Without thresholds nothing is red or orange.
    s.thresholds.clear();
    panel.setSpec(s);
    panel.flushRedraw();
    const QImage plain = panel.statView()->grab().toImage();
    QCOMPARE(pixelsOf(plain, QColor("#d93025")), 0);
    QCOMPARE(pixelsOf(plain, QColor("#f29900")), 0);
  }
}

void TestDashboardPanels::thresholdsAreLinesOnTimeCharts() {
  PanelWidget panel(m_client, nullptr);
  PanelSpec s = gaugeSpec(ChartType::Line);
  show(panel, s);
  const QImage before = Exporter::renderPanel(*panel.controller(), QSize(720, 360));
  QCOMPARE(pixelsOf(before, QColor("#8e24aa")), 0);
  s.thresholds = {{8, "#8e24aa"}};
  panel.setSpec(s);
  panel.flushRedraw();
  QCOMPARE(panel.chartView()->panelChart()->thresholdMarks().size(), size_t(1));
  const QImage after = Exporter::renderPanel(*panel.controller(), QSize(720, 360));
  // A dashed line across the plot: hundreds of pixels of its colour.
  QVERIFY2(pixelsOf(after, QColor("#8e24aa")) > 200,
           qPrintable(QString::number(pixelsOf(after, QColor("#8e24aa")))));
}

void TestDashboardPanels::legendTableSortsSearchesFoldsAndHides() {
  PanelWidget panel(m_client, nullptr);
  PanelSpec s = gaugeSpec(ChartType::Line);
  s.legend = LegendMode::Table;
  s.legendRows = 2;
  show(panel, s);
  SeriesTable* legend = panel.legendTable();
  QVERIFY(legend->isVisible());
  SeriesStatsModel* m = legend->model();
  QAbstractItemModelTester tester(m, QAbstractItemModelTester::FailureReportingMode::QtTest);
  // By last, highest first; two rows, the third folded.
  QCOMPARE(m->rowCount(), 2);
  QCOMPARE(m->index(0, 0).data().toString(), QStringLiteral("region=r1"));
  QCOMPARE(m->index(1, 0).data().toString(), QStringLiteral("region=r2"));
  QVERIFY(legend->showAllButton()->isVisible());
  QCOMPARE(legend->showAllButton()->text(), QStringLiteral("Show all (1 more)"));
  legend->showAllButton()->click();
  QCOMPARE(m->rowCount(), 3);
  QCOMPARE(m->index(2, SeriesStatsModel::kMax).data(Qt::UserRole).toDouble(), 5.0);
  // Colours as the chart draws them, full names in the tooltip.
  QCOMPARE(m->index(0, 0).data(Qt::DecorationRole).value<QColor>(), PanelChart::seriesColor(1));
  QCOMPARE(m->index(0, 0).data(Qt::ToolTipRole).toString(), QStringLiteral("region=r1"));
  // Unticking a series hides it from the chart and the CSV; it stays in the table, unticked.
  QVERIFY(m->setData(m->index(0, 0), Qt::Unchecked, Qt::CheckStateRole));
  QVERIFY(panel.controller()->hiddenSeries().contains("region=r1"));
  QVERIFY(!QString::fromStdString(panel.controller()->csv()).contains("r1"));
  legend->refresh();
  QCOMPARE(m->rowCount(), 3);
  legend->searchEdit()->setText("R0");
  QCOMPARE(m->rowCount(), 1);
  QCOMPARE(m->index(0, 0).data().toString(), QStringLiteral("region=r0"));
  QCOMPARE(m->index(0, 0).data(Qt::CheckStateRole).toInt(), int(Qt::Checked));
}

void TestDashboardPanels::zoomOnOnePanelMovesAllAndTheCrosshairFollows() {
  DashboardCanvas canvas(m_client, nullptr);
  canvas.resize(1200, 700);
  canvas.show();
  Dashboard d;
  d.live = false;
  d.range = range(kFrom, kFrom + 60);
  d.panels = {gaugeSpec(ChartType::Line), gaugeSpec(ChartType::Bars), gaugeSpec(ChartType::Stat)};
  d.panels[1].grid.y = 4;
  d.panels[2].grid.x = 6;
  canvas.setDashboard(d);
  QCOMPARE(canvas.panels().size(), 3);
  for (auto* p : canvas.panels())
    QTRY_VERIFY_WITH_TIMEOUT(p->controller()->hasData() && !p->controller()->isLoading(), 5000);
  PanelWidget* first = canvas.panels()[0];
  emit first->chartView()->zoomRequested(kFrom + 10, kFrom + 40);
  for (auto* p : canvas.panels()) {
    QVERIFY(p->controller()->isZoomed());
    QCOMPARE(p->controller()->window().from, kFrom + 10);
    QCOMPARE(p->controller()->window().to, kFrom + 40);
  }
  emit canvas.panels()[1]->chartView()->resetZoomRequested();
  for (auto* p : canvas.panels()) {
    QVERIFY(!p->controller()->isZoomed());
    QCOMPARE(p->controller()->window().from, kFrom);
  }
  // The crosshair: the time under the mouse on one chart is a line with values on the others.
  for (auto* p : canvas.panels()) p->flushRedraw();
  emit first->chartView()->hovered(double(kFrom + 25));
  PanelChart* other = canvas.panels()[1]->chartView()->panelChart();
  QCOMPARE(other->crosshair(), std::optional<double>(double(kFrom + 25)));
  QVERIFY2(other->crosshairText().contains("region=r0: 3"), qPrintable(other->crosshairText()));
  QVERIFY(!first->chartView()->panelChart()->crosshair().has_value());  // not on its own
  emit first->chartView()->hovered(std::nan(""));
  QVERIFY(!other->crosshair().has_value());
}

void TestDashboardPanels::alertFiresAfterItsDurationAndResolves() {
  FakeApi api;
  api.route("/api/query", answer(10));
  api.route("/api/annotations", "{\"annotations\":[]}");
  CollectorClient client(api.url());
  DashboardCanvas canvas(&client, nullptr);
  Dashboard d;
  d.live = false;
  PanelSpec s = gaugeSpec(ChartType::Line);
  s.title = "Queue";
  s.alert = *parse_alert_rule("last over 1m > 8 for 20s");  // r1 (10) only
  d.panels = {s};
  canvas.setDashboard(d);
  PanelWidget* panel = canvas.panels().first();
  PanelController* c = panel->controller();
  int64_t now = kFrom + 60;
  c->setNowFunction([&now] { return now; });
  // Show the present: the window ends now.
  auto showNow = [&] {
    QSignalSpy done(c, &PanelController::queryFinished);
    c->setRange(range(kFrom, now));
    QVERIFY(done.wait(5000));
  };
  AlertManager alerts(&canvas);
  QAbstractItemModelTester tester(&alerts, QAbstractItemModelTester::FailureReportingMode::QtTest);
  QSignalSpy fired(&alerts, &AlertManager::fired);
  QSignalSpy resolved(&alerts, &AlertManager::resolved);
  showNow();
  alerts.evaluate();
  QCOMPARE(alerts.rowCount(), 1);
  QCOMPARE(alerts.rows()[0].state, AlertState::kPending);
  QCOMPARE(alerts.rows()[0].series, QStringLiteral("region=r1"));
  QVERIFY(panel->alertBadge()->isVisibleTo(panel));
  QVERIFY(panel->alertBadge()->text().contains("1 pending"));
  now = kFrom + 79;  // held 19 s
  showNow();
  alerts.evaluate();
  QCOMPARE(fired.count(), 0);
  // Zoomed into the past the panel is not judged: nothing fires from old data.
  c->zoomTo({kFrom, kFrom + 30});
  now = kFrom + 80;
  alerts.evaluate();
  QCOMPARE(fired.count(), 0);
  showNow();  // the held 20 s are met
  alerts.evaluate();
  QCOMPARE(fired.count(), 1);
  QCOMPARE(fired[0][0].toString(), QStringLiteral("Queue"));
  QCOMPARE(fired[0][1].toString(), QStringLiteral("region=r1"));
  QCOMPARE(fired[0][2].toDouble(), 10.0);
  QCOMPARE(fired[0][3].toString(), QStringLiteral("last over 1m > 8 for 20s"));
  QCOMPARE(alerts.firingCount(), 1);
  QCOMPARE(alerts.index(0, AlertManager::kState).data().toString(), QStringLiteral("firing"));
  QVERIFY(panel->alertBadge()->text().contains("1 firing"));
  alerts.evaluate();  // still firing: no second notification
  QCOMPARE(fired.count(), 1);
  // The value drops below the threshold: resolved, kept in the history.
  api.route("/api/query", answer(3));
  now = kFrom + 81;
  showNow();
  alerts.evaluate();
  QCOMPARE(resolved.count(), 1);
  QCOMPARE(alerts.firingCount(), 0);
  QCOMPARE(alerts.rowCount(), 1);
  QCOMPARE(alerts.index(0, AlertManager::kState).data().toString(), QStringLiteral("resolved"));
  QCOMPARE(alerts.index(0, AlertManager::kValue).data().toString(), QStringLiteral("3"));
  QVERIFY(!panel->alertBadge()->isVisibleTo(panel));
}

void TestDashboardPanels::annotationsAreMarkedAndNamedOnHover() {
  FakeApi api;
  api.route("/api/query", answer());
  api.route("/api/annotations",
            "{\"annotations\":["
            "{\"id\":1,\"time\":" +
                QByteArray::number(kFrom + 25) +
                ".5,\"title\":\"Deploy web 1.4\",\"text\":\"by ci\",\"tags\":{\"service\":\"web\"},"
                "\"source\":\"api\"},"
                "{\"id\":2,\"time\":" +
                QByteArray::number(kFrom - 500) + ",\"title\":\"Long ago\",\"source\":\"api\"}]}");
  CollectorClient client(api.url());
  DashboardCanvas canvas(&client, nullptr);
  canvas.resize(900, 400);
  canvas.show();
  Dashboard d;
  d.live = false;
  d.range = range(kFrom, kFrom + 60);
  d.panels = {gaugeSpec(ChartType::Line)};
  canvas.setDashboard(d);
  PanelController* c = canvas.panels().first()->controller();
  QTRY_COMPARE_WITH_TIMEOUT(c->annotations().size(), size_t(2), 5000);
  QVERIFY(api.lastRequest("/api/annotations")
              .contains(QStringLiteral("from=%1&to=%2").arg(kFrom).arg(kFrom + 60)));
  QCOMPARE(c->annotations()[0].title, std::string("Deploy web 1.4"));
  QCOMPARE(c->annotations()[0].time, double(kFrom) + 25.5);
  QCOMPARE(c->annotations()[0].tags, (Tags{{"service", "web"}}));
  QTRY_VERIFY_WITH_TIMEOUT(c->hasData() && !c->isLoading(), 5000);
  canvas.panels().first()->flushRedraw();
  const auto marks = canvas.panels().first()->chartView()->panelChart()->annotationMarks();
  QCOMPARE(marks.size(), size_t(1));  // the other is outside the window
  QCOMPARE(marks[0].at, double(kFrom) + 25.5);
  QCOMPARE(marks[0].text, QStringLiteral("Deploy web 1.4\nby ci"));
  const QImage img = Exporter::renderPanel(*c, QSize(900, 400));
  QVERIFY(pixelsOf(img, QColor(0x8e, 0x24, 0xaa)) > 50);
  c->setAnnotations({});
  const QImage none = Exporter::renderPanel(*c, QSize(900, 400));
  QCOMPARE(pixelsOf(none, QColor(0x8e, 0x24, 0xaa)), 0);
}

void TestDashboardPanels::everyEditUndoesAndRedoes() {
  DashboardCanvas canvas(m_client, nullptr);
  canvas.resize(1200, 800);
  Dashboard d;
  d.title = "Ops";
  d.live = false;
  d.range = range(kFrom, kFrom + 60);
  PanelSpec a = gaugeSpec(ChartType::Line);
  a.grid = {0, 0, 6, 4};
  PanelSpec b = gaugeSpec(ChartType::Bars);
  b.title = "B";
  b.grid = {6, 0, 6, 4};
  d.panels = {a, b};
  canvas.setDashboard(d);
  QUndoStack* undo = canvas.undoStack();
  QVERIFY(!undo->canUndo());
  std::vector<Dashboard> states = {canvas.dashboard()};
  auto step = [&](const QString& text) {
    QCOMPARE(undo->undoText(), text);
    states.push_back(canvas.dashboard());
  };
  canvas.movePanel(canvas.panels()[1], 0, 2);
  step("Move panel “B”");
  PanelSpec edited = canvas.panels()[0]->spec();
  edited.chart = ChartType::Stat;
  edited.thresholds = {{5, "#d93025"}};
  canvas.panels()[0]->setSpec(edited);
  emit canvas.modified();  // as the editor's OK does
  step("Edit panel “avg(queue.depth) by region”");
  PanelSpec added = gaugeSpec(ChartType::Table);
  added.title = "C";
  canvas.addPanel(added);
  step("Add panel “C”");
  Variable v;
  v.name = "region";
  v.metric = "queue.depth";
  v.tag = "region";
  canvas.setVariables({v});
  step("Edit variables");
  canvas.setTitle("Ops 2");
  canvas.noteEdited();
  step("Rename dashboard");
  canvas.removePanel(canvas.panels()[1]);
  step("Remove panel “B”");
  // Looking is not editing: no step.
  canvas.setRange(range(kFrom, kFrom + 30));
  canvas.setVariableValues("region", {"r1"});
  QCOMPARE(undo->count(), 6);
  // Back to the start, step by step; the range and the chosen value stay as they are now.
  PanelWidget* kept = canvas.panels()[0];
  for (int i = int(states.size()) - 2; i >= 0; --i) {
    undo->undo();
    Dashboard now = canvas.dashboard();
    Dashboard want = states[size_t(i)];
    QCOMPARE(now.panels, want.panels);
    QCOMPARE(now.title, want.title);
    QCOMPARE(now.variables.size(), want.variables.size());
    QCOMPARE(now.range, range(kFrom, kFrom + 30));
  }
  QVERIFY(!undo->canUndo());
  QCOMPARE(canvas.panels()[0], kept);  // a panel is reused, not rebuilt
  for (size_t i = 1; i < states.size(); ++i) {
    undo->redo();
    QCOMPARE(canvas.dashboard().panels, states[i].panels);
    QCOMPARE(canvas.dashboard().title, states[i].title);
  }
  QVERIFY(!undo->canRedo());
  QCOMPARE(canvas.dashboard().variables.size(), size_t(1));  // defined again
  // A new edit after an undo drops the redo.
  undo->undo();
  canvas.movePanel(canvas.panels()[0], 0, 1);
  QVERIFY(!undo->canRedo());
}

void TestDashboardPanels::undoBackToTheSavedFileIsUnmodified() {
  QTemporaryDir dir;
  const QString file = dir.filePath("d.json");
  Dashboard d;
  d.live = false;
  d.panels = {gaugeSpec(ChartType::Line)};
  QString err;
  QVERIFY2(DashboardDocument::write(d, file, &err), qPrintable(err));
  MainWindowOptions o;
  o.collector = m_api->url();
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = file;
  MainWindow w(o);
  QVERIFY(!w.document()->isModified());
  QAction* undoAction = w.findChild<QAction*>("undoAction");
  QAction* redoAction = w.findChild<QAction*>("redoAction");
  QVERIFY(undoAction && redoAction);
  QCOMPARE(undoAction->shortcut(), QKeySequence(QKeySequence::Undo));
  QVERIFY(!undoAction->isEnabled());
  w.canvas()->resizePanel(w.canvas()->panels()[0], 2, 1);
  QVERIFY(w.document()->isModified());
  QVERIFY(undoAction->isEnabled());
  QVERIFY2(undoAction->text().contains("Resize panel"), qPrintable(undoAction->text()));
  undoAction->trigger();
  QVERIFY(!w.document()->isModified());  // as saved
  QCOMPARE(w.canvas()->dashboard().panels[0].grid, d.panels[0].grid);
  redoAction->trigger();
  QVERIFY(w.document()->isModified());
  QCOMPARE(w.canvas()->dashboard().panels[0].grid.w, d.panels[0].grid.w + 2);
}

void TestDashboardPanels::darkThemeOnScreenLightExports() {
  QSettings().remove("view/theme");
  Theme::init();  // the offscreen platform's palette is light: "system" is light
  QCOMPARE(Theme::mode(), Theme::Mode::System);
  QVERIFY(!Theme::isDark());
  PanelWidget panel(m_client, nullptr);
  show(panel, gaugeSpec(ChartType::Line));
  PanelChart* chart = panel.chartView()->panelChart();
  QCOMPARE(chart->chart()->theme(), QChart::ChartThemeLight);
  Theme::setMode(Theme::Mode::Dark);
  QCOMPARE(QSettings().value("view/theme").toString(), QStringLiteral("dark"));
  QVERIFY(Theme::isDark());
  QVERIFY(QApplication::palette().color(QPalette::Window).lightness() < 64);
  panel.flushRedraw();
  QVERIFY(chart->isDark());
  QCOMPARE(chart->chart()->theme(), QChart::ChartThemeDark);
  // The series keep their colours and the chart its data.
  QCOMPARE(chart->seriesNames().size(), 3);
  const QImage screen = panel.chartView()->grab().toImage();
  QVERIFY(QColor(screen.pixel(screen.width() / 2, 4)).lightness() < 100);
  QVERIFY(QColor(screen.pixel(1, 1)).lightness() < 100);  // no light frame around it
  // Exports stay light.
  const QImage exported = Exporter::renderPanel(*panel.controller(), QSize(600, 300));
  QCOMPARE(QColor(exported.pixel(3, 3)), QColor(Qt::white));
  // A stat panel's gauge track follows the theme on screen only.
  Theme::setMode(Theme::Mode::Light);
  QVERIFY(!Theme::isDark());
  panel.flushRedraw();
  QCOMPARE(chart->chart()->theme(), QChart::ChartThemeLight);
  QVERIFY(QApplication::palette().color(QPalette::Window).lightness() > 128);
  QSettings().remove("view/theme");
}

void TestDashboardPanels::rowsCollapseTheirPanels() {
  DashboardCanvas canvas(m_client, nullptr);
  canvas.resize(1200, 1000);
  canvas.show();
  Dashboard d;
  d.live = false;
  d.range = range(kFrom, kFrom + 60);
  PanelSpec top = gaugeSpec(ChartType::Line);
  top.grid = {0, 0, 12, 3};
  PanelSpec inRow = gaugeSpec(ChartType::Stat);
  inRow.grid = {0, 4, 12, 3};
  PanelSpec below = gaugeSpec(ChartType::Table);
  below.grid = {0, 8, 12, 3};
  PanelSpec row;
  row.chart = ChartType::Row;
  row.title = "Details";
  row.grid = {0, 3, 12, 1};
  PanelSpec row2 = row;
  row2.title = "More";
  row2.grid.y = 7;
  d.panels = {top, row, inRow, row2, below};
  canvas.setDashboard(d);
  PanelWidget* rowWidget = canvas.panels()[1];
  PanelWidget* member = canvas.panels()[2];
  PanelWidget* last = canvas.panels()[4];
  QVERIFY(member->isVisible());
  QVERIFY(!rowWidget->chartView()->isVisible());  // a row is its header
  const int lastY = last->y();
  QToolButton* toggle = rowWidget->findChild<QToolButton*>("collapseButton");
  QVERIFY(toggle && toggle->isVisible());
  QCOMPARE(toggle->text(), QStringLiteral("▾"));
  QSignalSpy modified(&canvas, &DashboardCanvas::modified);
  toggle->click();
  QCOMPARE(modified.count(), 1);
  QVERIFY(canvas.dashboard().panels[1].collapsed);
  QCOMPARE(toggle->text(), QStringLiteral("▸"));
  QVERIFY(!member->isVisible());
  QCOMPARE(last->y(), lastY - 3 * DashboardCanvas::kRowHeight);  // moved up into the room
  QCOMPARE(canvas.dashboard().panels[4].grid.y, 8);              // the file keeps where it belongs
  canvas.undoStack()->undo();
  QVERIFY(!canvas.dashboard().panels[1].collapsed);
  QVERIFY(member->isVisible());
  QCOMPARE(last->y(), lastY);
  PanelWidget* added = canvas.addRow("Tail");
  QCOMPARE(added->spec().grid, (GridRect{0, 11, 12, 1}));
  QCOMPARE(added->spec().chart, ChartType::Row);
}

// A dashboard file that does not parse, in dir; the error box opening it shows is closed.
static QString writeUnreadable(const QTemporaryDir& dir) {
  const QString path = dir.filePath("bad.json");
  QFile bad(path);
  if (!bad.open(QIODevice::WriteOnly)) return {};
  bad.write("{not json");
  bad.close();
  QTimer::singleShot(0, [] {
    if (QWidget* box = QApplication::activeModalWidget()) box->close();
  });
  return path;
}

void TestDashboardPanels::severalDashboardsOpenInWindowsOfTheirOwn() {
  QTemporaryDir dir;
  auto write = [&](const QString& name, const std::string& title) {
    Dashboard d;
    d.title = title;
    d.live = false;
    d.panels = {gaugeSpec(ChartType::Line)};
    QString err;
    const QString path = dir.filePath(name);
    return DashboardDocument::write(d, path, &err) ? path : QString();
  };
  const QString a = write("a.json", "First"), b = write("b.json", "Second");
  QVERIFY(!a.isEmpty() && !b.isEmpty());
  MainWindowOptions o;
  o.collector = m_api->url();
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = a;
  MainWindow w(o);
  QPointer<MainWindow> second = w.openInNewWindow(b);
  QVERIFY(second);
  QVERIFY(second->testAttribute(Qt::WA_DeleteOnClose));
  QCOMPARE(second->canvas()->dashboard().title, std::string("Second"));
  QCOMPARE(w.canvas()->dashboard().title, std::string("First"));  // untouched
  // Each has its own history: an edit in one is not undone in the other.
  second->canvas()->resizePanel(second->canvas()->panels()[0], 1, 0);
  QVERIFY(second->canvas()->undoStack()->canUndo());
  QVERIFY(!w.canvas()->undoStack()->canUndo());
  // A file that does not parse opens nothing.
  const QString bad = writeUnreadable(dir);
  QVERIFY(!w.openInNewWindow(bad));
  second->canvas()->undoStack()->undo();  // back as saved: closing asks nothing
  QVERIFY(!second->document()->isModified());
  second->close();
  QTRY_VERIFY(!second);
}

// Writes a dashboard with one line panel, titled `title`, to dir/name.
static QString writeDashboard(const QTemporaryDir& dir, const QString& name,
                              const std::string& title, bool live = false) {
  Dashboard d;
  d.title = title;
  d.live = live;
  d.range = range(kFrom, kFrom + 60);
  d.panels = {gaugeSpec(ChartType::Line)};
  QString err;
  const QString path = dir.filePath(name);
  return DashboardDocument::write(d, path, &err) ? path : QString();
}

void TestDashboardPanels::severalDashboardsOpenAsTabs() {
  QSettings().clear();
  QTemporaryDir dir;
  const QString a = writeDashboard(dir, "a.json", "First");
  const QString b = writeDashboard(dir, "b.json", "Second");
  QVERIFY(!a.isEmpty() && !b.isEmpty());
  MainWindowOptions o;
  o.collector = m_api->url();
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = a;
  o.moreDashboards = {b};  // --dashboard a.json --dashboard b.json
  auto w = std::make_unique<MainWindow>(o);
  w->show();
  QVERIFY(QTest::qWaitForWindowExposed(w.get()));
  QTabWidget* tabs = w->tabs();
  QCOMPARE(tabs->count(), 2);
  QVERIFY(tabs->tabBar()->isVisible());
  QCOMPARE(tabs->currentIndex(), 0);  // the first one given is in front
  QCOMPARE(tabs->tabText(0), QStringLiteral("First"));
  QCOMPARE(tabs->tabText(1), QStringLiteral("Second"));
  QVERIFY(w->windowTitle().startsWith("First"));

  // Each tab has its own range: the toolbar shows the one in front.
  w->setTimeRange(range(kFrom - 3600, kFrom));
  tabs->setCurrentIndex(1);
  QVERIFY(w->windowTitle().startsWith("Second"));
  QCOMPARE(w->canvas()->range(), range(kFrom, kFrom + 60));
  QCOMPARE(w->rangePicker()->range(), range(kFrom, kFrom + 60));
  tabs->setCurrentIndex(0);
  QCOMPARE(w->rangePicker()->range(), range(kFrom - 3600, kFrom));

  // Each has its own history, and Edit › Undo follows the tab in front.
  auto* undo = w->findChild<QAction*>("undoAction");
  QVERIFY(undo);
  tabs->setCurrentIndex(1);
  w->canvas()->resizePanel(w->canvas()->panels()[0], 1, 0);
  QVERIFY(undo->isEnabled());
  QCOMPARE(tabs->tabText(1), QStringLiteral("Second*"));
  tabs->setCurrentIndex(0);
  QVERIFY(!undo->isEnabled());
  QCOMPARE(tabs->tabText(0), QStringLiteral("First"));
  tabs->setCurrentIndex(1);
  undo->trigger();
  QCOMPARE(tabs->tabText(1), QStringLiteral("Second"));  // back as saved

  // A file already open is shown in its tab, not opened twice; one that does not parse opens
  // nothing.
  QCOMPARE(w->openInNewTab(a), qobject_cast<DashboardTab*>(tabs->widget(0)));
  QCOMPARE(tabs->currentIndex(), 0);
  QCOMPARE(tabs->count(), 2);
  const QString bad = writeUnreadable(dir);
  QVERIFY(!w->openInNewTab(bad));
  QCOMPARE(tabs->count(), 2);

  // Duplicate opens the copy beside the original.
  w->duplicate();
  QCOMPARE(tabs->count(), 3);
  QCOMPARE(tabs->currentIndex(), 2);
  QCOMPARE(tabs->tabText(2), QStringLiteral("Copy of First*"));
  QCOMPARE(qobject_cast<DashboardTab*>(tabs->widget(0))->title(), QStringLiteral("First"));
  // Closing a modified tab asks: Cancel keeps it, Discard closes it.
  auto answer = [](QMessageBox::StandardButton button) {
    QTimer::singleShot(0, [button] {
      if (auto* box = qobject_cast<QMessageBox*>(QApplication::activeModalWidget()))
        box->button(button)->click();
    });
  };
  answer(QMessageBox::Cancel);
  QVERIFY(!w->closeTab(2));
  QCOMPARE(tabs->count(), 3);
  answer(QMessageBox::Discard);
  QVERIFY(w->closeTab(2));
  QCOMPARE(tabs->count(), 2);

  // Closing the window remembers the open tabs and the one in front; the next start opens them.
  tabs->setCurrentIndex(1);
  QVERIFY(w->close());
  w.reset();
  MainWindowOptions again = o;
  again.dashboard.clear();
  again.moreDashboards.clear();
  MainWindow restored(again);
  QCOMPARE(restored.tabs()->count(), 2);
  QCOMPARE(restored.tabs()->currentIndex(), 1);
  QCOMPARE(restored.document()->path(), QFileInfo(b).absoluteFilePath());
  // The last tab closed leaves a new, empty dashboard, not an empty window.
  // A tab behind, unmodified, closes where it is: the one in front stays in front throughout.
  QWidget* behind = restored.tabs()->widget(0);
  QList<QWidget*> shown;
  auto watch = connect(restored.tabs(), &QTabWidget::currentChanged,
                       [&] { shown << restored.tabs()->currentWidget(); });
  QVERIFY(restored.closeTab(0));
  disconnect(watch);
  QVERIFY(!shown.contains(behind));
  QCOMPARE(restored.document()->path(), QFileInfo(b).absoluteFilePath());
  QVERIFY(restored.closeTab(0));
  QCOMPARE(restored.tabs()->count(), 1);
  QVERIFY(restored.canvas()->panels().isEmpty());
  QVERIFY(restored.document()->path().isEmpty());
  QSettings().clear();
}

void TestDashboardPanels::aHiddenTabDrawsWhenShown() {
  QSettings().clear();
  QTemporaryDir dir;
  const QString a = writeDashboard(dir, "a.json", "First");
  const QString b = writeDashboard(dir, "b.json", "Second");
  MainWindowOptions o;
  o.collector = m_api->url();
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = a;
  o.moreDashboards = {b};
  MainWindow w(o);
  w.show();
  QVERIFY(QTest::qWaitForWindowExposed(&w));
  auto* hidden = qobject_cast<DashboardTab*>(w.tabs()->widget(1));
  PanelWidget* panel = hidden->canvas()->panels().first();
  QTRY_VERIFY(panel->controller()->hasData() && !panel->controller()->isLoading());
  QTest::qWait(100);  // past the 40 ms redraw timer
  const int before = panel->redrawCount();
  // New data for a panel no one sees: nothing is drawn...
  hidden->canvas()->refreshAll();
  QTRY_VERIFY(!panel->controller()->isLoading());
  QTest::qWait(100);
  QCOMPARE(panel->redrawCount(), before);
  // ...until its tab is shown, once.
  w.tabs()->setCurrentWidget(hidden);
  QTRY_COMPARE(panel->redrawCount(), before + 1);
  QTest::qWait(100);
  QCOMPARE(panel->redrawCount(), before + 1);
  QSettings().clear();
}

QTEST_MAIN(TestDashboardPanels)
#include "tst_dashboard_panels.moc"
