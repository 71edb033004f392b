// DashboardTab: one open dashboard, the page of one tab of the main window: its file
// (DashboardDocument), its panels (DashboardCanvas, scrolled), the variables bar above them and
// its alerts (AlertManager). Each tab has its own range, Live flag, data sources and undo history;
// the collector connection, the live feed and the metric browser belong to the window and are
// shared by every tab.
#pragma once

#include <QStringList>
#include <QWidget>

class AlertManager;
class CollectorClient;
class DashboardCanvas;
class DashboardDocument;
class LiveSubscriber;
class VariableBar;

class DashboardTab : public QWidget {
  Q_OBJECT
 public:
  DashboardTab(CollectorClient* client, LiveSubscriber* live, QWidget* parent = nullptr);

  DashboardCanvas* canvas() const { return m_canvas; }
  DashboardDocument* document() const { return m_document; }
  VariableBar* variableBar() const { return m_variableBar; }
  AlertManager* alerts() const { return m_alerts; }
  // Secret header values the open file holds itself, until it is saved (they move out then).
  QStringList& secretsInFile() { return m_secretsInFile; }
  // What its tab says: the title, "*" while modified, and how many alerts fire.
  QString tabText() const;
  QString title() const;

 private:
  DashboardDocument* m_document;
  DashboardCanvas* m_canvas;
  VariableBar* m_variableBar;
  AlertManager* m_alerts;
  QStringList m_secretsInFile;
};
