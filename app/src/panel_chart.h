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
#include <vector>

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
  // Use Qt Charts' OpenGL path for line series (takes effect at the next render()).
  void setUseOpenGL(bool on);
  bool usesOpenGL() const { return m_useOpenGL; }
  // Whether charts on screen use OpenGL: only on a real display (xcb) and only when asked for,
  // by the setting "render/opengl" (View › Use OpenGL) or TALLY_OPENGL=1 (TALLY_OPENGL=0 or
  // TALLY_NO_OPENGL=1 force it off). Off by default: on software GL (Mesa llvmpipe, as on most VMs
  // and remote desktops) Qt Charts' OpenGL series leave the old scale's tick labels on screen
  // after a range change, a zoom or a growing y axis, turn every pop-up list black, and cost
  // three times the CPU of the raster path, which draws decimated series (2 points per pixel
  // column) fast enough on its own.
  static bool openGLEnabled();
  static void setOpenGLSetting(bool on);  // persisted in QSettings
  // Show the panel title inside the chart (exports), not just in the panel header.
  void setShowTitle(bool on) { m_showTitle = on; }

  void render(const PanelController& panel);

  bool isTimeChart() const { return m_kind != Kind::Histogram; }
  // Text for a hover at a chart value (x, y): time, then each visible group's exact value.
  QString hoverText(const PanelController& panel, QPointF value) const;
  int drawnPoints() const { return m_drawnPoints; }          // after decimation, for tests
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
  // Series `index` of line `label`: 0 is the line itself (the one in the legend), 1.. are the
  // runs after gaps; `partial` is the dashed open-bucket tail. Created on first use, same colour,
  // no legend entry.
  QXYSeries* segment(int label, int index, bool partial);

  QChart* m_chart;
  Kind m_kind = Kind::None;
  QString m_shapeKey;
  QStringList m_labels;
  QList<QXYSeries*> m_lines;   // per label: line series, or the upper series of an area
  QList<QXYSeries*> m_lowers;  // per label (stacked/bars): lower series of the area
  std::vector<std::vector<QXYSeries*>> m_segments;  // per label (line): runs after the first gap
  std::vector<QXYSeries*> m_partials;               // per label (line): open-bucket tail or null
  QAbstractAxis* m_x = nullptr;
  QAbstractAxis* m_y = nullptr;
  HeatmapItem* m_heatmap = nullptr;
  bool m_useOpenGL = false;
  bool m_showTitle = false;
  int m_drawnPoints = 0;
  QSize m_renderedPlot;
};
