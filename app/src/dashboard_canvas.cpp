#include "dashboard_canvas.h"

#include <QDateTime>
#include <QInputDialog>
#include <QMessageBox>
#include <QPainter>
#include <QResizeEvent>
#include <QUndoCommand>
#include <QUndoStack>
#include <algorithm>
#include <cmath>

#include "annotation_dialog.h"
#include "collector_client.h"
#include "core/panel_defaults.h"
#include "data_sources.h"
#include "panel_controller.h"
#include "panel_editor.h"
#include "panel_widget.h"

using namespace tally::dash;

namespace {
bool overlaps(const GridRect& a, const GridRect& b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}
constexpr int kGap = 6;
}  // namespace

namespace {

// The parts of a dashboard an edit changes: not the range, Live or the values chosen.
Dashboard edited(Dashboard d) {
  d.range = {};
  d.live = true;
  for (auto& v : d.variables) v.current.clear();
  return d;
}

// "Remove panel “Errors”", "Move panel “Errors”", "Edit variables", ...
QString describeEdit(const Dashboard& a, const Dashboard& b) {
  auto title = [](const PanelSpec& p) { return QString::fromStdString(p.displayTitle()); };
  if (a.panels.size() + 1 == b.panels.size())
    return QObject::tr("Add panel “%1”").arg(title(b.panels.back()));
  if (a.panels.size() == b.panels.size() + 1) {
    for (size_t i = 0; i < b.panels.size(); ++i)
      if (!(a.panels[i] == b.panels[i]))
        return QObject::tr("Remove panel “%1”").arg(title(a.panels[i]));
    return QObject::tr("Remove panel “%1”").arg(title(a.panels.back()));
  }
  if (a.panels.size() == b.panels.size()) {
    int changed = 0, moved = 0;
    bool resized = false;
    const PanelSpec* which = nullptr;
    for (size_t i = 0; i < a.panels.size(); ++i) {
      if (a.panels[i] == b.panels[i]) continue;
      PanelSpec x = a.panels[i];
      x.grid = b.panels[i].grid;
      if (x == b.panels[i]) {
        ++moved;
        const GridRect &g0 = a.panels[i].grid, &g1 = b.panels[i].grid;
        resized |= (g0.w != g1.w || g0.h != g1.h) && g0.x == g1.x && g0.y == g1.y;
      } else {
        ++changed;
      }
      if (!which) which = &b.panels[i];
    }
    if (changed == 1 && which) return QObject::tr("Edit panel “%1”").arg(title(*which));
    if (changed == 0 && moved > 0 && which)
      return (resized ? QObject::tr("Resize panel “%1”") : QObject::tr("Move panel “%1”"))
          .arg(title(*which));
    if (changed > 1) return QObject::tr("Edit panels");
  }
  if (!(a.variables == b.variables)) return QObject::tr("Edit variables");
  if (!(a.sources == b.sources)) return QObject::tr("Edit data sources");
  if (a.title != b.title) return QObject::tr("Rename dashboard");
  return QObject::tr("Edit dashboard");
}

// One step: the dashboard before and after it.
class DashboardEdit : public QUndoCommand {
 public:
  DashboardEdit(DashboardCanvas* canvas, Dashboard before, Dashboard after)
      : QUndoCommand(describeEdit(before, after)),
        m_canvas(canvas),
        m_before(std::move(before)),
        m_after(std::move(after)) {}
  void undo() override { m_canvas->restore(m_before); }
  void redo() override {
    if (m_first) {  // pushed after the edit was made
      m_first = false;
      return;
    }
    m_canvas->restore(m_after);
  }

 private:
  DashboardCanvas* m_canvas;
  Dashboard m_before, m_after;
  bool m_first = true;
};

}  // namespace

DashboardCanvas::DashboardCanvas(CollectorClient* client, LiveSubscriber* live, QWidget* parent)
    : QWidget(parent), m_client(client), m_live(live), m_sources(new DataSources(this)) {
  setObjectName("dashboardCanvas");
  m_undo = new QUndoStack(this);
  connect(this, &DashboardCanvas::modified, this, &DashboardCanvas::recordEdit);
  m_tick.setInterval(1000);
  connect(&m_tick, &QTimer::timeout, this, [this] {
    for (auto* p : m_panels) p->controller()->tick();
    if (++m_ticks % 10 == 0) refreshAnnotations();
  });
}

void DashboardCanvas::setDashboard(const Dashboard& d) {
  qDeleteAll(m_panels);
  m_panels.clear();
  m_dashboard = d;
  m_dashboard.panels.clear();
  m_sources->setSources(d.sources);
  emit variablesChanged();
  for (const auto& spec : d.panels) addPanel(spec, false);
  setLive(d.live);
  relayout();
  refreshAnnotations();
  m_undo->clear();  // a new history
  m_undoBase = edited(dashboard());
}

void DashboardCanvas::setVariables(const std::vector<Variable>& variables) {
  m_dashboard.variables = variables;
  for (auto* p : m_panels) p->setVariables(variables);
  emit variablesChanged();
  emit modified();
}

void DashboardCanvas::setVariableValues(const std::string& name,
                                        const std::vector<std::string>& values) {
  bool changed = false;
  for (auto& v : m_dashboard.variables)
    if (v.name == name && v.current != values) {
      v.current = values;
      changed = true;
    }
  if (!changed) return;
  for (auto* p : m_panels) p->setVariables(m_dashboard.variables);
  emit variablesChanged();
}

Dashboard DashboardCanvas::dashboard() const {
  Dashboard d = m_dashboard;
  d.sources = m_sources->sources();
  d.panels.clear();
  for (auto* p : m_panels) d.panels.push_back(p->spec());
  return d;
}

DashboardCanvas::~DashboardCanvas() {
  // The stack goes with the children and says so (cleanChanged); nobody listening is left.
  m_undo->blockSignals(true);
}

void DashboardCanvas::recordEdit() {
  if (m_restoring) return;
  Dashboard now = edited(dashboard());
  if (now == m_undoBase) return;
  m_undo->push(new DashboardEdit(this, m_undoBase, now));
  m_undoBase = std::move(now);
}

void DashboardCanvas::noteEdited() {
  emit modified();
}

void DashboardCanvas::restore(const Dashboard& d) {
  m_restoring = true;
  m_dashboard.title = d.title;
  if (!(m_sources->sources() == d.sources)) m_sources->setSources(d.sources);
  // Variables as defined then, keeping the values chosen now where the variable still exists.
  std::vector<Variable> vars = d.variables;
  for (auto& v : vars)
    for (const auto& cur : m_dashboard.variables)
      if (cur.name == v.name) v.current = cur.current;
  if (!(vars == m_dashboard.variables)) {
    m_dashboard.variables = vars;
    for (auto* p : m_panels) p->setVariables(vars);
    emit variablesChanged();
  }
  // Panels in order: an unchanged one is kept as it is (no re-query), a changed one takes its
  // settings, extra ones go and missing ones come.
  for (size_t i = 0; i < d.panels.size(); ++i) {
    if (i < size_t(m_panels.size())) {
      if (!(m_panels[qsizetype(i)]->spec() == d.panels[i]))
        m_panels[qsizetype(i)]->setSpec(d.panels[i]);
    } else {
      addPanel(d.panels[i], false);
    }
  }
  while (m_panels.size() > qsizetype(d.panels.size())) {
    PanelWidget* p = m_panels.takeLast();
    p->hide();
    p->deleteLater();
  }
  relayout();
  m_undoBase = edited(dashboard());
  emit modified();  // the document changed; not a new step (m_restoring)
  m_restoring = false;
}

void DashboardCanvas::paintEvent(QPaintEvent* e) {
  QWidget::paintEvent(e);
  if (!m_panels.isEmpty()) return;
  QPainter p(this);
  p.setPen(palette().color(QPalette::PlaceholderText));
  QFont f = font();
  f.setPointSizeF(f.pointSizeF() * 1.25);
  p.setFont(f);
  p.drawText(rect().adjusted(40, 40, -40, -40), Qt::AlignCenter | Qt::TextWordWrap, emptyHint());
}

QString DashboardCanvas::emptyHint() {
  return tr(
      "This dashboard has no panels yet.\n\nDouble-click a metric in the Metrics list on the "
      "left (or drag it here) to chart it, or click “Add panel” in the toolbar to choose "
      "the metric, filters and chart yourself.");
}

double DashboardCanvas::columnWidth() const {
  return double(std::max(width(), 400) - kGap) / kGridColumns;
}

QRect DashboardCanvas::cellRect(const GridRect& g) const {
  const double cw = columnWidth();
  int x = int(std::round(g.x * cw)) + kGap;
  int w = int(std::round((g.x + g.w) * cw)) - int(std::round(g.x * cw)) - kGap;
  return QRect(x, g.y * kRowHeight + kGap, w, g.h * kRowHeight - kGap);
}

QSize DashboardCanvas::sizeHint() const {
  std::vector<PanelSpec> specs;
  for (auto* p : m_panels) specs.push_back(p->spec());
  const int rows = layoutRows(specs).rows;
  return QSize(900, std::max(1, rows) * kRowHeight + kGap);
}

void DashboardCanvas::relayout() {
  // Rows: a collapsed row hides its panels and what is below moves up (layoutRows).
  std::vector<PanelSpec> specs;
  for (auto* p : m_panels) specs.push_back(p->spec());
  const RowLayout layout = layoutRows(specs);
  int rows = layout.rows;
  for (qsizetype i = 0; i < m_panels.size(); ++i) {
    PanelWidget* p = m_panels[i];
    GridRect g = p->spec().grid;
    g.y = layout.displayY[size_t(i)];
    p->setGeometry(cellRect(g));
    p->setVisible(!layout.hidden[size_t(i)]);
  }
  setMinimumHeight((rows + 2) * kRowHeight);  // room below to drag panels into
  updateGeometry();
  update();  // the empty-canvas hint comes and goes
}

void DashboardCanvas::resizeEvent(QResizeEvent* e) {
  QWidget::resizeEvent(e);
  relayout();
}

void DashboardCanvas::wire(PanelWidget* panel) {
  connect(panel, &PanelWidget::removeRequested, this, &DashboardCanvas::removePanel);
  connect(panel, &PanelWidget::collapseToggled, this, [this](PanelWidget* row) {
    PanelSpec s = row->spec();
    s.collapsed = !s.collapsed;
    row->setSpec(s);
    relayout();
    emit modified();
  });
  // Linked time: a zoom, pan or reset on one panel applies to all; the mouse's time on one
  // time chart is a crosshair on the others.
  connect(panel, &PanelWidget::zoomRequested, this,
          [this](PanelWidget* source, qint64 from, qint64 to) {
            for (auto* p : m_panels)
              if (p != source) p->controller()->zoomTo({from, to});
            refreshAnnotations();
          });
  connect(panel, &PanelWidget::resetZoomRequested, this, [this](PanelWidget* source) {
    for (auto* p : m_panels)
      if (p != source) p->controller()->resetZoom();
    refreshAnnotations();
  });
  connect(panel, &PanelWidget::hovered, this, [this](PanelWidget* source, double t) {
    for (auto* p : m_panels)
      if (p != source) p->setCrosshair(std::isnan(t) ? std::nullopt : std::optional<double>(t));
  });
  connect(panel, &PanelWidget::editRequested, this, &DashboardCanvas::editPanel);
  connect(panel, &PanelWidget::annotateRequested, this, [this](double t) { annotate(t); });
  connect(panel, &PanelWidget::deleteAnnotationRequested, this, &DashboardCanvas::deleteAnnotation);
  connect(panel, &PanelWidget::duplicateRequested, this, [this](PanelWidget* p) {
    PanelSpec s = p->spec();
    addPanel(s, true);
  });
  connect(panel, &PanelWidget::moveRequested, this, &DashboardCanvas::movePanel);
  connect(panel, &PanelWidget::resizeRequested, this, &DashboardCanvas::resizePanel);
  connect(panel, &PanelWidget::metricDropped, this,
          [this](PanelWidget* p, const QString& metric, const QString& source) {
            // The panel now shows the dropped metric; filters, group-by and title belonged to the
            // old one.
            PanelSpec s = p->spec();
            retargetPanel(s, metric.toStdString(), source.toStdString());
            p->setSpec(s);
            emit modified();
          });
  connect(panel, &PanelWidget::headerDragged, this,
          [this](PanelWidget* p, QPoint d, bool finished) {
            const GridRect g = p->spec().grid;
            QRect home = cellRect(g);
            if (!finished) {
              p->raise();
              p->move(home.topLeft() + d);
              return;
            }
            GridRect n = g;
            n.x = std::clamp(g.x + int(std::round(d.x() / columnWidth())), 0, kGridColumns - g.w);
            n.y = std::max(0, g.y + int(std::round(double(d.y()) / kRowHeight)));
            setPanelGrid(p, n);
          });
  connect(panel, &PanelWidget::gripDragged, this, [this](PanelWidget* p, QPoint d, bool finished) {
    const GridRect g = p->spec().grid;
    QRect home = cellRect(g);
    if (!finished) {
      p->resize(std::max(120, home.width() + d.x()), std::max(100, home.height() + d.y()));
      return;
    }
    GridRect n = g;
    n.w = std::clamp(g.w + int(std::round(d.x() / columnWidth())), 1, kGridColumns - g.x);
    n.h = std::clamp(g.h + int(std::round(double(d.y()) / kRowHeight)), 2, 100);
    setPanelGrid(p, n);
  });
}

PanelWidget* DashboardCanvas::addPanel(const PanelSpec& specIn, bool findPlace) {
  PanelSpec spec = specIn;
  if (findPlace) {
    std::vector<PanelSpec> others;
    for (auto* p : m_panels) others.push_back(p->spec());
    spec.grid =
        placeNewPanel(others, std::min(spec.grid.w, kGridColumns), std::max(2, spec.grid.h));
  }
  auto* panel = new PanelWidget(m_client, m_live, this);
  panel->setVariables(m_dashboard.variables);
  panel->controller()->setDataSources(m_sources);
  m_panels.append(panel);
  wire(panel);
  panel->controller()->setLive(m_dashboard.live);
  panel->controller()->setPixelWidth(std::max(200, cellRect(spec.grid).width() - 70));
  panel->controller()->setRange(m_dashboard.range);
  panel->setSpec(spec);
  panel->setGeometry(cellRect(spec.grid));
  panel->show();
  relayout();
  if (findPlace) emit modified();
  return panel;
}

void DashboardCanvas::removePanel(PanelWidget* panel) {
  const qsizetype index = m_panels.indexOf(panel);
  if (index < 0) return;
  const QString removedTitle = QString::fromStdString(panel->spec().displayTitle());
  m_panels.removeAt(index);
  panel->hide();
  panel->deleteLater();
  // Panels below move up into the room it leaves (no hole), each as far as it can.
  std::vector<PanelWidget*> byRow(m_panels.begin(), m_panels.end());
  std::stable_sort(byRow.begin(), byRow.end(), [](PanelWidget* a, PanelWidget* b) {
    return a->spec().grid.y < b->spec().grid.y;
  });
  for (PanelWidget* p : byRow) {
    GridRect g = p->spec().grid;
    while (g.y > 0) {
      GridRect up = g;
      --up.y;
      bool blocked = false;
      for (PanelWidget* o : m_panels)
        if (o != p && overlaps(up, o->spec().grid)) blocked = true;
      if (blocked) break;
      g = up;
    }
    p->setGrid(g);
  }
  relayout();
  emit panelRemoved(removedTitle);
  emit modified();
}

void DashboardCanvas::setPanelGrid(PanelWidget* panel, const GridRect& grid) {
  GridRect g = grid;
  g.w = std::clamp(g.w, 1, kGridColumns);
  g.x = std::clamp(g.x, 0, kGridColumns - g.w);
  g.y = std::max(0, g.y);
  g.h = std::clamp(g.h, 1, 100);
  panel->setGrid(g);
  pushDownOverlaps(panel);
  relayout();
  emit modified();
}

void DashboardCanvas::movePanel(PanelWidget* panel, int dx, int dy) {
  GridRect g = panel->spec().grid;
  g.x += dx;
  g.y += dy;
  setPanelGrid(panel, g);
}

void DashboardCanvas::resizePanel(PanelWidget* panel, int dw, int dh) {
  GridRect g = panel->spec().grid;
  g.w += dw;
  g.h += dh;
  setPanelGrid(panel, g);
}

void DashboardCanvas::pushDownOverlaps(PanelWidget* moved) {
  // Whatever the moved panel now covers moves below it, and so on down the page.
  QList<PanelWidget*> queue{moved};
  int guard = 0;
  while (!queue.isEmpty() && ++guard < 1000) {
    PanelWidget* top = queue.takeFirst();
    const GridRect t = top->spec().grid;
    for (auto* p : m_panels) {
      if (p == top || p == moved) continue;
      GridRect g = p->spec().grid;
      if (!overlaps(g, t)) continue;
      g.y = t.y + t.h;
      p->setGrid(g);
      queue.append(p);
    }
  }
}

void DashboardCanvas::setRange(const TimeRangeSpec& range) {
  m_dashboard.range = range;
  for (auto* p : m_panels) p->controller()->setRange(range);
  refreshAnnotations();
}

void DashboardCanvas::setLive(bool live) {
  m_dashboard.live = live;
  for (auto* p : m_panels) p->controller()->setLive(live);
  if (live)
    m_tick.start();
  else
    m_tick.stop();
}

void DashboardCanvas::setSources(const std::vector<DataSource>& sources,
                                 const std::map<std::string, std::string>& renamed) {
  for (auto* p : m_panels) {
    auto it = renamed.find(p->spec().source);
    if (p->spec().source.empty() || it == renamed.end()) continue;
    PanelSpec s = p->spec();
    s.source = it->second;
    p->setSpec(s);
  }
  m_sources->setSources(sources);  // panels on a source re-query
  emit modified();
}

int DashboardCanvas::panelsUsingSource(const std::string& name) const {
  int n = 0;
  for (auto* p : m_panels) n += p->spec().source == name;
  return n;
}

void DashboardCanvas::refreshAll() {
  for (auto* p : m_panels) p->controller()->refresh();
  refreshAnnotations();
}

void DashboardCanvas::refreshAnnotations() {
  if (m_panels.isEmpty() || !m_client) return;
  int64_t from = INT64_MAX, to = INT64_MIN;
  for (auto* p : m_panels) {
    const TimeWindow w = p->controller()->shownWindow();
    from = std::min(from, w.from);
    to = std::max(to, w.to);
  }
  m_client->fetchAnnotations(from, to, this, [this](tally::Result<std::vector<Annotation>> r) {
    if (!r) return;  // an older collector without annotations, or unreachable: keep what is shown
    for (auto* p : m_panels) p->controller()->setAnnotations(*r);
  });
}

void DashboardCanvas::annotate(std::optional<double> t) {
  AnnotationDialog dialog(t.value_or(double(QDateTime::currentMSecsSinceEpoch()) / 1000), this);
  if (dialog.exec() != QDialog::Accepted) return;
  if (auto a = dialog.annotation()) postAnnotation(*a);
}

void DashboardCanvas::postAnnotation(const Annotation& a) {
  if (!m_client) return;
  m_client->addAnnotation(a, this, [this](tally::Result<int64_t> id) {
    if (!id) {
      emit annotationFailed(QString::fromStdString(id.status().message()));
      return;
    }
    refreshAnnotations();
    emit annotationPosted(*id);
  });
}

void DashboardCanvas::deleteAnnotation(qint64 id, const QString& title) {
  const auto answer = QMessageBox::question(
      this, tr("Delete annotation"),
      tr("Delete the annotation “%1” from the collector? Every dashboard stops showing it.")
          .arg(title),
      QMessageBox::Yes | QMessageBox::Cancel);
  if (answer == QMessageBox::Yes) removeAnnotation(id);
}

void DashboardCanvas::removeAnnotation(qint64 id) {
  if (!m_client) return;
  m_client->deleteAnnotation(id, this, [this, id](tally::Result<int64_t> deleted) {
    if (!deleted) {
      emit annotationFailed(QString::fromStdString(deleted.status().message()));
      return;
    }
    refreshAnnotations();
    emit annotationDeleted(id);
  });
}

PanelWidget* DashboardCanvas::addRow(const QString& title) {
  PanelSpec s;
  s.chart = ChartType::Row;
  s.title = title.toStdString();
  int bottom = 0;
  for (auto* p : m_panels) bottom = std::max(bottom, p->spec().grid.y + p->spec().grid.h);
  s.grid = {0, bottom, kGridColumns, 1};
  PanelWidget* row = addPanel(s, false);
  relayout();
  emit modified();
  return row;
}

void DashboardCanvas::editPanel(PanelWidget* panel) {
  if (panel->spec().chart == ChartType::Row) {  // a row has a title only
    bool ok = false;
    const QString t = QInputDialog::getText(this, tr("Row title"), tr("Title:"), QLineEdit::Normal,
                                            QString::fromStdString(panel->spec().title), &ok);
    if (!ok) return;
    PanelSpec s = panel->spec();
    s.title = t.trimmed().toStdString();
    panel->setSpec(s);
    emit modified();
    return;
  }
  PanelEditor editor(m_client, m_sources, panel->spec(), this);
  if (editor.exec() != QDialog::Accepted) return;
  panel->setSpec(editor.spec());
  emit modified();
}
