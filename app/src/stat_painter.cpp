#include "stat_painter.h"

#include <QPainter>
#include <QPainterPath>
#include <algorithm>
#include <cmath>

#include "panel_controller.h"

using namespace tally;
using namespace tally::dash;

namespace StatPainter {

namespace {
// The colours of a paint: the dark theme's on screen, light in exports.
struct Ink {
  QColor text, muted, track, band;
};
Ink inkFor(bool dark) {
  return dark ? Ink{QColor("#e8eaed"), QColor("#9aa0a6"), QColor("#3c4043"), QColor("#28292c")}
              : Ink{QColor("#202124"), QColor("#5f6368"), QColor("#e8eaed"), QColor("#f8f9fa")};
}
}  // namespace

QColor valueColor(const PanelSpec& spec, std::optional<double> value) {
  const std::string base = spec.thresholds.empty() ? "#1a73e8" : "#188038";
  if (!value) return QColor("#80868b");
  return QColor(QString::fromStdString(thresholdColor(spec.thresholds, *value, base)));
}

std::vector<SeriesStats> stats(const PanelController& panel) {
  const std::string metric = panel.spec().promql.empty() ? panel.spec().metric : std::string();
  return seriesStats(panel.visibleSeries(), metric);
}

Layout layoutTiles(int count, const QRectF& rect, bool gauge) {
  Layout out;
  if (count <= 0 || rect.width() < 20 || rect.height() < 20) {
    out.omitted = std::max(0, count);
    return out;
  }
  const double minW = gauge ? 120 : 110, minH = gauge ? 100 : 56;
  const int maxCols = std::max(1, int(rect.width() / minW));
  const int maxRows = std::max(1, int(rect.height() / minH));
  // As many columns as fit, then the rows needed; the tiles share the whole rect.
  const int cols = std::min(count, maxCols);
  const int rows = std::min(maxRows, (count + cols - 1) / cols);
  out.shown = std::min(count, cols * rows);
  out.omitted = count - out.shown;
  const double w = rect.width() / cols, h = rect.height() / rows;
  for (int i = 0; i < out.shown; ++i)
    out.tiles.push_back(QRectF(rect.left() + (i % cols) * w, rect.top() + (i / cols) * h, w, h)
                            .adjusted(3, 3, -3, -3));
  return out;
}

namespace {

QString text(std::optional<double> v, const PanelSpec& spec) {
  return QString::fromStdString(formatStat(v, spec.unit));
}

// The largest point size at which `s` fits `box`, at most `maxPt`.
QFont fitted(QFont f, const QString& s, const QSizeF& box, double maxPt) {
  double pt = maxPt;
  while (pt > 6) {
    f.setPointSizeF(pt);
    const QFontMetricsF fm(f);
    if (fm.horizontalAdvance(s) <= box.width() && fm.height() <= box.height()) break;
    pt *= 0.9;
  }
  f.setPointSizeF(std::max(6.0, pt));
  return f;
}

void paintStat(QPainter* p, const Ink& ink, const QRectF& r, const SeriesStats& s,
               const PanelSpec& spec, bool oneSeries) {
  const auto v = s.get(spec.reduce);
  const QColor c = valueColor(spec, v);
  QColor bg = c;
  bg.setAlpha(28);
  p->setPen(Qt::NoPen);
  p->setBrush(bg);
  p->drawRoundedRect(r, 4, 4);
  QFont f = p->font();
  const double labelH = oneSeries ? 0 : std::min(18.0, r.height() * 0.25);
  if (!oneSeries) {
    f.setPointSizeF(8.5);
    p->setFont(f);
    p->setPen(ink.muted);
    const QRectF lr(r.left() + 6, r.top() + 2, r.width() - 12, labelH);
    p->drawText(
        lr, Qt::AlignLeft | Qt::AlignVCenter,
        QFontMetricsF(f).elidedText(QString::fromStdString(s.label), Qt::ElideMiddle, lr.width()));
  }
  const QRectF vr(r.left() + 6, r.top() + labelH, r.width() - 12, r.height() - labelH - 2);
  const QString t = text(v, spec);
  f.setBold(true);  // before fitting: bold is wider
  QFont vf = fitted(f, t, vr.size(), std::min(40.0, vr.height() * 0.6));
  p->setFont(vf);
  p->setPen(c);
  p->drawText(vr, Qt::AlignCenter, t);
}

void paintGauge(QPainter* p, const Ink& ink, const QRectF& r, const SeriesStats& s,
                const PanelSpec& spec, bool oneSeries) {
  const auto v = s.get(spec.reduce);
  double lo = spec.minValue.value_or(0);
  double hi = spec.maxValue.value_or(std::max(
      {lo + 1, v.value_or(0), spec.thresholds.empty() ? 100.0 : spec.thresholds.back().value}));
  if (!spec.maxValue && !spec.thresholds.empty() && v && *v > spec.thresholds.back().value) hi = *v;
  const double labelH = oneSeries ? 0 : 16;
  const QRectF area = r.adjusted(4, 4, -4, -4 - labelH);
  const double d = std::min(area.width(), area.height() * 1.25);
  if (d < 30) return;
  const QRectF circle(area.center().x() - d / 2, area.top() + 4, d, d);
  const double thick = std::max(6.0, d * 0.09);
  const QRectF arcRect =
      circle.adjusted(thick / 2 + 3, thick / 2 + 3, -thick / 2 - 3, -thick / 2 - 3);
  // 240 degrees, from lower left (210) clockwise to lower right (-30).
  auto angle = [&](double x) {
    const double f = std::clamp((x - lo) / (hi - lo), 0.0, 1.0);
    return 210.0 - 240.0 * f;
  };
  p->setBrush(Qt::NoBrush);
  p->setPen(QPen(ink.track, thick, Qt::SolidLine, Qt::FlatCap));
  p->drawArc(arcRect, int(210 * 16), int(-240 * 16));
  // The thresholds as a thin outer band.
  const QRectF rim = arcRect.adjusted(-thick / 2 - 2, -thick / 2 - 2, thick / 2 + 2, thick / 2 + 2);
  for (size_t i = 0; i < spec.thresholds.size(); ++i) {
    const double a0 = angle(spec.thresholds[i].value);
    const double a1 = i + 1 < spec.thresholds.size() ? angle(spec.thresholds[i + 1].value) : -30;
    p->setPen(QPen(QColor(QString::fromStdString(spec.thresholds[i].color)), 3, Qt::SolidLine,
                   Qt::FlatCap));
    p->drawArc(rim, int(a0 * 16), int((a1 - a0) * 16));
  }
  const QColor c = valueColor(spec, v);
  if (v) {
    p->setPen(QPen(c, thick, Qt::SolidLine, Qt::FlatCap));
    p->drawArc(arcRect, int(210 * 16), int((angle(*v) - 210) * 16));
  }
  const QString t = text(v, spec);
  const QRectF vr(arcRect.center().x() - arcRect.width() * 0.35,
                  arcRect.center().y() - arcRect.height() * 0.2, arcRect.width() * 0.7,
                  arcRect.height() * 0.4);
  QFont bold = p->font();
  bold.setBold(true);
  QFont vf = fitted(bold, t, vr.size(), std::min(28.0, vr.height() * 0.7));
  p->setFont(vf);
  p->setPen(c);
  p->drawText(vr, Qt::AlignCenter, t);
  if (!oneSeries) {
    QFont f = p->font();
    f.setBold(false);
    f.setPointSizeF(8.5);
    p->setFont(f);
    p->setPen(ink.muted);
    const QRectF lr(r.left() + 4, r.bottom() - labelH - 2, r.width() - 8, labelH);
    p->drawText(
        lr, Qt::AlignCenter,
        QFontMetricsF(f).elidedText(QString::fromStdString(s.label), Qt::ElideMiddle, lr.width()));
  }
}

}  // namespace

void paintTable(QPainter* p, const QRectF& r, const std::vector<SeriesStats>& rows,
                const PanelSpec& spec, bool dark) {
  const Ink ink = inkFor(dark);
  QFont f = p->font();
  f.setPointSizeF(8.5);
  p->setFont(f);
  const double rowH = QFontMetricsF(f).height() + 6;
  const double nameW = r.width() * 0.4, colW = (r.width() - nameW) / 5;
  static const char* kHeads[] = {"last", "min", "max", "avg", "total"};
  QFont bold = f;
  bold.setBold(true);
  p->setFont(bold);
  p->setPen(ink.text);
  p->drawText(QRectF(r.left() + 4, r.top(), nameW - 8, rowH), Qt::AlignLeft | Qt::AlignVCenter,
              QObject::tr("Series"));
  for (int c = 0; c < 5; ++c)
    p->drawText(QRectF(r.left() + nameW + c * colW, r.top(), colW - 6, rowH),
                Qt::AlignRight | Qt::AlignVCenter, QString::fromLatin1(kHeads[c]));
  p->setFont(f);
  const int fit = std::max(0, int((r.height() - rowH) / rowH));
  const int n = int(rows.size());
  const int shown = n > fit ? std::max(0, fit - 1) : n;
  for (int i = 0; i < shown; ++i) {
    const double y = r.top() + (i + 1) * rowH;
    if (i % 2 == 0) p->fillRect(QRectF(r.left(), y, r.width(), rowH), ink.band);
    p->setPen(ink.text);
    p->drawText(QRectF(r.left() + 4, y, nameW - 8, rowH), Qt::AlignLeft | Qt::AlignVCenter,
                QFontMetricsF(f).elidedText(QString::fromStdString(rows[i].label), Qt::ElideMiddle,
                                            nameW - 8));
    int c = 0;
    for (Reduce red : kAllReduces) {
      const auto v = rows[i].get(red);
      p->setPen(spec.thresholds.empty() ? ink.text : valueColor(spec, v));
      p->drawText(QRectF(r.left() + nameW + c * colW, y, colW - 6, rowH),
                  Qt::AlignRight | Qt::AlignVCenter, text(v, spec));
      ++c;
    }
  }
  if (shown < n) {
    p->setPen(ink.muted);
    p->drawText(QRectF(r.left() + 4, r.top() + (shown + 1) * rowH, r.width() - 8, rowH),
                Qt::AlignLeft | Qt::AlignVCenter, QObject::tr("+%1 more").arg(n - shown));
  }
}

void paint(const PanelController& panel, QPainter* p, const QRectF& rect, bool dark) {
  const Ink ink = inkFor(dark);
  const PanelSpec& spec = panel.spec();
  const auto all = stats(panel);
  p->save();
  p->setRenderHint(QPainter::Antialiasing);
  p->setRenderHint(QPainter::TextAntialiasing);
  if (spec.chart == ChartType::Table) {
    paintTable(p, rect.adjusted(4, 4, -4, -4), all, spec, dark);
    p->restore();
    return;
  }
  const bool gauge = spec.chart == ChartType::Gauge;
  const QRectF area = rect.adjusted(2, 2, -2, -16);
  Layout l = layoutTiles(int(all.size()), area, gauge);
  for (int i = 0; i < l.shown; ++i)
    (gauge ? paintGauge : paintStat)(p, ink, l.tiles[size_t(i)], all[size_t(i)], spec,
                                     all.size() == 1);
  if (l.omitted > 0) {
    QFont f = p->font();
    f.setBold(false);
    f.setPointSizeF(8.5);
    p->setFont(f);
    p->setPen(ink.muted);
    p->drawText(QRectF(rect.left() + 4, rect.bottom() - 16, rect.width() - 8, 14),
                Qt::AlignRight | Qt::AlignVCenter, QObject::tr("+%1 more").arg(l.omitted));
  }
  p->restore();
}

}  // namespace StatPainter
