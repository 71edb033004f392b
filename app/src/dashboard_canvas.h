// DashboardCanvas: the grid of panels (kGridColumns columns, rows of rowHeight() pixels).
// Panels are placed by their GridRect; dragging a panel's header moves it and its corner grip
// resizes it, snapping to cells; panels it lands on are pushed down. Owns the PanelWidgets and
// passes the dashboard's range and live flag to them; slides live windows once a second. Holds the
// dashboard's data sources (DataSources) that panels on a Prometheus-compatible server read.
#pragma once

#include <QList>
#include <QTimer>
#include <QWidget>
#include <map>
#include <optional>

#include "core/api.h"
#include "core/dashboard.h"

class CollectorClient;
class DataSources;
class QUndoStack;
class LiveSubscriber;
class PanelWidget;

class DashboardCanvas : public QWidget {
  Q_OBJECT
 public:
  DashboardCanvas(CollectorClient* client, LiveSubscriber* live, QWidget* parent = nullptr);
  ~DashboardCanvas() override;

  void setDashboard(const tally::dash::Dashboard& dashboard);
  tally::dash::Dashboard dashboard() const;  // title, range, live and the panels as they are now

  const QList<PanelWidget*>& panels() const { return m_panels; }
  PanelWidget* addPanel(const tally::dash::PanelSpec& spec, bool findPlace = true);
  // A row (a header that groups and collapses the panels below it) at the bottom.
  PanelWidget* addRow(const QString& title);
  // Removes a panel; the panels below move up into its room (undo puts it back where it was).
  void removePanel(PanelWidget* panel);
  // Undo and redo of every edit (docs/DASHBOARD.md): each modified() that changed the panels,
  // variables, data sources or title is one step; the range, Live and chosen variable values are
  // looking, not editing, and are not steps. Opening a dashboard starts a new history.
  QUndoStack* undoStack() const { return m_undo; }
  // The dashboard as `d` has it (panels, variables, sources, title), keeping every panel whose
  // settings are unchanged (no re-query): what undo and redo do.
  void restore(const tally::dash::Dashboard& d);
  // An edit made elsewhere (the title): recorded as a step; emits modified().
  void noteEdited();
  void movePanel(PanelWidget* panel, int dx, int dy);
  void resizePanel(PanelWidget* panel, int dw, int dh);
  void setPanelGrid(PanelWidget* panel, const tally::dash::GridRect& grid);

  void setTitle(const QString& title) { m_dashboard.title = title.toStdString(); }
  const std::string& title() const { return m_dashboard.title; }
  DataSources* dataSources() const { return m_sources; }
  // Replaces the data sources; `renamed` maps old names to new ones, and the panels follow.
  void setSources(const std::vector<tally::dash::DataSource>& sources,
                  const std::map<std::string, std::string>& renamed);
  int panelsUsingSource(const std::string& name) const;
  // The dashboard's variables (core/variables.h): defining them marks the dashboard modified;
  // choosing values does not (they are saved with it all the same), like the range.
  const std::vector<tally::dash::Variable>& variables() const { return m_dashboard.variables; }
  void setVariables(const std::vector<tally::dash::Variable>& variables);
  void setVariableValues(const std::string& name, const std::vector<std::string>& values);
  void setRange(const tally::dash::TimeRangeSpec& range);
  void setLive(bool live);
  bool isLive() const { return m_dashboard.live; }
  tally::dash::TimeRangeSpec range() const { return m_dashboard.range; }

  static constexpr int kRowHeight = 64;
  QRect cellRect(const tally::dash::GridRect& g) const;
  QSize sizeHint() const override;
  // What an empty canvas says (File › New): how to get a first panel.
  static QString emptyHint();

 public slots:
  void refreshAll();
  // Asks the collector for the annotations over the panels' windows and hands them to every
  // panel (on refresh, range changes, zooms, and every 10 s while live).
  void refreshAnnotations();
  void editPanel(PanelWidget* panel);
  // Asks for an annotation at time t (AnnotationDialog; default now) and posts it.
  void annotate(std::optional<double> t = std::nullopt);
  // Asks whether to delete the annotation, then does.
  void deleteAnnotation(qint64 id, const QString& title);

 public:
  // POST /api/annotations, then the panels show it: annotationPosted(id), or annotationFailed
  // with the collector's reason (an admin token it wants, say).
  void postAnnotation(const tally::dash::Annotation& a);
  void removeAnnotation(qint64 id);

 signals:
  void annotationPosted(qint64 id);
  void annotationDeleted(qint64 id);
  void annotationFailed(const QString& reason);
  void modified();
  void panelRemoved(const QString& title);
  void variablesChanged();  // defined, or their values chosen

 protected:
  void resizeEvent(QResizeEvent* e) override;
  void paintEvent(QPaintEvent* e) override;

 private:
  void relayout();
  void recordEdit();
  QUndoStack* m_undo;
  tally::dash::Dashboard m_undoBase;  // the state after the last recorded step
  bool m_restoring = false;
  int m_ticks = 0;
  void pushDownOverlaps(PanelWidget* moved);
  void wire(PanelWidget* panel);
  double columnWidth() const;

  CollectorClient* m_client;
  LiveSubscriber* m_live;
  DataSources* m_sources;
  tally::dash::Dashboard m_dashboard;  // title, range, live; panels live in the widgets
  QList<PanelWidget*> m_panels;
  QTimer m_tick;
};
