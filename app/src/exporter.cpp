#include "exporter.h"

#include <QChart>
#include <QFileInfo>
#include <QGraphicsLayout>
#include <QGraphicsScene>
#include <QPainter>
#include <QPdfWriter>
#include <QRegularExpression>
#include <QSaveFile>
#include <QSvgGenerator>
#include <algorithm>

#include <cmath>
#include "core/series_stats.h"
#include "panel_chart.h"
#include "panel_controller.h"
#include "stat_painter.h"

using namespace tally::dash;

namespace Exporter {

QSize parseSize(const QString& text) {
  static const QRegularExpression re(QStringLiteral("^\\s*(\\d{1,5})\\s*[xX×]\\s*(\\d{1,5})\\s*$"));
  auto m = re.match(text);
  if (!m.hasMatch()) return {};
  int w = m.captured(1).toInt(), h = m.captured(2).toInt();
  if (w < 16 || h < 16 || w > 16384 || h > 16384) return {};
  return {w, h};
}

bool writeCsv(const PanelController& panel, const QString& path, QString* error) {
  QSaveFile f(path);
  if (!f.open(QIODevice::WriteOnly)) {
    if (error) *error = QStringLiteral("cannot write %1: %2").arg(path, f.errorString());
    return false;
  }
  std::string text = panel.csv();
  f.write(text.data(), qint64(text.size()));
  if (!f.commit()) {
    if (error) *error = QStringLiteral("cannot write %1: %2").arg(path, f.errorString());
    return false;
  }
  return true;
}

namespace {

QString panelMessage(const PanelController& panel) {
  if (!panel.spec().hasQuery()) return QObject::tr("No metric chosen");
  if (!panel.error().isEmpty()) return QObject::tr("Query failed: %1").arg(panel.error());
  if (!panel.hasData()) return QObject::tr("No answer from %1").arg(panel.sourceName());
  bool empty = true;
  if (auto* r = panel.series())
    for (const auto& s : r->series) empty &= s.points.empty();
  if (auto* h = panel.histogram()) empty = h->buckets.empty();
  if (auto* h = panel.heatmap()) empty = h->columns.empty();
  return empty ? QObject::tr("No data in this time range") : QString();
}

}  // namespace

// The chart and its message, without a legend table.
static void paintChart(const PanelController& panel, QPainter* painter, const QRectF& rect);

void paintPanel(const PanelController& panel, QPainter* painter, const QRectF& rect) {
  const PanelSpec& spec = panel.spec();
  if (chartIsReduced(spec.chart)) {
    // Title, then the tiles, gauges or table.
    painter->save();
    QFont f = painter->font();
    f.setPointSizeF(10);
    f.setBold(true);
    painter->setFont(f);
    painter->setPen(QColor("#202124"));
    const double titleH = QFontMetricsF(f).height() + 8;
    painter->drawText(QRectF(rect.left() + 8, rect.top(), rect.width() - 16, titleH),
                      Qt::AlignCenter, QString::fromStdString(spec.displayTitle()));
    painter->restore();
    const QRectF body = rect.adjusted(0, titleH, 0, 0);
    const QString msg = panelMessage(panel);
    if (!msg.isEmpty()) {
      painter->setPen(panel.error().isEmpty() ? QColor("#5f6368") : QColor("#b3261e"));
      painter->drawText(body.adjusted(8, 8, -8, -8), Qt::AlignCenter | Qt::TextWordWrap, msg);
      return;
    }
    StatPainter::paint(panel, painter, body);
    return;
  }
  QRectF chartRect = rect;
  QRectF legendRect;
  if (spec.legend == LegendMode::Table) {
    const double h = std::min(rect.height() * 0.35, 24.0 + 18.0 * (spec.legendRows + 1));
    chartRect = rect.adjusted(0, 0, 0, -h);
    legendRect = QRectF(rect.left(), chartRect.bottom(), rect.width(), h);
    const std::string metric = spec.promql.empty() ? spec.metric : std::string();
    auto rows = seriesStats(panel.visibleSeries(), metric);
    std::stable_sort(rows.begin(), rows.end(), [](const SeriesStats& a, const SeriesStats& b) {
      return a.last.value_or(-INFINITY) > b.last.value_or(-INFINITY);
    });
    StatPainter::paintTable(painter, legendRect.adjusted(6, 2, -6, -4), rows, spec);
  }
  paintChart(panel, painter, chartRect);
}

static void paintChart(const PanelController& panel, QPainter* painter, const QRectF& rect) {
  QGraphicsScene scene;
  auto* chart = new QChart;
  scene.addItem(chart);
  PanelChart pc(chart);
  pc.setForceLight(true);  // exports are light whatever the app's theme
  pc.setShowTitle(true);
  chart->setGeometry(QRectF(QPointF(0, 0), rect.size()));
  // Render twice: the first pass settles the layout (plot area), the second places the ticks for
  // it.
  pc.render(panel);
  if (chart->layout()) chart->layout()->activate();
  pc.render(panel);
  if (chart->layout()) chart->layout()->activate();
  scene.setSceneRect(QRectF(QPointF(0, 0), rect.size()));
  painter->save();
  painter->setRenderHint(QPainter::Antialiasing);
  painter->setRenderHint(QPainter::TextAntialiasing);
  scene.render(painter, rect, scene.sceneRect(), Qt::IgnoreAspectRatio);
  QString msg = panelMessage(panel);
  if (!msg.isEmpty()) {
    QRectF plot = chart->plotArea().translated(rect.topLeft());
    painter->setPen(panel.error().isEmpty() ? QColor("#5f6368") : QColor("#b3261e"));
    QFont f = painter->font();
    f.setPointSizeF(10);
    painter->setFont(f);
    painter->drawText(plot.adjusted(8, 8, -8, -8), Qt::AlignCenter | Qt::TextWordWrap, msg);
  }
  painter->restore();
}

QImage renderPanel(const PanelController& panel, QSize size) {
  QImage img(size, QImage::Format_ARGB32_Premultiplied);
  img.fill(Qt::white);
  QPainter p(&img);
  paintPanel(panel, &p, QRectF(QPointF(0, 0), size));
  p.end();
  return img;
}

namespace {

template <typename Paint>
bool writeImage(const QString& path, QSize size, const QString& title, QString* error,
                Paint paint) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  if (suffix == "svg") {
    QSvgGenerator gen;
    gen.setFileName(path);
    gen.setSize(size);
    gen.setViewBox(QRect(QPoint(0, 0), size));
    gen.setTitle(title);
    QPainter p;
    if (!p.begin(&gen)) {
      if (error) *error = QStringLiteral("cannot write %1").arg(path);
      return false;
    }
    p.fillRect(QRect(QPoint(0, 0), size), Qt::white);
    paint(&p);
    p.end();
    return true;
  }
  if (suffix == "pdf") {
    QPdfWriter pdf(path);
    pdf.setTitle(title);
    pdf.setResolution(96);
    pdf.setPageSize(QPageSize(QSizeF(size), QPageSize::Point));
    pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
    QPainter p;
    if (!p.begin(&pdf)) {
      if (error) *error = QStringLiteral("cannot write %1").arg(path);
      return false;
    }
    // The page is in points (1/72 in) at 96 dpi device pixels: scale the pixel layout to fit.
    const QRect page = p.viewport();
    p.scale(double(page.width()) / size.width(), double(page.height()) / size.height());
    paint(&p);
    p.end();
    return true;
  }
  QImage img(size, QImage::Format_ARGB32_Premultiplied);
  img.fill(Qt::white);
  QPainter p(&img);
  paint(&p);
  p.end();
  QSaveFile f(path);
  if (!f.open(QIODevice::WriteOnly) ||
      !img.save(&f, suffix == "jpg" || suffix == "jpeg" ? "JPG" : "PNG") || !f.commit()) {
    if (error) *error = QStringLiteral("cannot write %1: %2").arg(path, f.errorString());
    return false;
  }
  return true;
}

}  // namespace

bool writePanelImage(const PanelController& panel, const QString& path, QSize size,
                     QString* error) {
  return writeImage(path, size, QString::fromStdString(panel.spec().displayTitle()), error,
                    [&](QPainter* p) { paintPanel(panel, p, QRectF(QPointF(0, 0), size)); });
}

void paintDashboard(const QString& title, const QString& subtitle,
                    const QList<const PanelController*>& panels, QPainter* painter, QSize size) {
  const int header = 34;
  painter->fillRect(QRect(QPoint(0, 0), size), QColor("#f1f3f4"));
  QFont f = painter->font();
  f.setPointSizeF(12);
  f.setBold(true);
  painter->setFont(f);
  painter->setPen(QColor("#202124"));
  painter->drawText(QRect(10, 0, size.width() - 20, header), Qt::AlignVCenter | Qt::AlignLeft,
                    title);
  f.setPointSizeF(9);
  f.setBold(false);
  painter->setFont(f);
  painter->setPen(QColor("#5f6368"));
  painter->drawText(QRect(10, 0, size.width() - 20, header), Qt::AlignVCenter | Qt::AlignRight,
                    subtitle);
  // As on screen: a collapsed row's panels are left out and what is below moves up.
  std::vector<PanelSpec> specs;
  for (const auto* p : panels) specs.push_back(p->spec());
  const RowLayout layout = layoutRows(specs);
  const int rows = std::max(1, layout.rows);
  const double colW = double(size.width()) / kGridColumns;
  const double rowH = double(size.height() - header) / rows;
  const double gap = 4;
  for (qsizetype i = 0; i < panels.size(); ++i) {
    if (layout.hidden[size_t(i)]) continue;
    const PanelSpec& spec = panels[i]->spec();
    const GridRect& g = spec.grid;
    QRectF r(g.x * colW + gap, header + layout.displayY[size_t(i)] * rowH + gap,
             g.w * colW - 2 * gap, g.h * rowH - 2 * gap);
    if (spec.chart == ChartType::Row) {  // a header line with its title
      QFont rf = painter->font();
      rf.setPointSizeF(11);
      rf.setBold(true);
      painter->setFont(rf);
      painter->setPen(QColor("#202124"));
      painter->drawText(r.adjusted(4, 0, 0, 0), Qt::AlignVCenter | Qt::AlignLeft,
                        (spec.collapsed ? QStringLiteral("▸ ") : QStringLiteral("▾ ")) +
                            QString::fromStdString(spec.title));
      painter->setPen(QColor("#dadce0"));
      painter->drawLine(r.bottomLeft(), r.bottomRight());
      continue;
    }
    painter->fillRect(r, Qt::white);
    paintPanel(*panels[i], painter, r);
  }
}

QImage renderDashboard(const QString& title, const QString& subtitle,
                       const QList<const PanelController*>& panels, QSize size) {
  QImage img(size, QImage::Format_ARGB32_Premultiplied);
  img.fill(Qt::white);
  QPainter p(&img);
  paintDashboard(title, subtitle, panels, &p, size);
  p.end();
  return img;
}

bool writeDashboardImage(const QString& title, const QString& subtitle,
                         const QList<const PanelController*>& panels, const QString& path,
                         QSize size, QString* error) {
  return writeImage(path, size, title, error,
                    [&](QPainter* p) { paintDashboard(title, subtitle, panels, p, size); });
}

}  // namespace Exporter
