// PanelChart: draws a PanelController's snapshot into a QChart: line, stacked area, bars per
// bucket (stacked by group), histogram of a distribution, heatmap of a distribution over time with
// p50/p90/p99 lines. Time axes are in local time with ticks on round times; y labels are short
// (1.5k, 2M) with the unit in the axis title.
//
// Series are decimated to the plot's pixel width (LTTB, extremes kept) before they reach Qt
// Charts and replaced in one QXYSeries::replace() each; the chart is rebuilt only when its shape
// (type, groups, hidden set, log scale) changes. The same class renders exports at any size.
// Thread-safety: GUI thread.
#pragma once

#include <QChart>
#include <QColor>
#include <QHash>
#include <QObject>
#include <QPointer>
#include <QString>

#include "core/time_range.h"

class PanelController;
class HeatmapItem;
class QAbstractAxis;
class QXYSeries;

class PanelChart : public QObject {
  Q_OBJECT
 public:
  // Draws into `chart` (not owned).
  explicit PanelChart(QChart* chart, QObject* parent = nullptr);
  ~PanelChart() override;

  QChart* chart() const { return m_chart; }
  // Use Qt Charts' OpenGL path for line series; only safe where a real display exists (xcb).
  void setUseOpenGL(bool on) { m_useOpenGL = on; }
  static bool openGLAvailable();
  // Show the panel title inside the chart (exports), not just in the panel header.
  void setShowTitle(bool on) { m_showTitle = on; }

  void render(const PanelController& panel);

  bool isTimeChart() const { return m_kind != Kind::Histogram; }
  // Text for a hover at a chart value (x, y): time, then each visible group's exact value.
  QString hoverText(const PanelController& panel, QPointF value) const;
  int drawnPoints() const { return m_drawnPoints; }  // after decimation, for tests
  QStringList seriesNames() const;                   // legend order

  static QColor seriesColor(int index);

 signals:
  void legendClicked(const QString& label);

 private:
  enum class Kind { None, Line, Stacked, Bars, Histogram, Heatmap };
  void clear();
  void rebuild(const PanelController& panel, Kind kind, const QStringList& labels);
  void renderSeries(const PanelController& panel);
  void renderHistogram(const PanelController& panel);
  void renderHeatmap(const PanelController& panel);
  void setTimeAxis(double from, double to);
  void setValueAxis(QAbstractAxis* axis, double min, double max, bool log, int pixels,
                    bool horizontal);
  void hookLegend();

  QChart* m_chart;
  Kind m_kind = Kind::None;
  QString m_shapeKey;
  QStringList m_labels;
  QList<QXYSeries*> m_lines;   // per label: line series, or the upper series of an area
  QList<QXYSeries*> m_lowers;  // per label (stacked/bars): lower series of the area
  QAbstractAxis* m_x = nullptr;
  QAbstractAxis* m_y = nullptr;
  HeatmapItem* m_heatmap = nullptr;
  bool m_useOpenGL = false;
  bool m_showTitle = false;
  int m_drawnPoints = 0;
};
