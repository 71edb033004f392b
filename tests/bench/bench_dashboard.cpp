// bench_dashboard: what the dashboard costs, driving the real widgets in a real X server (Xvfb,
// started here on a free display; --offscreen for the offscreen platform instead).
//   demo live   the shipped demo dashboard (8 panels) live in a 1400x900 window, a ZeroMQ PUB
//               publishing every panel's metric each second like a collector does; CPU of this
//               process and of the X server over the run, and paints counted per chart;
//   zoom        a 300-series line panel zoomed: from the zoom to the painted chart (query answered
//               by a local HTTP server, parse, decimation, Qt Charts, paint), median of 5;
//   pan         a 1,000,000-point line panel panned with the mouse: one mouse move to the painted
//               frame, median and p95 of 60 frames;
//   emit        a gauge set through the real SDK into a real collector, shown by a live panel:
//               from the SDK call to the paint that shows the value, median and p99.
// Options: --seconds N (demo run, default 30), --emits N (default 60), --quick, --offscreen,
// BENCH_FILTER=demo|zoom|pan|emit.
#include <sys/resource.h>
#include <QApplication>
#include <QElapsedTimer>
#include <QMouseEvent>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QtTest>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <zmq.hpp>

#include <tally/client.h>

#include "collector_client.h"
#include "collector_fixture.h"
#include "core/live_buffer.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "fake_api.h"
#include "live_subscriber.h"
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

// Records, at each paint of a panel's chart, the first moment the drawn line reaches each value.
struct ValueWatch : QObject {
  PanelChart* chart = nullptr;
  double shown = -1;                                   // the largest value drawn so far
  std::vector<std::pair<double, int64_t>> firstShown;  // (value, steady ns at the paint)
  bool eventFilter(QObject*, QEvent* e) override {
    if (e->type() != QEvent::Paint || !chart || chart->seriesNames().isEmpty()) return false;
    double top = -1;
    for (const auto& run : chart->lineRuns(chart->seriesNames().first()))
      for (const QPointF& p : run.points) top = std::max(top, p.y());
    if (top > shown) {
      shown = top;
      firstShown.emplace_back(top, std::chrono::steady_clock::now().time_since_epoch().count());
    }
    return false;
  }
};

// emit → screen: the real collector (a child process) and the real SDK with its defaults (a
// flush a second); a live line panel (max of a gauge over the last 5 minutes, 1 s buckets, the
// open bucket drawn as partial) in a window on the X server, ticked each second as the canvas
// does. Once a second, at a random moment, the gauge is set to the next integer; the latency is
// from that SDK call to the start of the first paint whose line reaches the value.
bool emitToScreen(int emits) {
  CollectorFixture collector;
  if (!collector.start()) {
    std::fprintf(stderr, "emit: the collector did not start\n");
    return false;
  }
  tally::ClientOptions o;
  o.endpoint = collector.ingest().toStdString();
  tally::Client sdk(o);
  CollectorClient client(collector.url());
  LiveSubscriber sub;
  if (!sub.connectTo(collector.live())) {
    std::fprintf(stderr, "emit: no live stream\n");
    return false;
  }
  // When the stream first brings each value (the collector's part of the latency).
  std::vector<std::pair<double, int64_t>> streamed;
  QObject::connect(&sub, &LiveSubscriber::updatesReceived,
                   [&](const QString&, const std::vector<LiveUpdate>& updates) {
                     for (const auto& u : updates)
                       if (streamed.empty() || u.max > streamed.back().first)
                         streamed.emplace_back(
                             u.max, std::chrono::steady_clock::now().time_since_epoch().count());
                   });
  PanelWidget panel(&client, &sub);
  panel.setGeometry(0, 0, 1200, 500);
  panel.show();
  if (!QTest::qWaitForWindowExposed(&panel)) std::fprintf(stderr, "window not exposed\n");
  ValueWatch watch;
  watch.chart = panel.chartView()->panelChart();
  panel.chartView()->viewport()->installEventFilter(&watch);
  QTimer tick;
  QObject::connect(&tick, &QTimer::timeout, [&] { panel.controller()->tick(); });
  tick.start(1000);
  // The metric exists before the panel asks for it, so the first answer names its kind.
  sdk.set_gauge("bench.emit", 0.5);
  sdk.flush(std::chrono::seconds(5));
  TimeRangeSpec r;
  r.relative = "5m";
  QSignalSpy done(panel.controller(), &PanelController::queryFinished);
  panel.controller()->setRange(r);
  panel.controller()->setLive(true);
  PanelSpec s;
  s.metric = "bench.emit";
  s.fn = Fn::kMax;
  panel.setSpec(s);
  done.wait(10000);
  QTest::qWait(2000);  // the live subscription reaches the collector
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> phase(0, 999);
  std::vector<std::pair<double, int64_t>> sent;
  for (int i = 1; i <= emits; ++i) {
    const int wait = phase(rng);
    QTest::qWait(wait);
    sent.emplace_back(double(i), std::chrono::steady_clock::now().time_since_epoch().count());
    sdk.set_gauge("bench.emit", double(i));
    QTest::qWait(1000 - wait);
  }
  QTest::qWait(5000);
  std::vector<double> ms, streamMs;
  int missing = 0;
  auto firstAt = [](const std::vector<std::pair<double, int64_t>>& seen, double v) {
    auto it = std::find_if(seen.begin(), seen.end(), [v](const auto& f) { return f.first >= v; });
    return it == seen.end() ? int64_t(-1) : it->second;
  };
  for (const auto& [v, at] : sent) {
    const int64_t shown = firstAt(watch.firstShown, v), came = firstAt(streamed, v);
    if (shown < 0) {
      ++missing;
      continue;
    }
    ms.push_back(double(shown - at) / 1e6);
    if (came >= 0) streamMs.push_back(double(came - at) / 1e6);
    if (qEnvironmentVariableIsSet("BENCH_SPLIT"))
      std::printf("value %.0f: live frame %.0f ms, screen %.0f ms\n", v,
                  came >= 0 ? double(came - at) / 1e6 : -1.0, double(shown - at) / 1e6);
  }
  std::sort(ms.begin(), ms.end());
  std::sort(streamMs.begin(), streamMs.end());
  if (ms.empty()) {
    std::printf("emit -> screen: no emitted value reached the screen (%d sent)\n", emits);
    return false;
  }
  auto pct = [](const std::vector<double>& v, double q) {
    return v.empty() ? -1.0 : v[std::min(v.size() - 1, size_t(q * double(v.size())))];
  };
  std::printf(
      "emit -> screen: %zu of %d values, SDK flush %lld ms: median %.0f ms, p99 %.0f ms, max %.0f "
      "ms%s; emit -> live frame: median %.0f ms, p99 %.0f ms\n",
      ms.size(), emits, static_cast<long long>(o.flush_interval.count()), pct(ms, 0.5),
      pct(ms, 0.99), ms.back(), missing ? " (some never shown)" : "", pct(streamMs, 0.5),
      pct(streamMs, 0.99));
  return missing == 0;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 30;
  int emits = 60;
  bool offscreen = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) seconds = std::atoi(argv[++i]);
    if (a == "--offscreen") offscreen = true;
    if (a == "--emits" && i + 1 < argc) emits = std::atoi(argv[++i]);
    if (a == "--quick") seconds = 10, emits = 5;
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
  const QByteArray only = qgetenv("BENCH_FILTER");  // demo, zoom, pan or emit: only that case
  if (only.isEmpty() || only == "demo") demoLive(seconds, xvfb.pid());
  if (only.isEmpty() || only == "zoom") zoom300();
  if (only.isEmpty() || only == "pan") pan1M();
  // Timings are never checked here; a case that could not run (or a value that never reached the
  // screen) fails the run, so `bench_dashboard_quick` in the test suite keeps the benchmark
  // working.
  if ((only.isEmpty() || only == "emit") && !emitToScreen(emits)) return 1;
  return 0;
}
