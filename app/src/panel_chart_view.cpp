#include "panel_chart_view.h"

#include <QMenu>
#include <QMouseEvent>
#include <QRubberBand>
#include <QTimer>
#include <QToolTip>
#include <QValueAxis>
#include <cmath>

#include "core/time_range.h"
#include "panel_chart.h"
#include "panel_controller.h"

PanelChartView::PanelChartView(PanelController* panel, QWidget* parent)
    : QChartView(new QChart, parent), m_panel(panel) {
  m_chart = new PanelChart(chart(), this);
  setRenderHint(QPainter::Antialiasing);
  setRubberBand(QChartView::NoRubberBand);  // our own: zoom must re-query, not scale
  setMouseTracking(true);
  setMinimumSize(160, 110);
  connect(m_chart, &PanelChart::legendClicked, this, [this](const QString& label) {
    m_panel->setSeriesHidden(label, !m_panel->hiddenSeries().contains(label));
  });
  connect(chart(), &QChart::plotAreaChanged, this, [this](const QRectF& r) {
    emit plotWidthChanged(int(r.width()));
    // Ticks and decimation were computed for the plot area of the last render; when the layout
    // settles on another size (new label widths, a legend that wraps), draw again for it, once:
    // the screen must match what a fresh window would show.
    if (!m_reflowPending && m_chart->renderedPlotSize() != r.size().toSize() && m_reflows < 2) {
      m_reflowPending = true;
      QTimer::singleShot(0, this, [this] {
        m_reflowPending = false;
        ++m_reflows;
        m_chart->render(*m_panel);
      });
    }
  });
}

void PanelChartView::redraw() {
  m_reflows = 0;
  const bool wasDark = m_chart->isDark();
  m_chart->render(*m_panel);
  if (m_chart->isDark() != wasDark || backgroundBrush().style() == Qt::NoBrush)
    setBackgroundBrush(m_chart->isDark() ? QColor(0x2e, 0x30, 0x3c) : QColor(Qt::white));
}

QPointF PanelChartView::toValue(QPointF pos) const {
  if (chart()->series().isEmpty()) return {};
  return chart()->mapToValue(mapToScene(pos.toPoint()), chart()->series().first());
}

void PanelChartView::mousePressEvent(QMouseEvent* e) {
  m_pressPos = e->pos();
  if (!chart()->plotArea().contains(mapToScene(e->pos()))) {
    QChartView::mousePressEvent(e);  // legend clicks
    return;
  }
  if (e->button() == Qt::RightButton || e->button() == Qt::MiddleButton ||
      (e->button() == Qt::LeftButton && (e->modifiers() & Qt::ShiftModifier))) {
    m_drag = Drag::Pan;
    auto w = m_panel->window();
    m_panFrom = double(w.from);
    m_panTo = double(w.to);
    setCursor(Qt::ClosedHandCursor);
  } else if (e->button() == Qt::LeftButton) {
    m_drag = Drag::Zoom;
    if (!m_band) m_band = new QRubberBand(QRubberBand::Rectangle, this);
    m_band->setGeometry(QRect(m_pressPos, QSize()));
    m_band->show();
  }
  e->accept();
}

void PanelChartView::mouseMoveEvent(QMouseEvent* e) {
  if (m_drag == Drag::Zoom && m_band) {
    QRectF plot = chart()->plotArea();
    QRect r = QRect(m_pressPos, e->pos()).normalized();
    if (m_chart->isTimeChart()) {  // time zoom spans the plot height
      r.setTop(int(plot.top()));
      r.setBottom(int(plot.bottom()));
    }
    m_band->setGeometry(r);
    return;
  }
  if (m_drag == Drag::Pan) {
    QPointF a = toValue(m_pressPos), b = toValue(e->pos());
    if (m_chart->isTimeChart()) {
      double dx = a.x() - b.x();
      chart()->axes(Qt::Horizontal).first()->setRange(m_panFrom + dx, m_panTo + dx);
    } else {
      chart()->scroll(-(e->pos().x() - m_pressPos.x()), 0);
      m_pressPos = e->pos();
    }
    return;
  }
  if (chart()->plotArea().contains(mapToScene(e->pos()))) {
    const QPointF value = toValue(e->pos());
    QString text = m_chart->hoverText(*m_panel, value);
    // An annotation within 6 px of the mouse adds its title and text.
    for (const auto& mark : marksNear(e->pos()))
      text = QStringLiteral("⚑ ") + mark.text + (text.isEmpty() ? "" : "\n\n") + text;
    if (!text.isEmpty()) QToolTip::showText(e->globalPosition().toPoint(), text, this);
    if (m_chart->isTimeChart()) emit hovered(value.x());
  } else {
    QToolTip::hideText();
    emit hovered(std::nan(""));
  }
  QChartView::mouseMoveEvent(e);
}

void PanelChartView::mouseReleaseEvent(QMouseEvent* e) {
  Drag drag = m_drag;
  m_drag = Drag::None;
  unsetCursor();
  if (drag == Drag::Zoom && m_band) {
    m_band->hide();
    // A band dragged past the plot's edges stops at them (past the right edge is the future).
    const QRect plot = mapFromScene(chart()->plotArea()).boundingRect();
    QRect r = m_band->geometry();
    r.setLeft(std::max(r.left(), plot.left()));
    r.setRight(std::min(r.right(), plot.right()));
    if (r.width() < 6) return;
    QPointF a = toValue(r.topLeft()), b = toValue(r.bottomRight());
    if (m_chart->isTimeChart())
      emitWindow(std::min(a.x(), b.x()), std::max(a.x(), b.x()));
    else
      chart()->zoomIn(QRectF(mapToScene(r.topLeft()), mapToScene(r.bottomRight())));
    return;
  }
  if (drag == Drag::Pan && m_chart->isTimeChart()) {
    QPointF a = toValue(m_pressPos), b = toValue(e->pos());
    double dx = a.x() - b.x();
    if (std::abs(e->pos().x() - m_pressPos.x()) > 2)
      emitWindow(m_panFrom + dx, m_panTo + dx, true);
    else if (e->button() == Qt::RightButton)  // a click, not a drag
      showContextMenu(e->pos(), e->globalPosition().toPoint());
    return;
  }
  QChartView::mouseReleaseEvent(e);
}

std::vector<PanelChart::Mark> PanelChartView::marksNear(QPoint pos) const {
  std::vector<PanelChart::Mark> near;
  if (chart()->series().isEmpty()) return near;
  const double x = mapToScene(pos).x();
  for (const auto& mark : m_chart->annotationMarks()) {
    const QPointF at = chart()->mapToPosition(QPointF(mark.at, 0), chart()->series().first());
    const QPointF end = chart()->mapToPosition(QPointF(mark.end, 0), chart()->series().first());
    if (x >= at.x() - 6 && x <= std::max(at.x(), end.x()) + 6) near.push_back(mark);
  }
  return near;
}

void PanelChartView::showContextMenu(QPoint pos, QPoint globalPos) {
  const double t = toValue(pos).x();
  QMenu menu(this);
  menu.setObjectName("chartMenu");
  menu.addAction(
      tr("Add annotation at %1…")
          .arg(QString::fromStdString(tally::dash::formatLocalTime(int64_t(std::floor(t))))),
      this, [this, t] { emit annotateRequested(t); });
  for (const auto& mark : marksNear(pos))
    if (mark.id > 0)
      menu.addAction(
          tr("Delete annotation “%1”…").arg(mark.title), this,
          [this, id = mark.id, title = mark.title] { emit deleteAnnotationRequested(id, title); });
  menu.exec(globalPos);
}

void PanelChartView::mouseDoubleClickEvent(QMouseEvent*) {
  chart()->zoomReset();
  emit resetZoomRequested();
}

void PanelChartView::wheelEvent(QWheelEvent* e) {
  if (!m_chart->isTimeChart() || e->angleDelta().y() == 0) return;
  auto w = m_panel->window();
  double at = toValue(e->position()).x();
  double factor = e->angleDelta().y() > 0 ? 0.8 : 1.25;
  emitWindow(at - (at - double(w.from)) * factor, at + (double(w.to) - at) * factor);
  e->accept();
}

void PanelChartView::emitWindow(double from, double to, bool keepLength) {
  // Nothing is known about the future: a window that would end after now ends at now (a pan keeps
  // its length, a zoom loses the part after now).
  const double now = double(m_panel->currentTime());
  if (to > now) {
    if (keepLength) from -= to - now;
    to = now;
  }
  if (to - from < 2) from = to - 2;
  emit zoomRequested(qint64(std::floor(from)), qint64(std::ceil(to)));
}

void PanelChartView::resizeEvent(QResizeEvent* e) {
  QChartView::resizeEvent(e);
  redraw();  // axes tick density follows the size
}

void PanelChartView::setCrosshair(std::optional<double> t) {
  if (!m_chart->isTimeChart()) t.reset();
  m_chart->setCrosshair(*m_panel, t);
}

void PanelChartView::leaveEvent(QEvent* e) {
  QToolTip::hideText();
  emit hovered(std::nan(""));
  QChartView::leaveEvent(e);
}
