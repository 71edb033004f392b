// PanelChart: draws a PanelController's snapshot into a QChart: line, stacked area, bars per
// bucket (stacked by group), histogram of a distribution, heatmap of a distribution over time with
// p50/p90/p99 lines. Time axes are in local time with ticks on round times; y labels are short
// (1.5k, 2M) with the unit in the axis title.
//
// Series are decimated to the plot's pixel width (LTTB, extremes kept). Line, stacked-area and bar
// panels draw in one graphics item of their own (a polygon per band, a polyline per run between
// gaps, mapped at paint time, so a pan only repaints); histograms and heatmaps use Qt Charts'
// series. The chart is rebuilt only when its shape (type, groups, hidden set, log scale)
// changes. The same class renders exports at any size, always on the raster path: Qt Charts'
// OpenGL series left stale labels on screen on software GL and drew slower than this.
// Thread-safety: GUI thread.
#pragma once

#include <QChart>
#include <QColor>
#include <QHash>
#include <QObject>
#include <QPointer>
#include <QPolygonF>
#include <QString>
#include <optional>
#include <vector>

#include "core/time_range.h"

class PanelController;
class HeatmapItem;
class PlotLayer;
class QAbstractAxis;
class QXYSeries;

class PanelChart : public QObject {
  Q_OBJECT
 public:
  // Draws into `chart` (not owned).
  explicit PanelChart(QChart* chart, QObject* parent = nullptr);
  ~PanelChart() override;

  QChart* chart() const { return m_chart; }
  // Always light (exports), whatever the app's theme (theme.h).
  void setForceLight(bool on) { m_forceLight = on; }
  bool isDark() const { return m_dark; }
  // Show the panel title inside the chart (exports), not just in the panel header.
  void setShowTitle(bool on) { m_showTitle = on; }

  void render(const PanelController& panel);

  bool isTimeChart() const { return m_kind != Kind::Histogram; }
  // Text for a hover at a chart value (x, y): time, then each visible group's exact value.
  QString hoverText(const PanelController& panel, QPointF value) const;
  int drawnPoints() const { return m_drawnPoints; }  // after decimation, for tests
  // A line panel's drawn lines: per visible group, its runs between gaps and the open bucket's
  // dashed tail, in value coordinates (seconds, value).
  struct LineRun {
    int label = 0;         // index into the legend's groups
    bool partial = false;  // the bucket still filling, drawn dashed from the last final point
    QPolygonF points;
  };
  std::vector<LineRun> lineRuns(const QString& label) const;
  // A threshold (at a value) or an annotation (at a time, to `end` for a span), drawn over the
  // plot of line, stacked and bar panels.
  struct Mark {
    double at = 0;
    double end = 0;
    QColor color;
    QString text;    // an annotation's title and text, for the hover
    int64_t id = 0;  // an annotation's id on the collector
    QString title;   // an annotation's title
  };
  std::vector<Mark> thresholdMarks() const { return m_thresholdMarks; }
  std::vector<Mark> annotationMarks() const { return m_annotationMarks; }
  // The dashboard's shared crosshair: a vertical line at time t (seconds) on every time chart,
  // with the time and each shown series' value there (hoverText) beside it.
  void setCrosshair(const PanelController& panel, std::optional<double> t);
  std::optional<double> crosshair() const { return m_crosshair; }
  QString crosshairText() const { return m_crosshairText; }
  QSize renderedPlotSize() const { return m_renderedPlot; }  // the plot area the last render used
  QStringList seriesNames() const;                           // legend order

  static QColor seriesColor(int index);

  // How a line draws the bucket still filling (at or after the API's partial_from): dashed from
  // the last final point (the default), or held back until it is final. Setting
  // "render/partial" ("dashed" or "hold").
  enum class PartialStyle { Dashed, HeldBack };
  static PartialStyle partialStyle();
  static void setPartialStyle(PartialStyle style);  // persisted; panels use it at the next redraw
  // Reads the settings again at the next use (they are cached: every redraw asks).
  static void reloadSettings();

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
  void styleChart();
  void applyTheme();  // the chart theme for Theme::isDark(), at each render
  void setMarks(const PanelController& panel);

  QChart* m_chart;
  Kind m_kind = Kind::None;
  QString m_shapeKey;
  QStringList m_labels;
  // Per label: the line series, or the upper series of an area (without points where PlotLayer
  // draws them: line, stacked and bar panels).
  QList<QXYSeries*> m_lines;
  QList<QXYSeries*> m_lowers;    // per label (stacked/bars): lower series of the area
  PlotLayer* m_layer = nullptr;  // line, stacked and bar panels
  QAbstractAxis* m_x = nullptr;
  QAbstractAxis* m_y = nullptr;
  HeatmapItem* m_heatmap = nullptr;
  bool m_showTitle = false;
  int m_drawnPoints = 0;
  QSize m_renderedPlot;
  std::vector<Mark> m_thresholdMarks;
  std::vector<Mark> m_annotationMarks;
  std::optional<double> m_crosshair;
  QString m_crosshairText;
  bool m_forceLight = false;
  bool m_dark = false;
};
