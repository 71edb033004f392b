// tally-dashboard: the desktop dashboard, or (with --export-png / --export-csv) a headless export.
#include <QApplication>
#include <QCommandLineParser>
#include <QStandardPaths>
#include <QTimer>
#include <cstdio>

#include "dashboard_canvas.h"
#include "exporter.h"
#include "headless.h"
#include "main_window.h"
#include "resources.h"
#include "tally/common/endpoints.h"
#include "tally/common/version.h"
#include "theme.h"

int main(int argc, char** argv) {
  // Exports need no display: pick the offscreen platform unless one was asked for.
  bool exporting = false;
  for (int i = 1; i < argc; ++i) {
    QByteArray a(argv[i]);
    if (a.startsWith("--export-png") || a.startsWith("--export-csv")) exporting = true;
  }
  if (exporting && !qEnvironmentVariableIsSet("QT_QPA_PLATFORM"))
    qputenv("QT_QPA_PLATFORM", "offscreen");

  QApplication app(argc, argv);
  QApplication::setApplicationName("tally-dashboard");
  QApplication::setOrganizationName("Tally");
  QApplication::setApplicationVersion(tally::kVersion);
  initTallyResources();

  QCommandLineParser parser;
  parser.setApplicationDescription(
      "Tally dashboard: live charts of a Tally collector.\n\n"
      "Exit codes of exports: 0 ok, 64 bad command line, 65 dashboard file unreadable or invalid,\n"
      "69 collector unreachable, 70 a panel's query failed (files still written), 73 cannot write "
      "output,\n77 a data source would send headers to a host not allowed (--allow-host).");
  parser.addHelpOption();
  parser.addVersionOption();
  QCommandLineOption collector("collector", "Collector HTTP API base URL.", "URL",
                               tally::kDefaultCollectorUrl);
  QCommandLineOption live("live", "Collector live stream (ZeroMQ PUB) endpoint.", "ENDPOINT",
                          tally::kDefaultLiveEndpoint);
  QCommandLineOption dashboard(
      "dashboard", "Dashboard JSON file to open; given more than once, each opens in a tab.",
      "FILE");
  QCommandLineOption range("range", "Time range: a duration (15m, 1h, 7d) or FROM:TO unix seconds.",
                           "RANGE");
  QCommandLineOption png(
      "export-png", "Write the dashboard (or --panel) as an image (.png, .svg, .pdf) and exit.",
      "FILE");
  QCommandLineOption csv(
      "export-csv", "Write the shown data as CSV and exit (FILE-N.csv per panel when several).",
      "FILE");
  QCommandLineOption size("size", "Image size for --export-png.", "WxH", "1600x900");
  QCommandLineOption panel("panel", "Export only panel N (1-based, in file order).", "N", "0");
  QCommandLineOption timeout("timeout", "Seconds to wait for the collector's answers.", "S", "30");
  QCommandLineOption screenshot("screenshot",
                                "Open the window, save a screenshot of it after --screenshot-delay "
                                "seconds and quit (for documentation).",
                                "FILE");
  QCommandLineOption screenshotDelay("screenshot-delay", "Seconds before --screenshot.", "S", "8");
  QCommandLineOption allowHost(
      "allow-host",
      "Exports: let data sources with headers (credentials) send them to HOST (host or "
      "host:port; repeatable), although it was never allowed in the window.",
      "HOST");
  QCommandLineOption var("var",
                         "A dashboard variable's values: name=value, name=v1,v2 (a multi-value "
                         "variable) or name=All (repeatable).",
                         "NAME=VALUES");
  parser.addOptions({collector, live, dashboard, range, png, csv, size, panel, timeout, allowHost,
                     screenshot, screenshotDelay, var});
  if (!parser.parse(QApplication::arguments())) {
    std::fprintf(stderr, "tally-dashboard: %s\n", qPrintable(parser.errorText()));
    return kExitUsage;
  }
  if (parser.isSet("help")) parser.showHelp(0);
  if (parser.isSet("version")) parser.showVersion();

  QUrl collectorUrl = QUrl::fromUserInput(parser.value(collector));
  if (!collectorUrl.isValid() || collectorUrl.scheme() != "http") {
    std::fprintf(stderr, "tally-dashboard: --collector '%s' is not an http:// URL\n",
                 qPrintable(parser.value(collector)));
    return kExitUsage;
  }
  if (parser.isSet(png) || parser.isSet(csv)) {
    if (parser.values(dashboard).size() > 1) {
      std::fprintf(stderr, "tally-dashboard: an export reads one --dashboard\n");
      return kExitUsage;
    }
    HeadlessOptions o;
    o.collector = collectorUrl;
    o.dashboard = parser.value(dashboard);
    o.range = parser.value(range);
    o.png = parser.value(png);
    o.csv = parser.value(csv);
    o.size = Exporter::parseSize(parser.value(size));
    o.allowHosts = parser.values(allowHost);
    o.vars = parser.values(var);
    bool ok1 = false, ok2 = false;
    o.panel = parser.value(panel).toInt(&ok1);
    o.timeoutS = parser.value(timeout).toInt(&ok2);
    if (!o.size.isValid() || !ok1 || !ok2 || o.timeoutS <= 0) {
      std::fprintf(stderr, "tally-dashboard: bad --size, --panel or --timeout\n");
      return kExitUsage;
    }
    return runHeadless(o);
  }
  MainWindowOptions mo;
  mo.collector = collectorUrl;
  mo.live = parser.value(live);
  const QStringList dashboards = parser.values(dashboard);
  mo.dashboard = dashboards.value(0);
  mo.moreDashboards = dashboards.mid(1);
  Theme::init();  // light or dark, following the desktop unless View > Theme says otherwise
  MainWindow w(mo);
  if (!parser.value(range).isEmpty()) {
    tally::dash::TimeRangeSpec r;
    if (!parseRangeArg(parser.value(range), &r)) {
      std::fprintf(stderr,
                   "tally-dashboard: --range '%s' is neither a duration like 1h nor FROM:TO\n",
                   qPrintable(parser.value(range)));
      return kExitUsage;
    }
    w.setTimeRange(r);
  }
  for (const QString& v : parser.values(var)) {
    QString error;
    if (!w.setVariableArg(v, &error)) {
      std::fprintf(stderr, "tally-dashboard: %s\n", qPrintable(error));
      return kExitUsage;
    }
  }
  if (parser.isSet(size)) w.resize(Exporter::parseSize(parser.value(size)));
  w.show();
  if (parser.isSet(screenshot)) {
    const QString file = parser.value(screenshot);
    QTimer::singleShot(parser.value(screenshotDelay).toInt() * 1000, &w, [&w, file] {
      const bool ok = w.grab().save(file);
      std::fprintf(ok ? stdout : stderr, "%s %s\n", ok ? "wrote" : "cannot write",
                   qPrintable(file));
      QApplication::exit(ok ? 0 : kExitCantWrite);
    });
  }
  return app.exec();
}
