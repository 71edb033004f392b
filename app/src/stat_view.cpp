#include "stat_view.h"

#include <QHelpEvent>
#include <QPainter>
#include <QToolTip>

#include "panel_controller.h"
#include "stat_painter.h"
#include "theme.h"

using namespace tally;
using namespace tally::dash;

StatView::StatView(PanelController* panel, QWidget* parent) : QWidget(parent), m_panel(panel) {
  setObjectName("statView");
  setAttribute(Qt::WA_OpaquePaintEvent);
  setMinimumHeight(40);
}

void StatView::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), palette().base());
  StatPainter::paint(*m_panel, &p, QRectF(rect()), Theme::isDark());
}

bool StatView::event(QEvent* e) {
  if (e->type() != QEvent::ToolTip) return QWidget::event(e);
  auto* he = static_cast<QHelpEvent*>(e);
  const auto all = StatPainter::stats(*m_panel);
  const bool gauge = m_panel->spec().chart == ChartType::Gauge;
  const auto layout =
      StatPainter::layoutTiles(int(all.size()), QRectF(rect()).adjusted(2, 2, -2, -16), gauge);
  for (int i = 0; i < layout.shown; ++i) {
    if (!layout.tiles[size_t(i)].contains(he->pos())) continue;
    const auto& s = all[size_t(i)];
    QString tip =
        QStringLiteral("<b>%1</b><table>").arg(QString::fromStdString(s.label).toHtmlEscaped());
    for (Reduce r : kAllReduces)
      tip += QStringLiteral("<tr><td>%1</td><td align=right>%2</td></tr>")
                 .arg(QString::fromLatin1(reduce_name(r)),
                      QString::fromStdString(formatStat(s.get(r), m_panel->spec().unit)));
    QToolTip::showText(he->globalPos(), tip + "</table>", this);
    return true;
  }
  QToolTip::hideText();
  e->ignore();
  return true;
}
