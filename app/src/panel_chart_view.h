// PanelChartView: the chart of one panel and its mouse: drag a rubber band to zoom (time charts
// re-query at the finer step; the histogram zooms locally), right- or shift-drag to pan, wheel to
// zoom around the cursor, double-click to reset, hover for the exact time and values, click a
// legend entry to hide its group. A right click (without dragging) on a time chart offers to add
// an annotation there, or to delete the one under the mouse.
#pragma once

#include <QChartView>
#include <QPointer>
#include <optional>
#include <vector>

#include "panel_chart.h"

class PanelController;
class QRubberBand;

class PanelChartView : public QChartView {
  Q_OBJECT
 public:
  PanelChartView(PanelController* panel, QWidget* parent = nullptr);
  PanelChart* panelChart() const { return m_chart; }
  // The dashboard's crosshair (another panel's hover): a line at time t with the values there.
  void setCrosshair(std::optional<double> t);

 public slots:
  void redraw();

 signals:
  void zoomRequested(qint64 from, qint64 to);
  void resetZoomRequested();
  void plotWidthChanged(int pixels);
  void hovered(double t);            // the time under the mouse on a time chart; NaN once it leaves
  void annotateRequested(double t);  // "Add annotation here…" at time t
  void deleteAnnotationRequested(qint64 id, const QString& title);

 protected:
  void mousePressEvent(QMouseEvent* e) override;
  void mouseMoveEvent(QMouseEvent* e) override;
  void mouseReleaseEvent(QMouseEvent* e) override;
  void mouseDoubleClickEvent(QMouseEvent* e) override;
  void wheelEvent(QWheelEvent* e) override;
  void resizeEvent(QResizeEvent* e) override;
  void leaveEvent(QEvent* e) override;

 private:
  QPointF toValue(QPointF pos) const;
  // The annotation marks within 6 px of `pos` (widget coordinates): a 1 px line is hard to hit.
  std::vector<PanelChart::Mark> marksNear(QPoint pos) const;
  void showContextMenu(QPoint pos, QPoint globalPos);
  // Asks for [from, to), never past now: a pan (keepLength) slides back, a zoom is cut at now.
  void emitWindow(double from, double to, bool keepLength = false);

  PanelController* m_panel;
  PanelChart* m_chart;
  QRubberBand* m_band = nullptr;
  QPoint m_pressPos;
  enum class Drag { None, Zoom, Pan } m_drag = Drag::None;
  double m_panFrom = 0, m_panTo = 0;
  bool m_reflowPending = false;
  int m_reflows = 0;  // renders for a settled layout since the last data redraw
};
