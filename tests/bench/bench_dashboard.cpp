// bench_dashboard: what the dashboard costs, driving the real widgets in a real X server (Xvfb,
// started here on a free display; --offscreen for the offscreen platform instead).
//   demo live   the shipped demo dashboard (8 panels) live in a 1400x900 window, a ZeroMQ PUB
//               publishing every panel's metric each second like a collector does; CPU of this
//               process and of the X server over the run, and paints counted per chart;
//   zoom        a 300-series line panel zoomed: from the zoom to the painted chart (query answered
//               by a local HTTP server, parse, decimation, Qt Charts, paint), median of 5;
//   pan         a 1,000,000-point line panel panned with the mouse: one mouse move to the painted
//               frame, median and p95 of 60 frames.
// Options: --seconds N (demo run, default 30), --offscreen, BENCH_FILTER=demo|zoom|pan.
#include <sys/resource.h>
#include <QApplication>
#include <QElapsedTimer>
#include <QMouseEvent>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <zmq.hpp>

#include "collector_client.h"
#include "core/live_buffer.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "fake_api.h"
#include "main_window.h"
#include "panel_chart.h"
#include "panel_chart_view.h"
#include "panel_controller.h"
#include "panel_widget.h"
#include "resources.h"
#include "screen_capture.h"

using namespace tally;
using namespace tally::dash;

namespace {

double cpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double processCpuSeconds(pid_t pid) {  // utime + stime from /proc/PID/stat
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), {});
  auto close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  double ut = 0, st = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) ut = std::stod(field);
    if (i == 15) st = std::stod(field);
  }
  return (ut + st) / double(sysconf(_SC_CLK_TCK));
}

// One series answer for any metric: `groups` series of n points at `step` ending at `to`.
QByteArray seriesJson(const char* metric, int groups, int n, int64_t step, int64_t to) {
  const int64_t from = to - n * step;
  QByteArray out = "{\"metric\":\"" + QByteArray(metric) +
                   "\",\"kind\":\"counter\",\"fn\":\"sum\",\"from\":" + QByteArray::number(from) +
                   ",\"to\":" + QByteArray::number(to) + ",\"step\":" + QByteArray::number(step) +
                   ",\"resolution\":1,\"series\":[";
  out.reserve(qsizetype(groups) * n * 24 + 200);
  for (int g = 0; g < groups; ++g) {
    if (g) out += ',';
    out += "{\"tags\":{\"endpoint\":\"/e" + QByteArray::number(g) + "\"},\"points\":[";
    for (int i = 0; i < n; ++i) {
      if (i) out += ',';
      out += '[' + QByteArray::number(from + i * step) + ',' +
             QByteArray::number((g + 1) * 10 + 5 * std::sin(i / 7.0 + g), 'g', 8) + ']';
    }
    out += "]}";
  }
  return out + "]}";
}

QByteArray binsJson(int n) {
  QByteArray b;
  double lo = 1;
  for (int i = 0; i < n; ++i) {
    double hi = lo * 1.2;
    if (i) b += ',';
    b += "{\"lower\":" + QByteArray::number(lo) + ",\"upper\":" + QByteArray::number(hi) +
         ",\"count\":" + QByteArray::number(1 + int(100 * std::exp(-std::pow((i - 15) / 6.0, 2)))) +
         "}";
    lo = hi;
  }
  return b;
}

QByteArray histogramJson() {
  return "{\"metric\":\"api.latency_ms\",\"count\":1000,\"sum\":50000,\"min\":1,\"max\":900,"
         "\"p50\":35,\"p90\":88,\"p99\":410,\"buckets\":[" +
         binsJson(30) + "]}";
}

QByteArray heatmapJson(int columns, int64_t step, int64_t to) {
  QByteArray b = "{\"metric\":\"api.latency_ms\",\"step\":" + QByteArray::number(step) +
                 ",\"from\":" + QByteArray::number(to - columns * step) +
                 ",\"to\":" + QByteArray::number(to) + ",\"columns\":[";
  for (int c = 0; c < columns; ++c) {
    if (c) b += ',';
    b += "{\"time\":" + QByteArray::number(to - (columns - c) * step) +
         ",\"count\":100,\"p50\":20,\"p90\":80,\"p99\":300,\"buckets\":[" + binsJson(20) + "]}";
  }
  return b + "]}";
}

std::string liveBatch(const std::string& metric, int groups, int64_t t, LiveUpdate::State st) {
  std::vector<LiveUpdate> us;
  for (int g = 0; g < groups; ++g) {
    LiveUpdate u;
    u.metric = metric;
    u.tags = {{"endpoint", "/e" + std::to_string(g)}};
    u.kind = metric == "queue.depth" ? Kind::kGauge : Kind::kCounter;
    u.time = t;
    u.state = st;
    u.value = u.sum = 10 + g;
    u.count = 1;
    u.min = u.max = u.value;
    us.push_back(u);
  }
  return encodeLiveBatch(us);
}

struct PaintCounter : QObject {
  int paints = 0;
  bool eventFilter(QObject*, QEvent* e) override {
    if (e->type() == QEvent::Paint) ++paints;
    return false;
  }
};

void demoLive(int seconds, pid_t xserver) {
  const int64_t now = QDateTime::currentSecsSinceEpoch();
  FakeApi api;
  api.route("/healthz", "{\"status\":\"ok\",\"uptime_s\":3,\"series\":40}");
  api.route("/api/metrics", "{\"metrics\":[]}");
  api.route("/api/tags", "{\"metric\":\"x\",\"tags\":{}}");
  for (const char* m :
       {"user.signup", "api.requests", "api.errors", "api.latency_ms", "ad.click", "queue.depth"})
    api.route(QStringLiteral("/api/query?metric=%1&").arg(m), seriesJson(m, 4, 900, 1, now));
  api.route("/api/histogram", histogramJson());
  api.route("/api/heatmap", heatmapJson(90, 10, now));
  zmq::context_t ctx;
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  pub.bind("tcp://127.0.0.1:*");
  MainWindowOptions o;
  o.collector = api.url();
  o.live = QString::fromStdString(pub.get(zmq::sockopt::last_endpoint));
  o.dashboard = QStringLiteral(TALLY_SOURCE_DIR "/resources/dashboards/demo.json");
  MainWindow w(o);
  w.setGeometry(0, 0, 1400, 900);
  w.show();
  if (!QTest::qWaitForWindowExposed(&w)) std::fprintf(stderr, "window not exposed\n");
  PaintCounter counter;
  for (PanelWidget* p : w.canvas()->panels())
    p->chartView()->viewport()->installEventFilter(&counter);
  QTimer publisher;
  publisher.setInterval(1000);
  QObject::connect(&publisher, &QTimer::timeout, [&] {
    const int64_t t = QDateTime::currentSecsSinceEpoch();
    for (const char* m : {"user.signup", "api.requests", "api.errors", "api.latency_ms", "ad.click",
                          "queue.depth"}) {
      auto send = [&](const std::string& payload) {
        pub.send(zmq::buffer(std::string(m)), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(payload), zmq::send_flags::none);
      };
      send(liveBatch(m, 4, t - 3, LiveUpdate::State::Final));
      send(liveBatch(m, 4, t, LiveUpdate::State::Partial));
    }
  });
  publisher.start();
  QTest::qWait(5000);  // first answers, layout, warm caches
  const int paints0 = counter.paints;
  int redraws0 = 0;
  for (PanelWidget* p : w.canvas()->panels()) redraws0 += p->redrawCount();
  const double cpu0 = cpuSeconds(), x0 = xserver > 0 ? processCpuSeconds(xserver) : 0;
  QElapsedTimer wall;
  wall.start();
  QTest::qWait(seconds * 1000);
  const double elapsed = double(wall.elapsed()) / 1000;
  const double app = (cpuSeconds() - cpu0) / elapsed * 100;
  const double x = xserver > 0 ? (processCpuSeconds(xserver) - x0) / elapsed * 100 : 0;
  int redraws = -redraws0;
  for (PanelWidget* p : w.canvas()->panels()) redraws += p->redrawCount();
  std::printf(
      "demo live: %d panels, 1400x900, %.0f s: app %.1f %% of a core, X server %.1f %%, "
      "total %.1f %%; %.1f chart paints/s, %.1f redraws/s\n",
      int(w.canvas()->panels().size()), elapsed, app, x, app + x,
      (counter.paints - paints0) / elapsed, redraws / elapsed);
  w.document()->setModified(false);
}

void zoom300() {
  const int64_t to = 1700000000 + 900;
  FakeApi api;
  api.route("/api/query", seriesJson("api.requests", 300, 900, 1, to));
  CollectorClient client(api.url());
  PanelWidget panel(&client, nullptr);
  panel.setGeometry(0, 0, 1200, 600);
  panel.show();
  if (!QTest::qWaitForWindowExposed(&panel)) std::fprintf(stderr, "window not exposed\n");
  TimeRangeSpec r;
  r.from = to - 900;
  r.to = to;
  PanelSpec s;
  s.metric = "api.requests";
  s.groupBy = {"endpoint"};
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.controller()->setRange(r);
  panel.setSpec(s);
  done.wait(10000);
  panel.flushRedraw();
  panel.chartView()->viewport()->repaint();
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    done.clear();
    QElapsedTimer t;
    t.start();
    const int64_t a = to - 900 + 60 * i, b = a + 300 - 40 * i;
    panel.controller()->zoomTo({a, b});
    done.wait(10000);
    if (qEnvironmentVariableIsSet("BENCH_SPLIT"))
      std::printf("query answered and read %.1f ms\n", double(t.nsecsElapsed()) / 1e6);
    panel.flushRedraw();
    if (qEnvironmentVariableIsSet("BENCH_SPLIT"))
      std::printf("rendered %.1f ms\n", double(t.nsecsElapsed()) / 1e6);
    panel.chartView()->viewport()->repaint();
    QApplication::sync();
    ms.push_back(double(t.nsecsElapsed()) / 1e6);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("zoom: 300 series x 900 points, 1200x600 panel: median %.0f ms, worst %.0f ms\n",
              ms[2], ms[4]);
}

void pan1M() {
  const int n = 1000000;
  const int64_t to = 1700000000 + n;
  FakeApi api;
  api.route("/api/query", seriesJson("api.requests", 1, n, 1, to));
  CollectorClient client(api.url());
  PanelWidget panel(&client, nullptr);
  panel.setGeometry(0, 0, 1200, 600);
  panel.show();
  if (!QTest::qWaitForWindowExposed(&panel)) std::fprintf(stderr, "window not exposed\n");
  TimeRangeSpec r;
  r.from = to - n;
  r.to = to;
  PanelSpec s;
  s.metric = "api.requests";
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.controller()->setRange(r);
  panel.setSpec(s);
  done.wait(30000);
  panel.flushRedraw();
  PanelChartView* view = panel.chartView();
  QWidget* vp = view->viewport();
  vp->repaint();
  const QPointF start = view->mapFromScene(view->chart()->plotArea().center());
  auto send = [&](QEvent::Type type, QPointF pos, Qt::MouseButtons buttons) {
    QMouseEvent e(type, pos, vp->mapToGlobal(pos), Qt::RightButton, buttons, Qt::NoModifier);
    QApplication::sendEvent(vp, &e);
  };
  send(QEvent::MouseButtonPress, start, Qt::RightButton);
  std::vector<double> ms;
  const int frames =
      qEnvironmentVariableIsSet("BENCH_FRAMES") ? qEnvironmentVariableIntValue("BENCH_FRAMES") : 60;
  for (int i = 1; i <= frames; ++i) {
    QElapsedTimer t;
    t.start();
    send(QEvent::MouseMove, start + QPointF(-5 * i, 0), Qt::RightButton);
    if (qEnvironmentVariableIsSet("BENCH_SPLIT"))
      std::printf("move %.1f ms\n", double(t.nsecsElapsed()) / 1e6);
    vp->repaint();
    QApplication::sync();
    ms.push_back(double(t.nsecsElapsed()) / 1e6);
  }
  send(QEvent::MouseButtonRelease, start + QPointF(-300, 0), Qt::NoButton);
  std::sort(ms.begin(), ms.end());
  std::printf("pan: 1,000,000 points, 1200x600 panel: median %.1f ms/frame, p95 %.1f ms\n",
              ms[ms.size() / 2], ms[ms.size() * 95 / 100]);
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 30;
  bool offscreen = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) seconds = std::atoi(argv[++i]);
    if (a == "--offscreen") offscreen = true;
    if (a == "--quick") seconds = 10;
  }
  XvfbServer xvfb;
  if (!offscreen) {
    QString error;
    if (!xvfb.start("1600x1000x24", &error)) {
      std::fprintf(stderr, "bench_dashboard: %s\n", qPrintable(error));
      return 1;
    }
    qputenv("QT_QPA_PLATFORM", "xcb");
  } else {
    qputenv("QT_QPA_PLATFORM", "offscreen");
  }
  QApplication app(argc, argv);
  QStandardPaths::setTestModeEnabled(true);  // no user settings, no last dashboard
  QApplication::setOrganizationName("TallyBench");
  QApplication::setApplicationName("bench_dashboard");
  initTallyResources();
  std::printf("platform %s\n", qPrintable(QGuiApplication::platformName()));
  const QByteArray only = qgetenv("BENCH_FILTER");  // demo, zoom or pan: run only that case
  if (only.isEmpty() || only == "demo") demoLive(seconds, xvfb.pid());
  if (only.isEmpty() || only == "zoom") zoom300();
  if (only.isEmpty() || only == "pan") pan1M();
  return 0;
}
