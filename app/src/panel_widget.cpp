#include "panel_widget.h"

#include "core/variables.h"

#include <QDialog>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QMenu>
#include <QMessageBox>
#include <QMimeData>
#include <QMouseEvent>
#include <QRegularExpression>
#include <QTableView>
#include <QToolButton>
#include <QVBoxLayout>

#include "exporter.h"
#include "metric_tree_model.h"
#include "panel_chart.h"
#include "panel_chart_view.h"
#include "panel_controller.h"
#include "panel_table_model.h"
#include "series_table.h"
#include "stat_view.h"

using namespace tally::dash;

namespace {
QToolButton* headerButton(const QString& text, const QString& tip, QWidget* parent) {
  auto* b = new QToolButton(parent);
  b->setText(text);
  b->setToolTip(tip);
  b->setAutoRaise(true);
  b->setFocusPolicy(Qt::NoFocus);
  return b;
}
}  // namespace

PanelWidget::PanelWidget(CollectorClient* client, LiveSubscriber* live, QWidget* parent)
    : QFrame(parent), m_controller(new PanelController(client, live, this)) {
  setFrameShape(QFrame::StyledPanel);
  setAcceptDrops(true);
  setAutoFillBackground(true);
  setObjectName("panel");

  m_header = new QWidget(this);
  m_header->setCursor(Qt::OpenHandCursor);
  m_header->setToolTip(tr("Drag to move the panel"));
  m_title = new QLabel(m_header);
  QFont tf = m_title->font();
  tf.setBold(true);
  m_title->setFont(tf);
  m_title->setTextInteractionFlags(Qt::NoTextInteraction);
  auto* edit = headerButton(QStringLiteral("✎"), tr("Edit panel"), m_header);
  edit->setObjectName("editButton");
  m_resetZoom =
      headerButton(QStringLiteral("⟲"), tr("Reset zoom (or double-click the chart)"), m_header);
  m_resetZoom->setObjectName("resetZoomButton");
  m_resetZoom->hide();
  auto* exportButton = headerButton(QStringLiteral("⤓"), tr("Export"), m_header);
  exportButton->setPopupMode(QToolButton::InstantPopup);
  auto* exportMenu = new QMenu(exportButton);
  exportMenu->addAction(tr("CSV…"), this, &PanelWidget::exportCsvDialog);
  exportMenu->addAction(tr("Image (PNG, SVG, PDF)…"), this, &PanelWidget::exportImageDialog);
  exportButton->setMenu(exportMenu);
  auto* menuButton = headerButton(QStringLiteral("⋮"), tr("Panel"), m_header);
  menuButton->setPopupMode(QToolButton::InstantPopup);
  auto* menu = new QMenu(menuButton);
  menu->addAction(tr("Edit…"), this, [this] { emit editRequested(this); });
  menu->addAction(tr("Duplicate"), this, [this] { emit duplicateRequested(this); });
  menu->addAction(tr("Refresh"), m_controller, &PanelController::refresh);
  menu->addAction(tr("Show data…"), this, &PanelWidget::showDataTable);
  menu->addSeparator();
  menu->addAction(tr("Move left"), this, [this] { emit moveRequested(this, -1, 0); });
  menu->addAction(tr("Move right"), this, [this] { emit moveRequested(this, 1, 0); });
  menu->addAction(tr("Move up"), this, [this] { emit moveRequested(this, 0, -1); });
  menu->addAction(tr("Move down"), this, [this] { emit moveRequested(this, 0, 1); });
  menu->addAction(tr("Wider"), this, [this] { emit resizeRequested(this, 1, 0); });
  menu->addAction(tr("Narrower"), this, [this] { emit resizeRequested(this, -1, 0); });
  menu->addAction(tr("Taller"), this, [this] { emit resizeRequested(this, 0, 1); });
  menu->addAction(tr("Shorter"), this, [this] { emit resizeRequested(this, 0, -1); });
  menu->addSeparator();
  menu->addAction(tr("Remove"), this, [this] { emit removeRequested(this); });
  menuButton->setMenu(menu);

  auto* hl = new QHBoxLayout(m_header);
  hl->setContentsMargins(6, 2, 2, 0);
  hl->setSpacing(0);
  m_alertBadge = new QLabel(m_header);
  m_alertBadge->setObjectName("alertBadge");
  m_alertBadge->hide();
  m_collapse = headerButton(QStringLiteral("▾"), tr("Collapse the row"), m_header);
  m_collapse->setObjectName("collapseButton");
  m_collapse->hide();
  connect(m_collapse, &QToolButton::clicked, this, [this] { emit collapseToggled(this); });
  hl->addWidget(m_collapse);
  hl->addWidget(m_title, 1);
  hl->addWidget(m_alertBadge);
  hl->addWidget(m_resetZoom);
  hl->addWidget(edit);
  hl->addWidget(exportButton);
  hl->addWidget(menuButton);
  m_panelOnly = {edit, exportButton};

  m_view = new PanelChartView(m_controller, this);
  m_stat = new StatView(m_controller, this);
  m_stat->hide();
  m_table = new SeriesTable(m_controller, false, this);
  m_table->hide();
  m_legend = new SeriesTable(m_controller, true, this);
  m_legend->hide();
  m_message = new QLabel(this);
  m_message->setObjectName("panelMessage");
  m_message->setWordWrap(true);
  m_message->setAlignment(Qt::AlignCenter);
  m_message->hide();

  m_grip = new QWidget(this);
  m_grip->setFixedSize(14, 14);
  m_grip->setCursor(Qt::SizeFDiagCursor);
  m_grip->setToolTip(tr("Drag to resize"));
  m_grip->setStyleSheet(
      "background: qlineargradient(x1:0, y1:0, x2:1, y2:1, stop:0.55 transparent, "
      "stop:0.56 #9aa0a6, stop:0.66 transparent, stop:0.75 #9aa0a6, stop:0.85 transparent);");

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  layout->setSpacing(0);
  layout->addWidget(m_header);
  layout->addWidget(m_message);
  layout->addWidget(m_view, 3);
  layout->addWidget(m_stat, 3);
  layout->addWidget(m_table, 3);
  layout->addWidget(m_legend, 1);
  auto* bottom = new QHBoxLayout;
  bottom->setContentsMargins(0, 0, 0, 0);
  bottom->addStretch(1);
  bottom->addWidget(m_grip);
  layout->addLayout(bottom);

  m_header->installEventFilter(this);
  m_title->installEventFilter(this);
  m_grip->installEventFilter(this);

  m_redrawTimer.setSingleShot(true);
  m_redrawTimer.setInterval(40);
  connect(&m_redrawTimer, &QTimer::timeout, this, [this] {
    if (isVisible())
      flushRedraw();
    else
      m_redrawWhenShown = true;
  });
  connect(m_controller, &PanelController::dataChanged, this, &PanelWidget::scheduleRedraw);
  connect(m_controller, &PanelController::stateChanged, this, &PanelWidget::updateState);
  connect(edit, &QToolButton::clicked, this, [this] { emit editRequested(this); });
  // The panel zooms itself; the canvas (linked time) moves the others.
  auto resetZoom = [this] {
    m_controller->resetZoom();
    emit resetZoomRequested(this);
  };
  connect(m_resetZoom, &QToolButton::clicked, this, resetZoom);
  connect(m_view, &PanelChartView::zoomRequested, this, [this](qint64 from, qint64 to) {
    m_controller->zoomTo({from, to});
    emit zoomRequested(this, from, to);
  });
  connect(m_view, &PanelChartView::resetZoomRequested, this, resetZoom);
  connect(m_view, &PanelChartView::hovered, this, [this](double t) { emit hovered(this, t); });
  connect(m_view, &PanelChartView::annotateRequested, this, &PanelWidget::annotateRequested);
  connect(m_view, &PanelChartView::deleteAnnotationRequested, this,
          &PanelWidget::deleteAnnotationRequested);
  connect(m_view, &PanelChartView::plotWidthChanged, m_controller, &PanelController::setPixelWidth);
  updateState();
}

void PanelWidget::setSpec(const PanelSpec& spec) {
  m_spec = spec;
  m_controller->setSpec(applyVariables(spec, m_variables));
  updateViews();
  updateState();
}

void PanelWidget::updateViews() {
  const ChartType chart = m_controller->spec().chart;
  const bool reduced = chartIsReduced(chart);
  const bool row = chart == ChartType::Row;
  // A row is its header alone: a toggle, its title, and the menu (rename, move, remove).
  m_collapse->setVisible(row);
  m_collapse->setText(m_spec.collapsed ? QStringLiteral("▸") : QStringLiteral("▾"));
  m_collapse->setToolTip(m_spec.collapsed ? tr("Expand the row") : tr("Collapse the row"));
  for (QWidget* w : m_panelOnly) w->setVisible(!row);
  m_grip->setVisible(!row);
  setFrameShape(row ? QFrame::NoFrame : QFrame::StyledPanel);
  if (row) {
    m_view->hide();
    m_stat->hide();
    m_table->hide();
    m_legend->hide();
    return;
  }
  m_view->setVisible(!reduced);
  m_stat->setVisible(chart == ChartType::Stat || chart == ChartType::Gauge);
  m_table->setVisible(chart == ChartType::Table);
  m_legend->setVisible(!reduced && !chartNeedsDistribution(chart) &&
                       m_controller->spec().legend == LegendMode::Table);
}

void PanelWidget::setAlertBadge(int firing, int pending, const QString& details) {
  if (firing == 0 && pending == 0) {
    m_alertBadge->hide();
    return;
  }
  m_alertBadge->setText(firing > 0 ? tr("🔔 %1 firing").arg(firing)
                                   : tr("⏳ %1 pending").arg(pending));
  m_alertBadge->setStyleSheet(firing > 0
                                  ? "color: white; background: #d93025; border-radius: 3px; "
                                    "padding: 0 4px; font-weight: bold;"
                                  : "color: #8a5300; background: #fef7e0; border-radius: 3px; "
                                    "padding: 0 4px;");
  m_alertBadge->setToolTip(details);
  m_alertBadge->show();
}

void PanelWidget::setCrosshair(std::optional<double> t) {
  if (m_view->isVisible()) m_view->setCrosshair(t);
}

void PanelWidget::setGrid(const GridRect& grid) {
  m_spec.grid = grid;
  m_controller->setGrid(grid);
}

void PanelWidget::setVariables(const std::vector<Variable>& variables) {
  m_variables = variables;
  const PanelSpec applied = applyVariables(m_spec, m_variables);
  if (applied == m_controller->spec()) return;
  m_controller->setSpec(applied);
  updateState();
}

void PanelWidget::scheduleRedraw() {
  if (!m_redrawTimer.isActive()) m_redrawTimer.start();
  updateState();
}

void PanelWidget::showEvent(QShowEvent* e) {
  QWidget::showEvent(e);
  if (m_redrawWhenShown) flushRedraw();
}

void PanelWidget::flushRedraw() {
  m_redrawTimer.stop();
  m_redrawWhenShown = false;
  ++m_redraws;
  const ChartType chart = m_controller->spec().chart;
  if (chart == ChartType::Stat || chart == ChartType::Gauge)
    m_stat->update();
  else if (chart == ChartType::Table)
    m_table->refresh();
  else
    m_view->redraw();
  if (m_legend->isVisible()) m_legend->refresh();
}

void PanelWidget::updateState() {
  const PanelSpec& s = m_controller->spec();
  QString title = QString::fromStdString(s.displayTitle());
  if (m_controller->isLoading() && !m_controller->hasData()) title += QStringLiteral("  …");
  m_title->setText(title);
  m_title->setToolTip(s.onCollector()
                          ? QString::fromStdString(s.metric)
                          : tr("%1 (data source %2)")
                                .arg(QString::fromStdString(m_controller->lastPromQL().empty()
                                                                ? s.metric
                                                                : m_controller->lastPromQL()),
                                     QString::fromStdString(s.source)));
  m_resetZoom->setVisible(m_controller->isZoomed());
  QString msg;
  const bool stale = m_controller->unknownFrom().has_value();
  if (s.chart == ChartType::Row)
    msg.clear();
  else if (!s.hasQuery())
    msg = tr("Drop a metric here, or click ✎ to choose one.");
  else if (stale)
    msg = tr("⚠ Stale: no data since %1, the collector cannot be reached. The chart stops there.")
              .arg(QString::fromStdString(formatLocalTime(*m_controller->unknownFrom())));
  else if (!m_controller->error().isEmpty())
    msg = tr("Query failed: %1").arg(m_controller->error());
  else if (m_controller->hasData() && !m_controller->isLoading()) {
    bool empty = true;
    if (auto* r = m_controller->series())
      for (const auto& se : r->series) empty &= se.points.empty();
    if (auto* h = m_controller->histogram()) empty = h->buckets.empty();
    if (auto* h = m_controller->heatmap()) empty = h->columns.empty();
    if (empty) msg = tr("No data in this time range.");
  }
  m_message->setText(msg);
  m_message->setStyleSheet(stale ? "color: #8a5300; background: #fef7e0; padding: 4px;"
                           : m_controller->error().isEmpty()
                               ? "color: #5f6368; padding: 4px;"
                               : "color: #b3261e; padding: 4px; font-weight: bold;");
  m_message->setVisible(!msg.isEmpty());
}

void PanelWidget::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasFormat(kMetricMimeType)) e->acceptProposedAction();
}

void PanelWidget::dropEvent(QDropEvent* e) {
  QString metric = QString::fromUtf8(e->mimeData()->data(kMetricMimeType));
  if (metric.isEmpty()) return;
  e->acceptProposedAction();
  emit metricDropped(this, metric, QString::fromUtf8(e->mimeData()->data(kSourceMimeType)));
}

bool PanelWidget::eventFilter(QObject* watched, QEvent* event) {
  const bool isGrip = watched == m_grip;
  if (event->type() == QEvent::MouseButtonPress) {
    auto* me = static_cast<QMouseEvent*>(event);
    if (me->button() == Qt::LeftButton) {
      m_pressGlobal = me->globalPosition().toPoint();
      m_dragging = true;
      return true;
    }
  } else if (event->type() == QEvent::MouseMove && m_dragging) {
    auto* me = static_cast<QMouseEvent*>(event);
    QPoint d = me->globalPosition().toPoint() - m_pressGlobal;
    if (isGrip)
      emit gripDragged(this, d, false);
    else
      emit headerDragged(this, d, false);
    return true;
  } else if (event->type() == QEvent::MouseButtonRelease && m_dragging) {
    auto* me = static_cast<QMouseEvent*>(event);
    m_dragging = false;
    QPoint d = me->globalPosition().toPoint() - m_pressGlobal;
    if (isGrip)
      emit gripDragged(this, d, true);
    else
      emit headerDragged(this, d, true);
    return true;
  } else if (event->type() == QEvent::MouseButtonDblClick && !isGrip) {
    emit editRequested(this);
    return true;
  }
  return QFrame::eventFilter(watched, event);
}

void PanelWidget::showDataTable() {
  // The rows the CSV export would hold, in a table; a snapshot (refresh by reopening).
  auto* dlg = new QDialog(this);
  dlg->setAttribute(Qt::WA_DeleteOnClose);
  dlg->setWindowTitle(
      tr("Data: %1").arg(QString::fromStdString(m_controller->spec().displayTitle())));
  auto* model = new PanelTableModel(dlg);
  model->setFromPanel(*m_controller);
  auto* view = new QTableView(dlg);
  view->setModel(model);
  view->setSortingEnabled(false);
  view->verticalHeader()->setVisible(false);
  view->horizontalHeader()->setStretchLastSection(true);
  auto* layout = new QVBoxLayout(dlg);
  layout->addWidget(view);
  dlg->resize(720, 480);
  dlg->show();
}

void PanelWidget::exportCsvDialog() {
  QString name = QString::fromStdString(m_controller->spec().displayTitle())
                     .replace(QRegularExpression("[^A-Za-z0-9._-]+"), "-");
  QString path = QFileDialog::getSaveFileName(this, tr("Export panel as CSV"), name + ".csv",
                                              tr("CSV (*.csv)"));
  if (path.isEmpty()) return;
  QString err;
  if (!Exporter::writeCsv(*m_controller, path, &err))
    QMessageBox::warning(this, tr("Export failed"), err);
}

void PanelWidget::exportImageDialog() {
  bool ok = false;
  QString size = QInputDialog::getText(this, tr("Export image"),
                                       tr("Size in pixels (WIDTHxHEIGHT):"), QLineEdit::Normal,
                                       QStringLiteral("%1x%2").arg(width()).arg(height()), &ok);
  if (!ok) return;
  QSize sz = Exporter::parseSize(size);
  if (!sz.isValid()) {
    QMessageBox::warning(this, tr("Export failed"),
                         tr("'%1' is not a size like 1600x900").arg(size));
    return;
  }
  QString name = QString::fromStdString(m_controller->spec().displayTitle())
                     .replace(QRegularExpression("[^A-Za-z0-9._-]+"), "-");
  QString path = QFileDialog::getSaveFileName(this, tr("Export panel image"), name + ".png",
                                              tr("PNG (*.png);;SVG (*.svg);;PDF (*.pdf)"));
  if (path.isEmpty()) return;
  QString err;
  if (!Exporter::writePanelImage(*m_controller, path, sz, &err))
    QMessageBox::warning(this, tr("Export failed"), err);
}
