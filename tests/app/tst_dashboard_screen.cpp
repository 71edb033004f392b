// The real main window in a real X server (Xvfb, no window manager, software OpenGL as on most
// VMs): what the SCREEN shows (xwd -root) after range changes, zooms and a growing y axis must
// equal a clean window opened straight into the same state, and pop-up lists must not be black.
#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QListView>
#include <QMenu>
#include <QMenuBar>
#include <QSettings>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <memory>

#include "core/dashboard.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "fake_api.h"
#include "main_window.h"
#include "panel_chart.h"
#include "panel_controller.h"
#include "panel_widget.h"
#include "resources.h"
#include "screen_capture.h"
#include "time_range_picker.h"

using namespace tally::dash;

namespace {

constexpr int64_t kFrom = 1700000000;

// `groups` series of `n` points at `step` from kFrom, values around `scale`.
QByteArray queryJson(int groups, int n, int64_t step, double scale) {
  QByteArray out = "{\"metric\":\"api.requests\",\"kind\":\"counter\",\"fn\":\"sum\",\"from\":" +
                   QByteArray::number(kFrom) + ",\"to\":" + QByteArray::number(kFrom + n * step) +
                   ",\"step\":" + QByteArray::number(step) + ",\"resolution\":1,\"series\":[";
  for (int g = 0; g < groups; ++g) {
    if (g) out += ',';
    out += "{\"tags\":{\"region\":\"r" + QByteArray::number(g) + "\"},\"points\":[";
    for (int i = 0; i < n; ++i) {
      if (i) out += ',';
      const double v = scale * ((g + 1) * 0.3 + 0.1 * std::sin(i / 5.0 + g));
      out +=
          '[' + QByteArray::number(kFrom + i * step) + ',' + QByteArray::number(v, 'g', 10) + ']';
    }
    out += "]}";
  }
  return out + "]}";
}

struct State {
  TimeRangeSpec range;
  std::optional<TimeWindow> zoom;  // on the first panel
  double scale = 100;
};

TimeRangeSpec fixedRange(int64_t from, int64_t to) {
  TimeRangeSpec r;
  r.from = from;
  r.to = to;
  return r;
}

}  // namespace

Q_DECLARE_METATYPE(State)

class TestDashboardScreen : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void cleanupTestCase();
  void init();
  void screenMatchesCleanRender_data();
  void screenMatchesCleanRender();
  void popupListsAreNotBlack();

 private:
  std::unique_ptr<MainWindow> openWindow(const State& s);
  void apply(MainWindow& w, const State& s);
  void settle(MainWindow& w);
  QImage stableCapture(const QRect& area);
  double blackShare(QWidget* popup);

  FakeApi* m_api = nullptr;
  QTemporaryDir m_dir;
  QString m_file;
};

void TestDashboardScreen::initTestCase() {
  QStandardPaths::setTestModeEnabled(true);
  initTallyResources();
  m_api = new FakeApi;
  m_api->route("/healthz", "{\"status\":\"ok\",\"uptime_s\":3,\"series\":5}");
  m_api->route("/api/metrics",
               "{\"metrics\":[{\"name\":\"api.requests\",\"kind\":\"counter\",\"series\":3}]}");
  m_api->route("/api/tags", "{\"metric\":\"api.requests\",\"tags\":{}}");
  Dashboard d;
  d.title = "Screen";
  d.live = false;
  d.range = fixedRange(kFrom, kFrom + 3600);
  PanelSpec a;
  a.title = "by region";
  a.metric = "api.requests";
  a.groupBy = {"region"};
  a.grid = {0, 0, 6, 5};
  PanelSpec b = a;
  b.title = "total";
  b.groupBy.clear();
  b.grid = {6, 0, 6, 5};
  d.panels = {a, b};
  m_file = m_dir.filePath("screen.json");
  QString error;
  QVERIFY2(DashboardDocument::write(d, m_file, &error), qPrintable(error));
}

void TestDashboardScreen::cleanupTestCase() {
  delete m_api;  // it has no parent: LeakSanitizer counted it and its canned answers as leaked
  m_api = nullptr;
}

void TestDashboardScreen::init() {
  QSettings().clear();
  PanelChart::reloadSettings();
}

std::unique_ptr<MainWindow> TestDashboardScreen::openWindow(const State& s) {
  m_api->route("/api/query", queryJson(3, 360, 10, s.scale));
  MainWindowOptions o;
  o.collector = m_api->url();
  o.live = "tcp://127.0.0.1:1";
  o.dashboard = m_file;
  auto w = std::make_unique<MainWindow>(o);
  w->setGeometry(0, 0, 1100, 620);  // no window manager: this is where it lands
  w->show();
  if (!QTest::qWaitForWindowExposed(w.get())) return nullptr;
  apply(*w, s);
  return w;
}

void TestDashboardScreen::apply(MainWindow& w, const State& s) {
  w.setTimeRange(s.range);
  if (s.zoom) w.canvas()->panels().first()->controller()->zoomTo(*s.zoom);
  settle(w);
}

// Every panel has its answer and has drawn it.
void TestDashboardScreen::settle(MainWindow& w) {
  QTRY_VERIFY_WITH_TIMEOUT(
      [&] {
        for (PanelWidget* p : w.canvas()->panels())
          if (p->controller()->isLoading() || !p->controller()->hasData()) return false;
        return true;
      }(),
      10000);
  for (PanelWidget* p : w.canvas()->panels()) p->flushRedraw();
}

// Captures until two captures 100 ms apart agree (the X server has what the app drew).
QImage TestDashboardScreen::stableCapture(const QRect& area) {
  QImage last;
  for (int i = 0; i < 50; ++i) {
    QTest::qWait(100);
    QString error;
    QImage img = captureScreen(&error);
    if (img.isNull()) {
      qWarning("%s", qPrintable(error));
      return {};
    }
    img = img.copy(area);
    if (img == last) return img;
    last = img;
  }
  return last;
}

void TestDashboardScreen::screenMatchesCleanRender_data() {
  QTest::addColumn<QList<State>>("steps");
  const State wide{fixedRange(kFrom, kFrom + 3600), std::nullopt, 100};
  State narrow = wide;
  narrow.range = fixedRange(kFrom + 600, kFrom + 1500);
  State zoomed = wide;
  zoomed.zoom = TimeWindow{kFrom + 1200, kFrom + 1500};
  State grown = wide;
  grown.scale = 100000;
  State all = narrow;
  all.zoom = TimeWindow{kFrom + 700, kFrom + 1000};
  all.scale = 30000;
  QTest::newRow("range change") << QList<State>{wide, narrow};
  QTest::newRow("zoom") << QList<State>{wide, zoomed};
  QTest::newRow("y axis grows") << QList<State>{wide, grown};
  QTest::newRow("range, zoom, growth") << QList<State>{wide, narrow, zoomed, grown, all};
}

void TestDashboardScreen::screenMatchesCleanRender() {
  QFETCH(QList<State>, steps);
  auto w = openWindow(steps.first());
  QVERIFY(w);
  for (qsizetype i = 1; i < steps.size(); ++i) {
    const State& s = steps[i];
    if (!s.zoom && steps[i - 1].zoom) w->canvas()->panels().first()->controller()->resetZoom();
    if (s.scale != steps[i - 1].scale) {
      m_api->route("/api/query", queryJson(3, 360, 10, s.scale));
      w->canvas()->refreshAll();  // what a live panel's next answer does
    }
    apply(*w, s);
  }
  const QRect area = w->geometry();
  const QImage changed = stableCapture(area);
  QVERIFY(!changed.isNull());
  if (qEnvironmentVariableIsSet("TALLY_SCREEN_DUMP"))
    changed.save(qEnvironmentVariable("TALLY_SCREEN_DUMP") + "/" +
                 QString(QTest::currentDataTag()).replace(QRegularExpression("\\W+"), "_") +
                 ".png");
  w->hide();
  auto clean = openWindow(steps.last());
  QVERIFY(clean);
  QCOMPARE(clean->geometry(), area);
  const QImage fresh = stableCapture(area);
  QVERIFY(!fresh.isNull());
  int differ = 0;
  for (int y = 0; y < changed.height(); ++y)
    for (int x = 0; x < changed.width(); ++x) differ += changed.pixel(x, y) != fresh.pixel(x, y);
  if (differ) {
    const QString base = QDir::tempPath() + "/tst_dashboard_screen-" +
                         QString(QTest::currentDataTag()).replace(QRegularExpression("\\W+"), "_");
    changed.save(base + "-after-changes.png");
    fresh.save(base + "-clean.png");
    qWarning("screens written to %s-{after-changes,clean}.png", qPrintable(base));
  }
  QCOMPARE(differ, 0);
}

// Black pixels of what the screen shows where `popup` is, over its area.
double TestDashboardScreen::blackShare(QWidget* popup) {
  const QImage img = stableCapture(popup->geometry());
  if (img.isNull()) return 1;
  int black = 0;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) black += qGray(img.pixel(x, y)) < 16;
  return double(black) / (img.width() * img.height());
}

void TestDashboardScreen::popupListsAreNotBlack() {
  auto w = openWindow({fixedRange(kFrom, kFrom + 3600), std::nullopt, 100});
  QVERIFY(w);
  // The window fills the screen, as the app's default size does on a screen this size. On an X
  // server with no window manager, a pop-up over a window that leaves part of the bare root
  // showing is never drawn (any Qt 6.4 program: a QComboBox alone in a QWidget shows it; see
  // docs/DASHBOARD.md, "Troubleshooting"), so that layout would test the server, not Tally.
  w->setGeometry(0, 0, 1280, 800);
  settle(*w);
  QComboBox* combo = w->rangePicker()->combo();
  combo->showPopup();
  QWidget* list = combo->view()->window();
  QTRY_VERIFY(list->isVisible());
  QVERIFY(QTest::qWaitForWindowExposed(list));
  const double listBlack = blackShare(list);
  combo->hidePopup();
  QVERIFY2(listBlack < 0.1,
           qPrintable(QString("%1 % of the range list is black").arg(listBlack * 100)));

  QMenu* file = w->menuBar()->actions().first()->menu();
  QVERIFY(file);
  file->popup(w->menuBar()->mapToGlobal(QPoint(0, w->menuBar()->height())));
  QVERIFY(QTest::qWaitForWindowExposed(file));
  const double menuBlack = blackShare(file);
  file->hide();
  QVERIFY2(menuBlack < 0.1,
           qPrintable(QString("%1 % of the File menu is black").arg(menuBlack * 100)));
}

int main(int argc, char** argv) {
  XvfbServer xvfb;
  QString error;
  if (!xvfb.start("1280x800x24", &error)) {
    std::fprintf(stderr, "tst_dashboard_screen: %s\n", qPrintable(error));
    return 1;
  }
  qputenv("QT_QPA_PLATFORM", "xcb");
  int rc = 0;
  {
    QApplication app(argc, argv);
    QApplication::setOrganizationName("TallyTest");
    QApplication::setApplicationName("tst_dashboard_screen");
    TestDashboardScreen t;
    rc = QTest::qExec(&t, argc, argv);
  }
  xvfb.stop();
  return rc;
}

#include "tst_dashboard_screen.moc"
