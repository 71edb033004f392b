// Exports of what panels show: CSV (PanelController::csv(), exactly the shown series), and images
// of one panel or the whole dashboard at a chosen size, as PNG (or JPEG), SVG or PDF by the file's
// suffix. Images are rendered off screen into a fresh chart, so they work without a display
// (QT_QPA_PLATFORM=offscreen) and never use OpenGL.
#pragma once

#include <QImage>
#include <QList>
#include <QSize>
#include <QString>

class PanelController;
class QPainter;

namespace Exporter {

QSize parseSize(const QString& text);  // "1600x900"; invalid QSize if malformed

bool writeCsv(const PanelController& panel, const QString& path, QString* error);

// Paints the panel (title, chart, legend, a message when there is no data) into rect.
void paintPanel(const PanelController& panel, QPainter* painter, const QRectF& rect);
QImage renderPanel(const PanelController& panel, QSize size);
bool writePanelImage(const PanelController& panel, const QString& path, QSize size, QString* error);

// The dashboard's grid scaled to size, with a title line.
void paintDashboard(const QString& title, const QString& subtitle,
                    const QList<const PanelController*>& panels, QPainter* painter, QSize size);
QImage renderDashboard(const QString& title, const QString& subtitle,
                       const QList<const PanelController*>& panels, QSize size);
bool writeDashboardImage(const QString& title, const QString& subtitle,
                         const QList<const PanelController*>& panels, const QString& path,
                         QSize size, QString* error);

}  // namespace Exporter
