// MainWindow: wires the pieces together and holds the actions: the metric browser dock, the
// dashboard canvas, the toolbar (range, live, refresh, add panel), the File menu (new, open,
// recent, save, save as, duplicate, import, export), the Dashboard menu (data sources), the
// collector banner and the status bar.
// Everything that does work lives in the widgets and controllers it creates.
#pragma once

#include <QMainWindow>
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
class AlertManager;
class QAction;
class QLabel;
class QMenu;
class QPushButton;
class TimeRangePicker;
class VariableBar;

struct MainWindowOptions {
  QUrl collector = QUrl(tally::kDefaultCollectorUrl);
  QString live = tally::kDefaultLiveEndpoint;
  QString dashboard;  // open this instead of the last one
};

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(const MainWindowOptions& options, QWidget* parent = nullptr);

  DashboardCanvas* canvas() const { return m_canvas; }
  DashboardDocument* document() const { return m_document; }
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
  VariableBar* variableBar() const { return m_variableBar; }
  AlertManager* alerts() const { return m_alerts; }
  QDockWidget* alertsDock() const { return m_alertsDock; }

 public slots:
  void newDashboard();
  void open();
  // Another window with the dashboard at `path` (several dashboards open at once); nullptr with
  // a message when it cannot be read. Empty path: asks for one.
  MainWindow* openInNewWindow(const QString& path = {});
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
  void updateTitle();
  void updateRecentMenu();
  void updateHealth();
  bool maybeSave();
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
  DashboardDocument* m_document;
  DashboardCanvas* m_canvas;
  QDockWidget* m_cardinalityDock = nullptr;
  AlertManager* m_alerts = nullptr;
  QDockWidget* m_alertsDock = nullptr;
  QSystemTrayIcon* m_tray = nullptr;
  MetricBrowser* m_browser;
  TimeRangePicker* m_range;
  VariableBar* m_variableBar;
  QWidget* m_banner;
  QLabel* m_bannerText;
  QLabel* m_statusCollector;
  QLabel* m_statusHealth;
  QLabel* m_statusLive;
  QAction* m_liveAction = nullptr;
  QDialog* m_shortcuts = nullptr;
  QMenu* m_recentMenu = nullptr;
  bool m_interactive = true;
  QStringList m_secretsInFile;  // secret values the open file holds itself, until it is saved
};
