// MainWindow: wires the pieces together and holds the actions: the metric browser dock, the
// open dashboards as tabs (DashboardTab: file, canvas, variables, alerts), the toolbar (range,
// live, refresh, add panel), the File menu (new, open, recent, tabs, save, save as, duplicate,
// import, export), the Dashboard menu (data sources), the collector banner and the status bar.
// The toolbar, the menus and the docks act on the current tab; the collector connection, the
// live feed and the health banner are the window's, shared by every tab.
// Everything that does work lives in the widgets and controllers it creates.
#pragma once

#include <QMainWindow>
#include <QStringList>
#include <QUrl>

#include <set>
#include <string>

#include "core/dashboard.h"
#include "dashboard_document.h"
#include "tally/common/endpoints.h"

class CollectorClient;
class QDialog;
class DashboardCanvas;
class HealthMonitor;
class LiveSubscriber;
class MetricBrowser;
class QDockWidget;
class QSystemTrayIcon;
class QTabWidget;
class QTableView;
class QUndoGroup;
class AlertManager;
class DashboardTab;
class QAction;
class QLabel;
class QMenu;
class QPushButton;
class TimeRangePicker;
class VariableBar;

struct MainWindowOptions {
  QUrl collector = QUrl(tally::kDefaultCollectorUrl);
  QString live = tally::kDefaultLiveEndpoint;
  QString dashboard;           // open this instead of the dashboards open when the app last closed
  QStringList moreDashboards;  // and these, each in a tab of its own
};

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(const MainWindowOptions& options, QWidget* parent = nullptr);

  // The current tab's.
  DashboardCanvas* canvas() const;
  DashboardDocument* document() const;
  DashboardTab* currentTab() const;
  QTabWidget* tabs() const { return m_tabs; }
  QList<DashboardTab*> allTabs() const;
  MetricBrowser* browser() const { return m_browser; }
  CollectorClient* client() const { return m_client; }
  HealthMonitor* health() const { return m_health; }
  LiveSubscriber* liveSubscriber() const { return m_live; }
  TimeRangePicker* rangePicker() const { return m_range; }
  QWidget* banner() const { return m_banner; }
  QAction* liveAction() const { return m_liveAction; }

  // Opens a file; on failure shows the reason (path and what is wrong) and keeps the current one.
  bool openDashboard(const QString& path, bool interactive = true);
  bool saveDashboard(const QString& path);
  void setDashboard(const tally::dash::Dashboard& d, const QString& path);
  void setTimeRange(const tally::dash::TimeRangeSpec& range);  // like choosing it in the toolbar
  // --var name=v1,v2: a variable's values, as if chosen above the panels; false with the reason.
  bool setVariableArg(const QString& arg, QString* error);
  VariableBar* variableBar() const;
  AlertManager* alerts() const;
  QDockWidget* alertsDock() const { return m_alertsDock; }

 public slots:
  void newDashboard();
  void open();
  // Another window with the dashboard at `path` (several dashboards open at once); nullptr with
  // a message when it cannot be read. Empty path: asks for one.
  MainWindow* openInNewWindow(const QString& path = {});
  // A new tab with the dashboard at `path` (the tab that has it already, if one does); nullptr
  // with a message when it cannot be read. Empty path: asks for one.
  DashboardTab* openInNewTab(const QString& path = {});
  // A new tab with a new, empty dashboard.
  DashboardTab* newTab();
  // Closes a tab, asking to save it first when modified; false when the user cancels. Closing
  // the last one leaves a new, empty dashboard in its place.
  bool closeTab(int index);
  bool save();
  bool saveAs();
  void duplicate();
  void importDashboard();
  void exportDashboard();
  void exportDashboardImage();
  void addPanelForMetric(const QString& metric);
  void editDataSources();
  void editVariables();
  // Help › Keyboard shortcuts: every action of the window that has keys, and the charts' mouse
  // gestures.
  void showShortcuts();

 protected:
  void closeEvent(QCloseEvent* e) override;

 private:
  void buildActions();
  DashboardTab* addTab();
  void currentTabChanged();
  void updateTitle();
  void updateTabText(DashboardTab* tab);
  void updateRecentMenu();
  void updateHealth();
  bool maybeSave();  // the current tab
  // The tab showing the file at `path`, if any.
  DashboardTab* tabWithFile(const QString& path) const;
  // Opens the dashboards open when the app last closed, each in a tab; false when there were none.
  bool restoreSession();
  void rememberSession();
  // Asks about each source of `d` that would send headers to a host not approved for it
  // (host_approval.h); returns the sources the user chose not to send from.
  std::set<std::string> askAboutNewHosts(const tally::dash::Dashboard& d, const QString& path);
  void showFileDashboard(const tally::dash::Dashboard& d, const QString& path,
                         const QString& shownPath, const DashboardDocument::SecretNotes& notes);
  void showError(const QString& title, const QString& text);

  MainWindowOptions m_options;
  CollectorClient* m_client;
  LiveSubscriber* m_live;
  HealthMonitor* m_health;
  QTabWidget* m_tabs;
  QUndoGroup* m_undoGroup;
  QDockWidget* m_cardinalityDock = nullptr;
  QTableView* m_alertView = nullptr;
  QDockWidget* m_alertsDock = nullptr;
  QSystemTrayIcon* m_tray = nullptr;
  MetricBrowser* m_browser;
  TimeRangePicker* m_range;
  QWidget* m_banner;
  QLabel* m_bannerText;
  QLabel* m_statusCollector;
  QLabel* m_statusHealth;
  QLabel* m_statusLive;
  QAction* m_liveAction = nullptr;
  QDialog* m_shortcuts = nullptr;
  QMenu* m_recentMenu = nullptr;
  bool m_interactive = true;
};
