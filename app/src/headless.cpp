#include "headless.h"

#include "core/variables.h"

#include <QDateTime>
#include <QDir>
#include <QEventLoop>
#include <QFileInfo>
#include <QTimer>
#include <cstdio>
#include <memory>

#include "collector_client.h"
#include "core/time_range.h"
#include "dashboard_document.h"
#include "data_sources.h"
#include "exporter.h"
#include "host_approval.h"
#include "panel_controller.h"

using namespace tally::dash;

namespace {
void err(const QString& s) {
  std::fprintf(stderr, "tally-dashboard: %s\n", qPrintable(s));
}

}  // namespace

bool parseRangeArg(const QString& text, TimeRangeSpec* out) {
  int colon = text.indexOf(':');
  if (colon > 0) {
    bool a = false, b = false;
    qint64 from = text.left(colon).toLongLong(&a), to = text.mid(colon + 1).toLongLong(&b);
    if (!a || !b || to <= from) return false;
    out->from = from;
    out->to = to;
    return true;
  }
  if (!tally::parse_duration(text.toStdString())) return false;
  *out = TimeRangeSpec{};
  out->relative = text.toStdString();
  return true;
}

namespace {

QString withIndex(const QString& path, int index) {
  QFileInfo fi(path);
  QString base = fi.completeBaseName(), suffix = fi.suffix();
  return fi.dir().filePath(
      QStringLiteral("%1-%2%3").arg(base).arg(index).arg(suffix.isEmpty() ? "" : "." + suffix));
}
}  // namespace

int runHeadless(const HeadlessOptions& o) {
  if (o.dashboard.isEmpty()) {
    err("--dashboard FILE is required for an export");
    return kExitUsage;
  }
  Dashboard d;
  QString error;
  DashboardDocument::SecretNotes notes;
  if (!DashboardDocument::read(o.dashboard, &d, &error, &notes)) {
    err("cannot open dashboard " + error);
    return kExitDashboard;
  }
  if (const QString text = notes.text(); !text.isEmpty()) err("note: " + text);
  if (!o.range.isEmpty() && !parseRangeArg(o.range, &d.range)) {
    err(QStringLiteral("--range '%1' is neither a duration like 1h nor FROM:TO unix seconds")
            .arg(o.range));
    return kExitUsage;
  }
  for (const QString& v : o.vars)
    if (auto s = setVariableFromArg(d.variables, v.toStdString()); !s) {
      err(QString::fromStdString(s.message()));
      return kExitUsage;
    }
  if (o.panel < 0 || o.panel > int(d.panels.size())) {
    err(QStringLiteral("--panel %1: the dashboard has %2 panels")
            .arg(o.panel)
            .arg(d.panels.size()));
    return kExitUsage;
  }
  // Nothing is sent before every source the export reads may send its headers to its host:
  // approved in the window once, or named by --allow-host. There is nobody to ask here.
  for (const DataSource& s : hostApproval::unapproved(d)) {
    bool used = false;
    for (size_t i = 0; i < d.panels.size(); ++i)
      used |= (!o.panel || int(i) + 1 == o.panel) && d.panels[i].source == s.name;
    if (!used || hostApproval::allowedByFlag(s, o.allowHosts)) continue;
    const QString host = QString::fromStdString(urlHostPort(s.url));
    err(QStringLiteral("data source '%1' would send its headers (%2) to %3, a host you have not "
                       "allowed it to send to: open the dashboard in the window once and allow "
                       "it, or pass --allow-host %3. Nothing was sent.")
            .arg(QString::fromStdString(s.name), hostApproval::headerNames(s), host));
    return kExitHostNotApproved;
  }
  CollectorClient client(o.collector);
  client.setTimeout(o.timeoutS);
  DataSources sources;
  sources.setTimeout(o.timeoutS);
  sources.setSources(d.sources);

  // Is the collector there at all? (Only asked when a panel to export reads it; an unreachable
  // Prometheus source is that panel's error.)
  QEventLoop loop;
  bool needsCollector = false;
  for (size_t i = 0; i < d.panels.size(); ++i)
    needsCollector |=
        (!o.panel || int(i) + 1 == o.panel) && d.panels[i].onCollector() && d.panels[i].hasQuery();
  if (needsCollector) {
    bool reachable = false;
    QString reason;
    client.fetchHealth(&loop, [&](Health h, bool ok) {
      reachable = ok;
      reason = QString::fromStdString(h.reason);
      loop.quit();
    });
    loop.exec();
    if (!reachable) {
      err(QStringLiteral("cannot reach the collector at %1: %2")
              .arg(o.collector.toString(), reason));
      return kExitUnreachable;
    }
  }

  std::vector<std::unique_ptr<PanelController>> panels;
  int pending = 0;
  const int rows = [&] {
    int r = 1;
    for (const auto& p : d.panels) r = std::max(r, p.grid.y + p.grid.h);
    return r;
  }();
  for (size_t i = 0; i < d.panels.size(); ++i) {
    if (o.panel && int(i) + 1 != o.panel) continue;
    auto c = std::make_unique<PanelController>(&client, nullptr);
    c->setDataSources(&sources);
    const auto& g = d.panels[i].grid;
    int width = o.panel ? o.size.width() : o.size.width() * g.w / kGridColumns;
    c->setPixelWidth(std::max(100, width - 80));
    c->setRange(d.range);  // no metric yet: no query
    QObject::connect(c.get(), &PanelController::queryFinished, &loop, [&] {
      if (--pending == 0) loop.quit();
    });
    ++pending;
    c->setSpec(applyVariables(d.panels[i], d.variables));
    if (!d.panels[i].hasQuery()) --pending;
    panels.push_back(std::move(c));
  }
  Q_UNUSED(rows);
  QTimer::singleShot(o.timeoutS * 1000, &loop, &QEventLoop::quit);
  if (pending > 0) loop.exec();

  // The collector's annotations over the exported time, marked as the window marks them. A
  // collector without annotations (older, 404) or a slow answer leaves the charts unmarked.
  if (needsCollector && !panels.empty()) {
    int64_t from = INT64_MAX, to = INT64_MIN;
    for (const auto& p : panels) {
      from = std::min(from, p->shownWindow().from);
      to = std::max(to, p->shownWindow().to);
    }
    QEventLoop annotationsLoop;
    client.fetchAnnotations(from, to, &annotationsLoop,
                            [&](tally::Result<std::vector<Annotation>> r) {
                              if (r)
                                for (auto& p : panels) p->setAnnotations(*r);
                              annotationsLoop.quit();
                            });
    annotationsLoop.exec();
  }

  int exitCode = kExitOk;
  for (size_t i = 0; i < panels.size(); ++i) {
    if (!panels[i]->error().isEmpty() || (!panels[i]->hasData() && panels[i]->spec().hasQuery())) {
      err(QStringLiteral("panel %1 (%2): %3")
              .arg(o.panel ? o.panel : int(i) + 1)
              .arg(QString::fromStdString(panels[i]->spec().displayTitle()),
                   panels[i]->error().isEmpty()
                       ? QStringLiteral("no answer in %1 s").arg(o.timeoutS)
                       : panels[i]->error()));
      exitCode = kExitQueryFailed;
    }
  }
  if (!o.png.isEmpty()) {
    bool ok;
    if (o.panel) {
      ok = Exporter::writePanelImage(*panels.front(), o.png, o.size, &error);
    } else {
      QList<const PanelController*> list;
      for (const auto& p : panels) list << p.get();
      TimeWindow w = resolveRange(d.range, QDateTime::currentSecsSinceEpoch());
      QString subtitle =
          QStringLiteral("%1 – %2").arg(QString::fromStdString(formatLocalTime(w.from)),
                                        QString::fromStdString(formatLocalTime(w.to)));
      ok = Exporter::writeDashboardImage(QString::fromStdString(d.title), subtitle, list, o.png,
                                         o.size, &error);
    }
    if (!ok) {
      err(error);
      return kExitCantWrite;
    }
    std::printf("%s\n", qPrintable(QFileInfo(o.png).absoluteFilePath()));
  }
  if (!o.csv.isEmpty()) {
    for (size_t i = 0; i < panels.size(); ++i) {
      if (panels[i]->spec().chart == tally::dash::ChartType::Row) continue;  // no data of its own
      QString path = panels.size() == 1 ? o.csv : withIndex(o.csv, int(i) + 1);
      if (!Exporter::writeCsv(*panels[i], path, &error)) {
        err(error);
        return kExitCantWrite;
      }
      std::printf("%s\n", qPrintable(QFileInfo(path).absoluteFilePath()));
    }
  }
  std::fflush(stdout);
  return exitCode;
}
