// PanelWidget: one panel of the dashboard grid: a header (title, which doubles as the handle to
// move the panel; edit, reset zoom, export and menu buttons), the chart, a line for errors and
// "no data", and a corner grip to resize. Drop a metric from the browser onto it to plot that
// metric. Redraws are coalesced: data changes start a 40 ms timer, the chart redraws once; a
// hidden panel (another tab, a collapsed row) redraws when it is shown again.
#pragma once

#include <QFrame>
#include <QTimer>
#include <optional>

#include "core/dashboard.h"

class CollectorClient;
class LiveSubscriber;
class PanelChartView;
class PanelController;
class QLabel;
class QToolButton;
class SeriesTable;
class StatView;

class PanelWidget : public QFrame {
  Q_OBJECT
 public:
  PanelWidget(CollectorClient* client, LiveSubscriber* live, QWidget* parent = nullptr);

  PanelController* controller() const { return m_controller; }
  PanelChartView* chartView() const { return m_view; }
  StatView* statView() const { return m_stat; }
  SeriesTable* seriesTable() const { return m_table; }   // a table panel's
  SeriesTable* legendTable() const { return m_legend; }  // the legend table under a time chart
  // The panel's alerts (AlertManager): the header shows how many of its series fire.
  void setAlertBadge(int firing, int pending, const QString& details);
  QLabel* alertBadge() const { return m_alertBadge; }
  // The dashboard's crosshair at time t (seconds), or none.
  void setCrosshair(std::optional<double> t);
  // The panel as saved: its filters, PromQL and title may name the dashboard's variables
  // ($region); the controller queries applyVariables() of it (core/variables.h).
  tally::dash::PanelSpec spec() const { return m_spec; }
  void setSpec(const tally::dash::PanelSpec& spec);
  // Where the panel sits (moves and resizes: no re-query).
  void setGrid(const tally::dash::GridRect& grid);
  // The dashboard's variables with their current values; the panel re-queries when what it
  // queries changes.
  void setVariables(const std::vector<tally::dash::Variable>& variables);
  QWidget* header() const { return m_header; }
  QWidget* grip() const { return m_grip; }
  QLabel* messageLabel() const { return m_message; }
  int redrawCount() const { return m_redraws; }

 public slots:
  void exportCsvDialog();
  void showDataTable();
  void exportImageDialog();
  // Redraws now instead of at the next timer tick (exports, tests).
  void flushRedraw();

 signals:
  void editRequested(PanelWidget* panel);
  void removeRequested(PanelWidget* panel);
  void duplicateRequested(PanelWidget* panel);
  void moveRequested(PanelWidget* panel, int dx, int dy);               // in grid cells
  void resizeRequested(PanelWidget* panel, int dw, int dh);             // in grid cells
  void headerDragged(PanelWidget* panel, QPoint delta, bool finished);  // pixels since press
  void gripDragged(PanelWidget* panel, QPoint delta, bool finished);
  void metricDropped(PanelWidget* panel, const QString& metric,
                     const QString& source);  // "" = collector
  // Linked time: the canvas applies a zoom or its reset to every panel.
  void zoomRequested(PanelWidget* panel, qint64 from, qint64 to);
  void resetZoomRequested(PanelWidget* panel);
  // The chart's right-click menu: an annotation at time t, or deleting one.
  void annotateRequested(double t);
  void deleteAnnotationRequested(qint64 id, const QString& title);
  void hovered(PanelWidget* panel, double t);  // NaN: the mouse left the plot
  void collapseToggled(PanelWidget* row);      // a row's ▸ / ▾

 protected:
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;
  bool eventFilter(QObject* watched, QEvent* event) override;
  void showEvent(QShowEvent* e) override;

 private:
  void updateState();
  void scheduleRedraw();
  void updateViews();  // which of chart, stat view and tables the chart type shows

  PanelController* m_controller;
  tally::dash::PanelSpec m_spec;
  std::vector<tally::dash::Variable> m_variables;
  PanelChartView* m_view;
  StatView* m_stat;
  SeriesTable* m_table;
  SeriesTable* m_legend;
  QLabel* m_alertBadge;
  QToolButton* m_collapse;
  QList<QWidget*> m_panelOnly;  // hidden on a row: chart buttons, message, grip
  QWidget* m_header;
  QLabel* m_title;
  QLabel* m_message;
  QToolButton* m_resetZoom;
  QWidget* m_grip;
  QTimer m_redrawTimer;
  QPoint m_pressGlobal;
  bool m_dragging = false;
  int m_redraws = 0;
  bool m_redrawWhenShown = false;  // data changed while hidden (another tab, a collapsed row)
};
