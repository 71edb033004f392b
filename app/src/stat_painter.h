// StatPainter: draws the panels that reduce each series to numbers (docs/DASHBOARD.md, "Stat,
// gauge and table panels"), once, for the screen (StatView) and for exports (Exporter):
//   stat   a tile per series: its label and the reduced value, coloured by the thresholds;
//   gauge  an arc per series from min to max, filled to the value, thresholds marked on the rim;
//   table  (exports only; on screen SeriesTable is interactive) a row per series with last, min,
//          max, avg and total.
// Tiles that do not fit are left out and counted ("+12 more").
// Thread-safety: GUI thread (QPainter).
#pragma once

#include <QColor>
#include <QRectF>
#include <QString>
#include <vector>

#include "core/dashboard.h"
#include "core/series_stats.h"

class PanelController;
class QPainter;

namespace StatPainter {

// The colour of a value: the threshold it reached, else the panel's base colour (green with
// thresholds, blue without).
QColor valueColor(const tally::dash::PanelSpec& spec, std::optional<double> value);
// Each shown series reduced (final buckets of the shown window, in legend order).
std::vector<tally::dash::SeriesStats> stats(const PanelController& panel);

struct Layout {
  int shown = 0;    // tiles drawn
  int omitted = 0;  // series left out for room
  std::vector<QRectF> tiles;
};
Layout layoutTiles(int count, const QRectF& rect, bool gauge);

// `dark`: drawn on the dark theme's background (the screen); exports are light.
void paint(const PanelController& panel, QPainter* painter, const QRectF& rect, bool dark = false);
// A table of rows (series, last, min, max, avg, total) into rect; what does not fit is counted.
void paintTable(QPainter* painter, const QRectF& rect,
                const std::vector<tally::dash::SeriesStats>& rows,
                const tally::dash::PanelSpec& spec, bool dark = false);

}  // namespace StatPainter
