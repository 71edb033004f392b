#include "panel_chart.h"

#include <QAreaSeries>
#include <QCategoryAxis>
#include <QGraphicsItem>
#include <QGuiApplication>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QPainter>
#include <QSettings>
#include <QValueAxis>
#include <algorithm>
#include <cmath>
#include <map>

#include "core/decimate.h"
#include "panel_controller.h"
#include "theme.h"

using namespace tally;
using namespace tally::dash;

// Cells of a distribution over time, drawn under the percentile lines in the plot area.
class HeatmapItem : public QGraphicsItem {
 public:
  HeatmapItem(QChart* chart) : QGraphicsItem(chart), m_chart(chart) { setZValue(3.5); }
  void setData(HeatmapResult data, QAbstractSeries* ref) {
    prepareGeometryChange();
    m_data = std::move(data);
    m_ref = ref;
    m_max = 1;
    for (const auto& c : m_data.columns)
      for (const auto& b : c.buckets) m_max = std::max<uint64_t>(m_max, b.count);
    update();
  }
  QRectF boundingRect() const override { return m_chart->plotArea(); }
  void areaChanged() {
    prepareGeometryChange();
    update();
  }
  void paint(QPainter* p, const QStyleOptionGraphicsItem*, QWidget*) override {
    if (!m_ref || m_data.columns.empty()) return;
    const QRectF area = m_chart->plotArea();
    const auto axes = m_chart->axes(Qt::Vertical);
    if (axes.isEmpty()) return;
    double yMin = 0, yMax = 1;
    bool log = false;
    if (auto* la = qobject_cast<QLogValueAxis*>(axes.first())) {
      yMin = la->min();
      yMax = la->max();
      log = yMin > 0;
    } else if (auto* va = qobject_cast<QValueAxis*>(axes.first())) {
      yMin = va->min();
      yMax = va->max();
    }
    if (!(yMax > yMin)) return;
    // The sketch's bins are ~2% wide: far thinner than a pixel row at most sizes. Re-bin each
    // column into rows about 4 px high (log-spaced on a log axis) so cells read as a heatmap.
    const int rows = std::max(8, int(area.height() / 4));
    auto toUnit = [&](double v) {
      if (log)
        return (std::log(std::max(v, yMin)) - std::log(yMin)) / (std::log(yMax) - std::log(yMin));
      return (v - yMin) / (yMax - yMin);
    };
    auto rowValue = [&](int r) {
      double u = double(r) / rows;
      return log ? std::exp(std::log(yMin) + u * (std::log(yMax) - std::log(yMin)))
                 : yMin + u * (yMax - yMin);
    };
    std::vector<std::vector<double>> cells(m_data.columns.size(),
                                           std::vector<double>(size_t(rows), 0.0));
    double maxCell = 0;
    for (size_t c = 0; c < m_data.columns.size(); ++c)
      for (const auto& b : m_data.columns[c].buckets) {
        // Spread the bin's count over the rows it covers (in axis units), so wide merged bins
        // leave no gaps and narrow ones land in one row.
        double lower = b.lower > 0 ? b.lower : b.upper / 1.02;
        double u0 = std::clamp(toUnit(lower) * rows, 0.0, double(rows));
        double u1 = std::clamp(toUnit(std::max(b.upper, lower)) * rows, 0.0, double(rows));
        if (u1 - u0 < 1e-9) {
          int r = std::clamp(int(u0), 0, rows - 1);
          cells[c][size_t(r)] += double(b.count);
          continue;
        }
        for (int r = int(u0); r < rows && r < u1; ++r) {
          double overlap = std::min(u1, double(r + 1)) - std::max(u0, double(r));
          if (overlap > 0) cells[c][size_t(r)] += double(b.count) * overlap / (u1 - u0);
        }
      }
    for (const auto& col : cells)
      for (double v : col) maxCell = std::max(maxCell, v);
    if (maxCell <= 0) return;
    p->save();
    p->setClipRect(area);
    p->setPen(Qt::NoPen);
    const double step = double(std::max<int64_t>(1, m_data.step));
    const double logMax = std::log1p(maxCell);
    for (size_t c = 0; c < m_data.columns.size(); ++c) {
      const double t = double(m_data.columns[c].time);
      for (int r = 0; r < rows; ++r) {
        double n = cells[c][size_t(r)];
        if (n <= 0) continue;
        QPointF a = m_chart->mapToPosition(QPointF(t, rowValue(r)), m_ref);
        QPointF z = m_chart->mapToPosition(QPointF(t + step, rowValue(r + 1)), m_ref);
        QRectF rect = QRectF(a, z).normalized().adjusted(0, -0.5, 0.5, 0);
        p->setBrush(ramp(std::log1p(n) / logMax));
        p->drawRect(rect);
      }
    }
    p->restore();
  }
  // Light yellow to deep purple: readable under dark percentile lines.
  static QColor ramp(double t) {
    static const QColor stops[] = {QColor(255, 247, 188), QColor(254, 196, 79),
                                   QColor(236, 112, 20), QColor(204, 76, 2), QColor(122, 1, 119)};
    t = std::clamp(t, 0.0, 1.0) * 4;
    int i = std::min(3, int(t));
    double f = t - i;
    const QColor &a = stops[i], &b = stops[i + 1];
    return QColor::fromRgbF(float(a.redF() + (b.redF() - a.redF()) * f),
                            float(a.greenF() + (b.greenF() - a.greenF()) * f),
                            float(a.blueF() + (b.blueF() - a.blueF()) * f));
  }

 private:
  QChart* m_chart;
  QAbstractSeries* m_ref = nullptr;
  HeatmapResult m_data;
  uint64_t m_max = 1;
};

// What a line, stacked-area or bar panel draws in its plot: filled bands, then lines, each mapped
// from value to pixel coordinates at paint time (a pan only repaints). Qt Charts' line and area
// series rebuild every point's geometry and a stroked hit-test shape on each change (about 35 µs
// a drawn point, and most of the live dashboard's CPU), which made a pan frame of a 1 M-point
// panel 80 ms and a 300-series zoom most of a second (bench_dashboard). The panel's Qt Charts
// series stay in the chart without points: they give the legend its entries, hold the axes, and
// map positions to values.
class PlotLayer : public QGraphicsItem {
 public:
  // A stacked layer: its upper and lower edges at the same times, in value coordinates.
  struct Band {
    int label;
    QPolygonF upper, lower;
  };
  // One bar of a layer, in value coordinates.
  struct Bar {
    int label;
    double x0, x1, lo, hi;
  };
  explicit PlotLayer(QChart* chart) : QGraphicsItem(chart), m_chart(chart) {
    setZValue(5);  // with Qt Charts' own series: over the grid, under the legend
  }
  // Per label: the line pen, or a band's outline (Qt::NoPen for none) and fill.
  void setStyles(QList<QPen> pens, QList<QBrush> brushes) {
    m_pens = std::move(pens);
    m_brushes = std::move(brushes);
  }
  void setContent(std::vector<Band> bands, std::vector<Bar> bars,
                  std::vector<PanelChart::LineRun> runs) {
    m_bands = std::move(bands);
    m_bars = std::move(bars);
    m_runs = std::move(runs);
    update();
  }
  const std::vector<PanelChart::LineRun>& runs() const { return m_runs; }
  // Thresholds (horizontal, at a value), annotations (vertical, at a time, from `at` to `end`) and
  // the dashboard's crosshair (vertical, at a time), in value coordinates.
  void setMarks(std::vector<PanelChart::Mark> thresholds, std::vector<PanelChart::Mark> events) {
    m_thresholds = std::move(thresholds);
    m_events = std::move(events);
    update();
  }
  void setDark(bool dark) {
    m_dark = dark;
    update();
  }
  void setCrosshair(std::optional<double> t, QString text) {
    if (t == m_crosshair && text == m_crosshairText) return;
    m_crosshair = t;
    m_crosshairText = std::move(text);
    update();
  }
  QRectF boundingRect() const override { return m_chart->plotArea(); }
  void areaChanged() {
    prepareGeometryChange();
    update();
  }
  void paint(QPainter* p, const QStyleOptionGraphicsItem*, QWidget*) override {
    const QRectF area = m_chart->plotArea();
    const auto xs = m_chart->axes(Qt::Horizontal);
    const auto ys = m_chart->axes(Qt::Vertical);
    if ((m_runs.empty() && m_bands.empty() && m_bars.empty() && m_thresholds.empty() &&
         m_events.empty() && !m_crosshair) ||
        xs.isEmpty() || ys.isEmpty() || area.isEmpty())
      return;
    auto* ax = qobject_cast<QValueAxis*>(xs.first());
    if (!ax || !(ax->max() > ax->min())) return;
    const double x0 = ax->min(), sx = area.width() / (ax->max() - ax->min());
    bool log = false;
    double y0 = 0, y1 = 1;
    if (auto* la = qobject_cast<QLogValueAxis*>(ys.first())) {
      log = true;
      y0 = std::log(la->min());
      y1 = std::log(la->max());
    } else if (auto* va = qobject_cast<QValueAxis*>(ys.first())) {
      y0 = va->min();
      y1 = va->max();
    }
    if (!(y1 > y0) || !std::isfinite(y0) || !std::isfinite(y1)) return;
    const double sy = area.height() / (y1 - y0);
    auto mapX = [&](double x) { return area.left() + (x - x0) * sx; };
    auto mapY = [&](double v) { return area.bottom() - ((log ? std::log(v) : v) - y0) * sy; };
    auto map = [&](const QPolygonF& values, QPolygonF& px) {
      px.resize(values.size());
      for (qsizetype i = 0; i < values.size(); ++i)
        px[i] = QPointF(mapX(values[i].x()), mapY(values[i].y()));
    };
    QPolygonF px, lowerPx;
    p->save();
    p->setClipRect(area);
    // Fills are spans, not polygons: a bar is a rectangle, a stacked layer one pixel-wide
    // rectangle per column between its edges (interpolated as the lines between points are).
    // Qt's polygon fill of the same bands was 70 % of the live dashboard's CPU.
    for (const auto& bar : m_bars) {
      if (bar.label < 0 || bar.label >= m_brushes.size()) continue;
      const QRectF r =
          QRectF(QPointF(mapX(bar.x0), mapY(bar.hi)), QPointF(mapX(bar.x1), mapY(bar.lo)))
              .normalized()
              .intersected(area);
      if (!r.isEmpty()) p->fillRect(r, m_brushes[bar.label]);
    }
    for (const auto& band : m_bands) {
      if (band.label < 0 || band.label >= m_brushes.size() || band.upper.size() < 2 ||
          band.lower.size() != band.upper.size())
        continue;
      map(band.upper, px);
      map(band.lower, lowerPx);
      const QBrush& brush = m_brushes[band.label];
      const int first = std::max(int(std::ceil(px.first().x())), int(area.left()));
      const int last = std::min(int(std::floor(px.last().x())), int(std::ceil(area.right())) - 1);
      qsizetype seg = 0;
      for (int col = first; col <= last; ++col) {
        const double x = col + 0.5;
        while (seg + 2 < px.size() && px[seg + 1].x() < x) ++seg;
        const QPointF &a = px[seg], &b = px[seg + 1];
        const QPointF &la = lowerPx[seg], &lb = lowerPx[seg + 1];
        const double f = b.x() > a.x() ? std::clamp((x - a.x()) / (b.x() - a.x()), 0.0, 1.0) : 0;
        const double top = a.y() + (b.y() - a.y()) * f;
        const double bottom = la.y() + (lb.y() - la.y()) * f;
        if (bottom > top) p->fillRect(QRectF(col, top, 1, bottom - top), brush);
      }
      if (m_pens[band.label].style() != Qt::NoPen) {
        p->setPen(m_pens[band.label]);
        p->drawPolyline(px);
      }
    }
    for (const auto& run : m_runs) {
      if (run.label < 0 || run.label >= m_pens.size() || run.points.isEmpty()) continue;
      map(run.points, px);
      QPen pen = m_pens[run.label];
      if (run.partial) pen.setStyle(Qt::DashLine);
      p->setPen(pen);
      if (px.size() == 1)
        p->drawPoint(px.first());
      else
        p->drawPolyline(px);
    }
    p->setRenderHint(QPainter::Antialiasing, false);
    for (const auto& t : m_thresholds) {
      if (log && t.at <= 0) continue;
      const double y = mapY(t.at);
      if (y < area.top() || y > area.bottom()) continue;
      p->setPen(QPen(t.color, 1, Qt::DashLine));
      p->drawLine(QPointF(area.left(), y), QPointF(area.right(), y));
    }
    for (const auto& e : m_events) {
      const double x = mapX(e.at);
      const double x1 = e.end > e.at ? mapX(e.end) : x;
      if (x1 < area.left() || x > area.right()) continue;
      QColor fill = e.color;
      fill.setAlpha(40);
      if (x1 > x + 1) p->fillRect(QRectF(QPointF(x, area.top()), QPointF(x1, area.bottom())), fill);
      p->setPen(QPen(e.color, 1, Qt::DashLine));
      p->drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()));
      p->setPen(Qt::NoPen);
      p->setBrush(e.color);
      p->drawPolygon(QPolygonF{QPointF(x - 4, area.top()), QPointF(x + 4, area.top()),
                               QPointF(x, area.top() + 6)});
    }
    if (m_crosshair) {
      const double x = mapX(*m_crosshair);
      if (x >= area.left() && x <= area.right()) {
        p->setPen(QPen(m_dark ? QColor(0x9a, 0xa0, 0xa6) : QColor(0x5f, 0x63, 0x68), 1));
        p->drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()));
        if (!m_crosshairText.isEmpty()) {
          // The values at that time, in a box beside the line (left of it near the right edge).
          QFont f = p->font();
          f.setPointSizeF(8);
          p->setFont(f);
          const QFontMetricsF fm(f);
          const QStringList lines = m_crosshairText.split('\n').mid(0, 6);
          double w = 0;
          for (const QString& l : lines) w = std::max(w, fm.horizontalAdvance(l));
          const QSizeF box(w + 8, fm.height() * lines.size() + 4);
          QRectF r(QPointF(x + 6, area.top() + 4), box);
          if (r.right() > area.right()) r.moveRight(x - 6);
          p->fillRect(r, m_dark ? QColor(0x2d, 0x2e, 0x31, 235) : QColor(255, 255, 255, 225));
          p->setPen(m_dark ? QColor(0xe8, 0xea, 0xed) : QColor(0x20, 0x21, 0x24));
          p->drawText(r.adjusted(4, 2, -4, -2), Qt::AlignLeft | Qt::AlignTop, lines.join('\n'));
        }
      }
    }
    p->restore();
  }

 private:
  QChart* m_chart;
  QList<QPen> m_pens;  // per label
  QList<QBrush> m_brushes;
  std::vector<Band> m_bands;
  std::vector<Bar> m_bars;
  std::vector<PanelChart::LineRun> m_runs;
  std::vector<PanelChart::Mark> m_thresholds;
  std::vector<PanelChart::Mark> m_events;
  std::optional<double> m_crosshair;
  QString m_crosshairText;
  bool m_dark = false;
};

namespace {

const char* kLabelProperty = "tallyLabel";
// Lines and area outlines are 1 px cosmetic pens: Qt's raster engine draws those on its fast
// cosmetic path (antialiased too); any wider pen goes through the path stroker, which made a
// 1M-point pan frame 150 ms and a 300-series zoom most of a second (bench_dashboard).
constexpr qreal kLineWidth = 1.0;
const char* kPartialSetting = "render/partial";
int s_partialStyle = -1;  // cached: redraw() asks every second per panel

QString unitTitle(const PanelSpec& spec) {
  return QString::fromStdString(spec.unit);
}

QString valueText(double v, const PanelSpec& spec) {
  QString s = QString::number(v, 'g', 10);
  if (!spec.unit.empty()) s += ' ' + QString::fromStdString(spec.unit);
  return s;
}

}  // namespace

PanelChart::PanelChart(QChart* chart, QObject* parent) : QObject(parent), m_chart(chart) {
  m_chart->setAnimationOptions(QChart::NoAnimation);
  styleChart();
  // The items drawn in the plot area follow its size (one connection for every rebuild).
  connect(m_chart, &QChart::plotAreaChanged, this, [this] {
    if (m_heatmap) m_heatmap->areaChanged();
    if (m_layer) m_layer->areaChanged();
  });
}

PanelChart::~PanelChart() = default;

void PanelChart::styleChart() {
  m_chart->setMargins(QMargins(2, 2, 2, 2));
  m_chart->setBackgroundRoundness(0);
  m_chart->legend()->setAlignment(Qt::AlignBottom);
  QFont f = m_chart->legend()->font();
  f.setPointSizeF(8.5);
  m_chart->legend()->setFont(f);
}

void PanelChart::applyTheme() {
  const bool dark = !m_forceLight && Theme::isDark();
  if (dark == m_dark) return;
  m_dark = dark;
  // A theme resets fonts, colours and series styles: style again and rebuild at this render.
  m_chart->setTheme(dark ? QChart::ChartThemeDark : QChart::ChartThemeLight);
  styleChart();
  m_shapeKey.clear();
}

QColor PanelChart::seriesColor(int index) {
  // Tableau 10: distinguishable, also in print.
  static const QColor palette[] = {QColor("#4e79a7"), QColor("#f28e2b"), QColor("#e15759"),
                                   QColor("#76b7b2"), QColor("#59a14f"), QColor("#edc948"),
                                   QColor("#b07aa1"), QColor("#ff9da7"), QColor("#9c755f"),
                                   QColor("#bab0ac")};
  if (index < 10) return palette[index];
  // Past ten: hues a golden angle apart, alternating lightness, so no two series share a colour.
  const int k = index - 10;
  return QColor::fromHsvF(float(std::fmod(0.11 + k * 0.618033988749895, 1.0)), k % 2 ? 0.55f : 0.8f,
                          k % 3 == 2 ? 0.6f : 0.85f);
}

QStringList PanelChart::seriesNames() const {
  QStringList out;
  for (auto* s : m_chart->series()) out << s->name();
  return out;
}

std::vector<PanelChart::LineRun> PanelChart::lineRuns(const QString& label) const {
  std::vector<LineRun> out;
  const int index = int(m_labels.indexOf(label));
  if (!m_layer || index < 0) return out;
  for (const auto& run : m_layer->runs())
    if (run.label == index) out.push_back(run);
  return out;
}

void PanelChart::clear() {
  delete m_heatmap;
  m_heatmap = nullptr;
  delete m_layer;
  m_layer = nullptr;
  m_chart->removeAllSeries();
  for (QAbstractAxis* a : m_chart->axes()) {
    m_chart->removeAxis(a);
    delete a;
  }
  m_lines.clear();
  m_lowers.clear();
  m_x = m_y = nullptr;
}

void PanelChart::render(const PanelController& panel) {
  applyTheme();
  const PanelSpec& spec = panel.spec();
  Kind kind = Kind::Line;
  switch (spec.chart) {
    case ChartType::Line:
      kind = Kind::Line;
      break;
    case ChartType::StackedArea:
      kind = Kind::Stacked;
      break;
    case ChartType::Bars:
      kind = Kind::Bars;
      break;
    case ChartType::Histogram:
      kind = Kind::Histogram;
      break;
    case ChartType::Heatmap:
      kind = Kind::Heatmap;
      break;
    case ChartType::Stat:
    case ChartType::Gauge:
    case ChartType::Table:
    case ChartType::Row:
      kind = Kind::Line;  // not drawn as a chart (StatPainter); a line if asked
      break;
  }
  QStringList labels;
  bool logX = false, logY = spec.logY;
  if (kind == Kind::Histogram) {
    labels = {"count", "p50", "p90", "p99"};
    if (const auto* h = panel.histogram(); h && !h->buckets.empty()) {
      double lo = h->buckets.front().lower, hi = h->buckets.back().upper;
      logX = lo > 0 && hi / lo > 50;
    }
  } else if (kind == Kind::Heatmap) {
    labels = {"p50", "p90", "p99"};
    logY = true;
    if (const auto* h = panel.heatmap())
      for (const auto& c : h->columns)
        for (const auto& b : c.buckets)
          if (b.upper <= 0) logY = false;
  } else if (const auto* r = panel.series()) {
    for (const auto& s : r->series) labels << QString::fromStdString(s.label(spec.metric));
  }
  QStringList hidden = panel.hiddenSeries().values();
  hidden.sort();
  QString key = QStringLiteral("%1|%2|%3|%4|%5|%6|%7")
                    .arg(int(kind) * 2 + int(spec.legend == LegendMode::Table))
                    .arg(logX)
                    .arg(logY)
                    .arg(labels.join(QChar(0x1f)), hidden.join(QChar(0x1f)), unitTitle(spec),
                         QString::fromStdString(spec.displayTitle()));
  if (key != m_shapeKey || kind != m_kind) {
    m_shapeKey = key;
    m_kind = kind;
    m_labels = labels;
    clear();
    if (m_showTitle) {
      QFont tf = m_chart->titleFont();
      tf.setPointSizeF(10);
      tf.setBold(true);
      m_chart->setTitleFont(tf);
      m_chart->setTitle(QString::fromStdString(spec.displayTitle()));
    }
    // Axes first, then series.
    if (kind == Kind::Histogram) {
      if (logX) {
        auto* ax = new QLogValueAxis;
        ax->setBase(10);
        ax->setLabelFormat("%g");
        ax->setMinorTickCount(0);
        m_x = ax;
      } else {
        m_x = new QCategoryAxis;
        static_cast<QCategoryAxis*>(m_x)->setLabelsPosition(
            QCategoryAxis::AxisLabelsPositionOnValue);
      }
      m_x->setTitleText(unitTitle(spec));
    } else {
      auto* ax = new QCategoryAxis;
      ax->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
      m_x = ax;
    }
    if (logY) {
      auto* ay = new QLogValueAxis;
      ay->setBase(10);
      ay->setLabelFormat("%g");
      ay->setMinorTickCount(0);
      m_y = ay;
    } else {
      auto* ay = new QCategoryAxis;
      ay->setLabelsPosition(QCategoryAxis::AxisLabelsPositionOnValue);
      m_y = ay;
    }
    if (kind == Kind::Histogram)
      m_y->setTitleText(tr("count"));
    else
      m_y->setTitleText(unitTitle(spec));
    QFont af = m_x->labelsFont();
    af.setPointSizeF(8);
    m_x->setLabelsFont(af);
    m_y->setLabelsFont(af);
    QFont tf = m_y->titleFont();
    tf.setPointSizeF(8);
    tf.setBold(false);
    m_x->setTitleFont(tf);
    m_y->setTitleFont(tf);
    m_chart->addAxis(m_x, Qt::AlignBottom);
    m_chart->addAxis(m_y, Qt::AlignLeft);

    auto addLine = [&](const QString& label, QColor color, Qt::PenStyle style, qreal width) {
      auto* s = new QLineSeries;
      s->setName(label);
      s->setProperty(kLabelProperty, label);
      QPen pen(color, width, style);
      pen.setCosmetic(true);
      s->setPen(pen);
      m_chart->addSeries(s);
      s->attachAxis(m_x);
      s->attachAxis(m_y);
      return s;
    };
    auto addArea = [&](const QString& label, QColor color, qreal alpha) {
      // QAreaSeries does not delete its boundary series: as its children they go with it (in
      // clear() or with the chart). Left without an owner, every rebuild leaked them and their
      // points (LeakSanitizer, tst_dashboard_widgets).
      auto* area = new QAreaSeries;
      auto* upper = new QLineSeries(area);
      auto* lower = new QLineSeries(area);
      area->setUpperSeries(upper);
      area->setLowerSeries(lower);
      area->setName(label);
      area->setProperty(kLabelProperty, label);
      QColor fill = color;
      fill.setAlphaF(float(alpha));
      area->setBrush(fill);
      QPen pen(color.darker(115), kLineWidth);
      pen.setCosmetic(true);
      // Bars are one polygon per layer, joined along the gaps by zero-height edges: no outline,
      // or those edges would show as slanted lines between bars.
      area->setPen(kind == Kind::Bars ? QPen(Qt::NoPen) : pen);
      m_chart->addSeries(area);
      area->attachAxis(m_x);
      area->attachAxis(m_y);
      m_lines << upper;
      m_lowers << lower;
      return area;
    };
    // Line, stacked and bar panels: the layer draws, the series keep the legend (see PlotLayer).
    auto addLayer = [&](QList<QPen> pens, QList<QBrush> brushes) {
      m_layer = new PlotLayer(m_chart);
      m_layer->setDark(m_dark);
      m_layer->setStyles(std::move(pens), std::move(brushes));
      // A pan or a new y range moves the axes only: the layer maps its points again.
      for (QAbstractAxis* axis : {m_x, m_y})
        if (auto* va = qobject_cast<QValueAxis*>(axis))
          connect(va, &QValueAxis::rangeChanged, this, [this] {
            if (m_layer) m_layer->update();
          });
      if (auto* la = qobject_cast<QLogValueAxis*>(m_y))
        connect(la, &QLogValueAxis::rangeChanged, this, [this] {
          if (m_layer) m_layer->update();
        });
    };
    switch (kind) {
      case Kind::Line: {
        QList<QPen> pens;
        for (int i = 0; i < labels.size(); ++i) {
          auto* s = addLine(labels[i], seriesColor(i), Qt::SolidLine, kLineWidth);
          m_lines << s;
          pens << s->pen();
        }
        addLayer(pens, {});
        break;
      }
      case Kind::Stacked:
      case Kind::Bars: {
        QList<QPen> pens;
        QList<QBrush> brushes;
        for (int i = 0; i < labels.size(); ++i) {
          auto* a = addArea(labels[i], seriesColor(i), kind == Kind::Stacked ? 0.65 : 0.9);
          pens << a->pen();
          brushes << a->brush();
        }
        addLayer(pens, brushes);
        break;
      }
      case Kind::Histogram:
        addArea("count", seriesColor(0), 0.8);
        m_lines << addLine("p50", QColor("#2b2b2b"), Qt::DashLine, 1.5);
        m_lines << addLine("p90", QColor("#e15759"), Qt::DashLine, 1.5);
        m_lines << addLine("p99", QColor("#7a0177"), Qt::DotLine, 2.0);
        break;
      case Kind::Heatmap:
        m_lines << addLine("p50", QColor("#00b4ff"), Qt::SolidLine, 2.4);
        m_lines << addLine("p90", QColor("#1a9e1a"), Qt::SolidLine, 2.2);
        m_lines << addLine("p99", QColor("#000000"), Qt::DashLine, 2.2);
        m_heatmap = new HeatmapItem(m_chart);
        break;
      case Kind::None:
        break;
    }
    hookLegend();
    // One series without tags needs no legend: the title says what it is.
    const bool single = (kind == Kind::Line || kind == Kind::Stacked || kind == Kind::Bars) &&
                        labels.size() == 1 && labels.first() == QString::fromStdString(spec.metric);
    m_chart->legend()->setVisible(!single && spec.legend == LegendMode::List);
    for (auto* s : m_chart->series()) {
      const QString label = s->property(kLabelProperty).toString();
      if (!panel.hiddenSeries().contains(label)) continue;
      s->setVisible(false);
      for (QLegendMarker* m : m_chart->legend()->markers(s)) {
        m->setVisible(true);
        m->setLabelBrush(QColor(160, 160, 160));
        QColor c = m->brush().color();
        c.setAlphaF(0.25f);
        m->setBrush(c);
      }
    }
  }
  m_drawnPoints = 0;
  m_renderedPlot = m_chart->plotArea().size().toSize();
  switch (kind) {
    case Kind::Histogram:
      renderHistogram(panel);
      break;
    case Kind::Heatmap:
      renderHeatmap(panel);
      break;
    default:
      renderSeries(panel);
      break;
  }
}

PanelChart::PartialStyle PanelChart::partialStyle() {
  if (s_partialStyle < 0)
    s_partialStyle = QSettings().value(kPartialSetting).toString() == QLatin1String("hold") ? 1 : 0;
  return s_partialStyle == 1 ? PartialStyle::HeldBack : PartialStyle::Dashed;
}

void PanelChart::setPartialStyle(PartialStyle style) {
  QSettings().setValue(kPartialSetting, style == PartialStyle::HeldBack ? QStringLiteral("hold")
                                                                        : QStringLiteral("dashed"));
  s_partialStyle = style == PartialStyle::HeldBack ? 1 : 0;
}

void PanelChart::reloadSettings() {
  s_partialStyle = -1;
}

void PanelChart::hookLegend() {
  for (QLegendMarker* m : m_chart->legend()->markers()) {
    connect(m, &QLegendMarker::clicked, this,
            [this, m] { emit legendClicked(m->series()->property(kLabelProperty).toString()); });
  }
}

void PanelChart::setTimeAxis(double from, double to) {
  auto* ax = qobject_cast<QCategoryAxis*>(m_x);
  if (!ax) return;
  for (const QString& l : ax->categoriesLabels()) ax->remove(l);
  const int pixels = int(std::max<qreal>(200, m_chart->plotArea().width()));
  ax->setStartValue(from);
  QSet<QString> used;
  for (const auto& t : timeTicks(int64_t(std::ceil(from)), int64_t(to), std::max(2, pixels / 90))) {
    if (double(t.t) <= from || double(t.t) > to) continue;
    // A label centred on a tick near the right edge would be cut by the plot frame.
    if ((to - double(t.t)) / (to - from) * pixels < 24) continue;
    QString label = QString::fromStdString(t.label);
    while (used.contains(label)) label += ' ';
    used.insert(label);
    ax->append(label, double(t.t));
  }
  ax->setRange(from, to);
}

void PanelChart::setValueAxis(QAbstractAxis* axis, double min, double max, bool log, int pixels,
                              bool horizontal) {
  if (!std::isfinite(min) || !std::isfinite(max)) {
    min = 0;
    max = 1;
  }
  if (log) {
    min = std::pow(10.0, std::floor(std::log10(std::max(min, 1e-12))));
    max = std::pow(10.0, std::ceil(std::log10(std::max(max, min * 10))));
    if (max <= min) max = min * 10;
    axis->setRange(min, max);
    return;
  }
  auto* ax = qobject_cast<QCategoryAxis*>(axis);
  if (!ax) {
    axis->setRange(min, max);
    return;
  }
  if (max <= min) max = min + 1;
  max += (max - min) * 0.04;  // headroom: the highest point does not touch the frame
  int maxTicks = std::max(3, pixels / (horizontal ? 80 : 38));
  std::vector<double> ticks = niceTicks(min, max, maxTicks);
  if (ticks.size() >= 2) {
    double step = ticks[1] - ticks[0];
    if (ticks.back() < max - step * 1e-9) ticks.push_back(ticks.back() + step);
    if (ticks.front() > min + step * 1e-9) ticks.insert(ticks.begin(), ticks.front() - step);
  } else {
    ticks = {min, max};
  }
  for (const QString& l : ax->categoriesLabels()) ax->remove(l);
  double lo = ticks.front(), hi = ticks.back();
  double eps = (hi - lo) * 1e-9;
  ax->setStartValue(lo - eps);
  QSet<QString> used;
  for (double t : ticks) {
    QString label = QString::fromStdString(formatValue(t));
    while (used.contains(label)) label += ' ';
    used.insert(label);
    ax->append(label, t);
  }
  ax->setRange(lo - eps, hi);
}

void PanelChart::renderSeries(const PanelController& panel) {
  const QueryResult* r = panel.series();
  const TimeWindow win = panel.shownWindow();
  const double from = double(win.from), to = double(win.to);
  setTimeAxis(from, to);
  const int px = int(std::max<qreal>(100, m_chart->plotArea().width()));
  const bool log = panel.spec().logY;
  double yMin = 0, yMax = 0;
  bool any = false;
  auto extend = [&](double v) {
    if (log && v <= 0) return;
    if (!any) yMin = yMax = v;
    yMin = std::min(yMin, v);
    yMax = std::max(yMax, v);
    any = true;
  };
  if (!r) {
    for (auto* s : m_lines) s->clear();
    if (m_layer) m_layer->setContent({}, {}, {});
    setValueAxis(m_y, 0, 1, log, int(m_chart->plotArea().height()), false);
    setMarks(panel);
    return;
  }
  const auto& all = r->series;
  std::vector<PlotLayer::Band> bands;
  std::vector<PlotLayer::Bar> bars;
  std::vector<LineRun> runs;
  auto hidden = [&](size_t i) {
    return panel.hiddenSeries().contains(QString::fromStdString(all[i].label(panel.spec().metric)));
  };
  if (m_kind == Kind::Line) {
    // A line breaks where buckets are missing (no data, or time the collector could not be
    // asked about): nothing is drawn there, never a zero. The bucket still filling (at or after
    // partial_from) is drawn dashed from the last final point, or left out until it is final.
    const double gapAfter = 1.5 * double(std::max<int64_t>(1, r->step));
    const bool holdBack = partialStyle() == PartialStyle::HeldBack;
    std::vector<XY> vis, partial, run;
    for (size_t i = 0; i < all.size() && int(i) < m_lines.size(); ++i) {
      if (hidden(i)) continue;
      const int li = int(i);
      // Only the points in the window (and one either side, so lines reach the frame) are
      // copied: a pan or zoom over a 1 M-point series looks at the visible part only.
      const auto& points = all[i].points;
      auto lo = std::lower_bound(points.begin(), points.end(), from,
                                 [](const Point& p, double x) { return double(p.t) < x; });
      auto hi = std::upper_bound(points.begin(), points.end(), to,
                                 [](double x, const Point& p) { return x < double(p.t); });
      if (lo != points.begin()) --lo;
      if (hi != points.end()) ++hi;
      vis.clear();
      vis.reserve(size_t(hi - lo));
      for (auto it = lo; it != hi; ++it)
        if (std::isfinite(it->v) && (!log || it->v > 0)) vis.push_back({double(it->t), it->v});
      const double partialFrom =
          all[i].partialFrom ? double(*all[i].partialFrom) : std::numeric_limits<double>::max();
      size_t firstPartial = vis.size();
      while (firstPartial > 0 && vis[firstPartial - 1].x >= partialFrom) --firstPartial;
      partial.assign(vis.begin() + long(firstPartial), vis.end());
      vis.resize(firstPartial);
      if (holdBack) partial.clear();
      for (const auto& p : vis)
        if (p.x >= from && p.x <= to) extend(p.y);
      for (const auto& p : partial)
        if (p.x >= from && p.x <= to) extend(p.y);
      if (!partial.empty() && !vis.empty() && partial.front().x - vis.back().x <= gapAfter)
        partial.insert(partial.begin(), vis.back());
      // Runs between gaps, each decimated to its share of one point per pixel column.
      const size_t budget = size_t(px);
      size_t start = 0;
      for (size_t k = 1; k <= vis.size(); ++k) {
        if (k < vis.size() && vis[k].x - vis[k - 1].x <= gapAfter) continue;
        run.assign(vis.begin() + long(start), vis.begin() + long(k));
        start = k;
        const size_t share =
            std::max<size_t>(3, budget * run.size() / std::max<size_t>(1, vis.size()));
        std::vector<XY> dec = lttb(run, share);
        LineRun out{li, false, {}};
        out.points.reserve(qsizetype(dec.size()));
        for (const auto& p : dec) out.points.append(QPointF(p.x, p.y));
        m_drawnPoints += int(out.points.size());
        runs.push_back(std::move(out));
      }
      if (!partial.empty()) {
        LineRun out{li, true, {}};
        for (const auto& p : partial) out.points.append(QPointF(p.x, p.y));
        m_drawnPoints += int(out.points.size());
        runs.push_back(std::move(out));
      }
    }
  } else {
    // Stacked area or bars: cumulative over the visible groups on the union of bucket times.
    std::map<int64_t, std::vector<double>> grid;
    std::vector<size_t> shown;
    for (size_t i = 0; i < all.size(); ++i)
      if (!hidden(i)) shown.push_back(i);
    for (size_t k = 0; k < shown.size(); ++k)
      for (const auto& p : all[shown[k]].points) {
        if (double(p.t) < from - double(r->step) || double(p.t) > to) continue;
        auto& row = grid[p.t];
        row.resize(shown.size(), 0.0);
        row[k] = std::isfinite(p.v) ? p.v : 0.0;
      }
    std::vector<int64_t> times;
    times.reserve(grid.size());
    for (auto& [t, row] : grid) {
      times.push_back(t);
      row.resize(shown.size(), 0.0);
    }
    // Too many buckets for the width (stacked only; bars follow the step): keep per pixel column
    // the bucket with the largest total, the same one for every layer.
    std::vector<size_t> pick;
    if (m_kind == Kind::Stacked && times.size() > size_t(px) * 2) {
      long lastCol = -1;
      for (size_t j = 0; j < times.size(); ++j) {
        long col = long((double(times[j]) - from) / (to - from) * px * 2);
        double total = 0;
        for (double v : grid[times[j]]) total += v;
        if (col != lastCol) {
          pick.push_back(j);
          lastCol = col;
        } else {
          double best = 0;
          for (double v : grid[times[pick.back()]]) best += v;
          if (total > best) pick.back() = j;
        }
      }
    } else {
      for (size_t j = 0; j < times.size(); ++j) pick.push_back(j);
    }
    const double step = double(std::max<int64_t>(1, r->step));
    const double stepPx = step / std::max(1.0, to - from) * px;
    // At least 3 px between bars (the outline eats one), at most 45% of a bar.
    const double gapPx = std::min(std::max(3.0, stepPx * 0.2), stepPx * 0.45);
    const double gap = m_kind == Kind::Bars && stepPx >= 5 ? gapPx * step / stepPx : 0;
    const double base = log ? 1e-12 : 0;
    std::vector<QPolygonF> uppers(shown.size()), lowers(shown.size());
    for (size_t j : pick) {
      const auto& row = grid[times[j]];
      double t0 = double(times[j]);
      double cum = base;
      for (size_t k = 0; k < shown.size(); ++k) {
        double lo = cum, hi = cum + row[k];
        cum = hi;
        if (m_kind == Kind::Stacked) {
          uppers[k].append(QPointF(t0, hi));
          lowers[k].append(QPointF(t0, lo));
        } else {
          bars.push_back({int(shown[k]), t0 + gap / 2, t0 + step - gap / 2, lo, hi});
          m_drawnPoints += 4;
        }
      }
      if (t0 >= from && t0 <= to) extend(cum);
    }
    if (any) extend(base > 0 ? yMin : 0);
    for (size_t k = 0; k < shown.size() && m_kind == Kind::Stacked; ++k) {
      m_drawnPoints += int(uppers[k].size());
      bands.push_back({int(shown[k]), std::move(uppers[k]), std::move(lowers[k])});
    }
  }
  if (!any) yMin = 0, yMax = log ? 10 : 1;
  if (!log && yMin == yMax) {
    // A flat line sits in the middle of the plot, not on its frame.
    const double v = yMin;
    yMin = v > 0 ? 0 : v == 0 ? 0 : v * 2;
    yMax = v > 0 ? v * 2 : v == 0 ? 1 : 0;
  } else if (!log && yMin > 0 && m_kind == Kind::Line && yMin > (yMax - yMin) * 2) {
    // A flat-ish line far from zero keeps its detail; otherwise the axis starts at zero.
  } else if (!log && yMin > 0) {
    yMin = 0;
  }
  if (log && any) {
    // Bars and stacked areas start at the axis floor.
    double floor = std::pow(10.0, std::floor(std::log10(yMin)));
    for (auto& band : bands)
      for (QPolygonF* edge : {&band.upper, &band.lower})
        for (auto& p : *edge) p.setY(std::max(p.y(), floor));
    for (auto& bar : bars) {
      bar.lo = std::max(bar.lo, floor);
      bar.hi = std::max(bar.hi, floor);
    }
  }
  if (m_layer) m_layer->setContent(std::move(bands), std::move(bars), std::move(runs));
  setValueAxis(m_y, yMin, yMax, log, int(m_chart->plotArea().height()), false);
  setMarks(panel);
}

void PanelChart::setMarks(const PanelController& panel) {
  m_thresholdMarks.clear();
  for (const auto& t : panel.spec().thresholds)
    m_thresholdMarks.push_back({t.value, 0, QColor(QString::fromStdString(t.color)), {}, 0, {}});
  m_annotationMarks.clear();
  const TimeWindow win = panel.shownWindow();
  for (const auto& a : panel.annotations()) {
    const double end = a.end.value_or(a.time);
    if (end < double(win.from) || a.time >= double(win.to)) continue;
    QString text = QString::fromStdString(a.title);
    if (!a.text.empty()) text += QStringLiteral("\n") + QString::fromStdString(a.text);
    m_annotationMarks.push_back(
        {a.time, end, QColor(0x8e, 0x24, 0xaa), text, a.id, QString::fromStdString(a.title)});
  }
  if (m_layer) m_layer->setMarks(m_thresholdMarks, m_annotationMarks);
}

void PanelChart::setCrosshair(const PanelController& panel, std::optional<double> t) {
  m_crosshair = t;
  m_crosshairText = t ? hoverText(panel, QPointF(*t, 0)) : QString();
  if (m_layer) m_layer->setCrosshair(t, m_crosshairText);
}

void PanelChart::renderHistogram(const PanelController& panel) {
  const HistogramResult* h = panel.histogram();
  const bool log = panel.spec().logY;
  if (!h || h->buckets.empty()) {
    for (auto* s : m_chart->series())
      if (auto* x = qobject_cast<QXYSeries*>(s)) x->clear();
    m_lines[0]->clear();
    m_lowers[0]->clear();
    setValueAxis(m_x, 0, 1, false, int(m_chart->plotArea().width()), true);
    setValueAxis(m_y, 0, 1, log, int(m_chart->plotArea().height()), false);
    return;
  }
  double maxCount = 1;
  for (const auto& b : h->buckets) maxCount = std::max(maxCount, double(b.count));
  const double base = log ? 0.5 : 0;
  QList<QPointF> upper, lower;
  for (const auto& b : h->buckets) {
    double c = std::max(base, double(b.count));
    upper << QPointF(b.lower, base) << QPointF(b.lower, c) << QPointF(b.upper, c)
          << QPointF(b.upper, base);
    lower << QPointF(b.lower, base) << QPointF(b.upper, base);
  }
  m_lines[0]->replace(upper);
  m_lowers[0]->replace(lower);
  m_drawnPoints = int(upper.size());
  double top =
      log ? std::pow(10.0, std::ceil(std::log10(maxCount * 1.05))) : niceCeil(maxCount * 1.05);
  const double ps[] = {h->p50, h->p90, h->p99};
  const char* names[] = {"p50", "p90", "p99"};
  for (int i = 0; i < 3; ++i) {
    m_lines[i + 1]->replace(QList<QPointF>{QPointF(ps[i], base), QPointF(ps[i], top)});
    m_lines[i + 1]->setName(
        QStringLiteral("%1 %2 %3")
            .arg(names[i], QString::number(ps[i], 'g', 4), unitTitle(panel.spec()))
            .trimmed());
  }
  m_chart->series().first()->setName(tr("count %1").arg(h->count));
  double lo = h->buckets.front().lower, hi = h->buckets.back().upper;
  if (qobject_cast<QLogValueAxis*>(m_x)) {
    setValueAxis(m_x, lo, hi, true, 0, true);
  } else {
    double pad = (hi - lo) * 0.02;
    setValueAxis(m_x, std::min(0.0, lo) < 0 ? lo - pad : std::max(0.0, lo - pad), hi + pad, false,
                 int(m_chart->plotArea().width()), true);
  }
  setValueAxis(m_y, log ? base : 0, top, log, int(m_chart->plotArea().height()), false);
}

void PanelChart::renderHeatmap(const PanelController& panel) {
  const HeatmapResult* h = panel.heatmap();
  const TimeWindow win = panel.shownWindow();
  setTimeAxis(double(win.from), double(win.to));
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  QList<QPointF> p[3];
  if (h) {
    const double half = double(h->step) / 2;
    for (const auto& c : h->columns) {
      if (c.time < win.from || c.time >= win.to) continue;
      for (const auto& b : c.buckets) {
        lo = std::min(lo, b.lower > 0 ? b.lower : b.upper / 1.02);
        hi = std::max(hi, b.upper);
      }
      if (c.count == 0) continue;
      p[0] << QPointF(double(c.time) + half, c.p50);
      p[1] << QPointF(double(c.time) + half, c.p90);
      p[2] << QPointF(double(c.time) + half, c.p99);
    }
  }
  for (int i = 0; i < 3; ++i) {
    m_lines[i]->replace(p[i]);
    m_drawnPoints += int(p[i].size());
  }
  if (!(hi > lo)) {
    lo = 1;
    hi = 10;
  }
  setValueAxis(m_y, lo, hi, qobject_cast<QLogValueAxis*>(m_y) != nullptr,
               int(m_chart->plotArea().height()), false);
  if (m_heatmap) {
    HeatmapResult copy = h ? *h : HeatmapResult{};
    m_heatmap->setData(std::move(copy), m_lines[0]);
  }
}

QString PanelChart::hoverText(const PanelController& panel, QPointF value) const {
  const PanelSpec& spec = panel.spec();
  const double x = value.x();
  if (m_kind == Kind::Histogram) {
    const HistogramResult* h = panel.histogram();
    if (!h) return {};
    for (const auto& b : h->buckets)
      if (x > b.lower && x <= b.upper)
        return tr("(%1, %2] %3\ncount %4")
            .arg(b.lower, 0, 'g', 6)
            .arg(b.upper, 0, 'g', 6)
            .arg(unitTitle(spec))
            .arg(b.count);
    return tr("p50 %1\np90 %2\np99 %3")
        .arg(valueText(h->p50, spec), valueText(h->p90, spec), valueText(h->p99, spec));
  }
  if (m_kind == Kind::Heatmap) {
    const HeatmapResult* h = panel.heatmap();
    if (!h) return {};
    for (const auto& c : h->columns) {
      if (x < double(c.time) || x >= double(c.time + std::max<int64_t>(1, h->step))) continue;
      QString text =
          QString::fromStdString(formatLocalTime(c.time)) + tr("\n%1 observations").arg(c.count);
      for (const auto& b : c.buckets)
        if (value.y() > b.lower && value.y() <= b.upper)
          text += tr("\n(%1, %2]: %3").arg(b.lower, 0, 'g', 5).arg(b.upper, 0, 'g', 5).arg(b.count);
      text += tr("\np50 %1  p90 %2  p99 %3")
                  .arg(valueText(c.p50, spec), valueText(c.p90, spec), valueText(c.p99, spec));
      return text;
    }
    return {};
  }
  const QueryResult* r = panel.series();
  if (!r || r->series.empty()) return {};
  const int64_t step = std::max<int64_t>(1, r->step);
  const int64_t t = bucket_start(int64_t(std::floor(x)), step) + (r->from % step + step) % step;
  QString text = QString::fromStdString(formatLocalTime(t));
  if (step > 1) text += tr(" (+%1)").arg(QString::fromStdString(format_duration(step)));
  int lines = 0;
  for (const auto& s : r->series) {
    QString label = QString::fromStdString(s.label(spec.metric));
    if (panel.hiddenSeries().contains(label)) continue;
    auto it = std::lower_bound(s.points.begin(), s.points.end(), t,
                               [](const Point& p, int64_t v) { return p.t < v; });
    if (it == s.points.end() || it->t != t) continue;
    if (++lines > 12) {
      text += "\n…";
      break;
    }
    text += '\n' + label + ": " + valueText(it->v, spec);
    if (s.partialFrom && t >= *s.partialFrom) text += tr(" (partial)");
  }
  return text;
}
