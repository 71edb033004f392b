#include "main_window.h"

#include "alert_manager.h"
#include "theme.h"

#include "core/variables.h"
#include "variable_bar.h"
#include "variables_dialog.h"

#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QComboBox>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QRegularExpression>
#include <QScrollArea>
#include <QSet>
#include <QSettings>
#include <QStandardPaths>
#include <QStatusBar>
#include <QSystemTrayIcon>
#include <QTabWidget>
#include <QTableView>
#include <QTableWidget>
#include <QToolBar>
#include <QUndoGroup>
#include <QUndoStack>
#include <QVBoxLayout>

#include "cardinality_view.h"
#include "collector_client.h"
#include "core/panel_defaults.h"
#include "core/time_range.h"
#include "dashboard_canvas.h"
#include "dashboard_document.h"
#include "dashboard_tab.h"
#include "data_sources.h"
#include "data_sources_dialog.h"
#include "exporter.h"
#include "health_monitor.h"
#include "host_approval.h"
#include "live_subscriber.h"
#include "metric_browser.h"
#include "metric_tree_model.h"
#include "panel_chart.h"
#include "panel_controller.h"
#include "panel_widget.h"
#include "secret_store.h"
#include "time_range_picker.h"

using namespace tally::dash;

MainWindow::MainWindow(const MainWindowOptions& options, QWidget* parent)
    : QMainWindow(parent),
      m_options(options),
      m_client(new CollectorClient(options.collector, this)),
      m_live(new LiveSubscriber(this)),
      m_health(new HealthMonitor(m_client, this)),
      m_tabs(new QTabWidget(this)),
      m_undoGroup(new QUndoGroup(this)) {
  setWindowIcon(QIcon(":/tally/icons/tally.svg"));
  QString liveError;
  if (!m_live->connectTo(options.live, &liveError))
    qWarning("tally-dashboard: %s", qPrintable(liveError));

  m_banner = new QWidget(this);
  m_banner->setObjectName("collectorBanner");
  m_banner->setStyleSheet(
      "#collectorBanner { background: #fce8e6; border-bottom: 1px solid #f28b82; }");
  m_bannerText = new QLabel(m_banner);
  m_bannerText->setWordWrap(true);
  auto* retry = new QPushButton(tr("Retry now"), m_banner);
  connect(retry, &QPushButton::clicked, m_health, &HealthMonitor::checkNow);
  auto* bl = new QHBoxLayout(m_banner);
  bl->setContentsMargins(10, 6, 10, 6);
  bl->addWidget(m_bannerText, 1);
  bl->addWidget(retry);
  m_banner->hide();

  // The open dashboards: the tab bar shows once there are two (one dashboard looks as it always
  // did); tabs close with their × or Ctrl+W and move by dragging.
  m_tabs->setObjectName("dashboardTabs");
  m_tabs->setDocumentMode(true);
  m_tabs->setTabBarAutoHide(true);
  m_tabs->setTabsClosable(true);
  m_tabs->setMovable(true);
  m_tabs->setElideMode(Qt::ElideRight);
  connect(m_tabs, &QTabWidget::tabCloseRequested, this, [this](int i) { closeTab(i); });
  connect(m_tabs, &QTabWidget::currentChanged, this, &MainWindow::currentTabChanged);

  auto* central = new QWidget(this);
  auto* cl = new QVBoxLayout(central);
  cl->setContentsMargins(0, 0, 0, 0);
  cl->setSpacing(0);
  cl->addWidget(m_banner);
  cl->addWidget(m_tabs, 1);
  setCentralWidget(central);

  m_browser = new MetricBrowser(m_client, this);
  auto* dock = new QDockWidget(tr("Metrics"), this);
  dock->setObjectName("metricsDock");
  dock->setWidget(m_browser);
  m_browser->setMinimumWidth(240);
  dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
  addDockWidget(Qt::LeftDockWidgetArea, dock);
  connect(m_browser, &MetricBrowser::metricActivated, this, &MainWindow::addPanelForMetric);

  // Cardinality (docs/SECURITY.md): hidden until View > Cardinality; loads when shown.
  auto* cardinality = new CardinalityView(m_client, this);
  auto* cdock = new QDockWidget(tr("Cardinality"), this);
  cdock->setObjectName("cardinalityDock");
  cdock->setWidget(cardinality);
  addDockWidget(Qt::LeftDockWidgetArea, cdock);
  tabifyDockWidget(dock, cdock);
  cdock->hide();
  connect(cdock, &QDockWidget::visibilityChanged, cardinality, [cardinality](bool visible) {
    if (visible) cardinality->reload();
  });
  connect(cardinality, &CardinalityView::metricActivated, this, &MainWindow::addPanelForMetric);
  m_cardinalityDock = cdock;

  // Alerts (docs/DASHBOARD.md): each tab's panels' rules, evaluated once a second in every tab;
  // the current tab's are listed here, and what fires in any tab is raised as a desktop
  // notification (the system tray's, else the status bar).
  m_alertView = new QTableView(this);
  m_alertView->setObjectName("alertsView");
  m_alertView->verticalHeader()->setVisible(false);
  m_alertView->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_alertsDock = new QDockWidget(tr("Alerts"), this);
  m_alertsDock->setObjectName("alertsDock");
  m_alertsDock->setWidget(m_alertView);
  addDockWidget(Qt::BottomDockWidgetArea, m_alertsDock);
  m_alertsDock->hide();
  if (QSystemTrayIcon::isSystemTrayAvailable()) {
    m_tray = new QSystemTrayIcon(windowIcon(), this);
    m_tray->setToolTip(tr("Tally dashboard"));
    m_tray->show();
    connect(m_tray, &QSystemTrayIcon::messageClicked, this, [this] {
      m_alertsDock->show();
      raise();
      activateWindow();
    });
  }

  m_range = new TimeRangePicker(this);
  m_statusCollector = new QLabel(this);
  m_statusHealth = new QLabel(this);
  m_statusLive = new QLabel(this);
  m_statusCollector->setText(tr("Collector %1").arg(options.collector.toString()));
  statusBar()->addWidget(m_statusCollector);
  statusBar()->addWidget(m_statusHealth);
  statusBar()->addPermanentWidget(m_statusLive);

  buildActions();

  // Looking at another time (range, zoom, live) is not an edit: the file keeps the range it is
  // saved with, as Grafana does, and closing asks nothing.
  connect(m_range, &TimeRangePicker::rangeChanged, this,
          [this](const TimeRangeSpec& r) { canvas()->setRange(r); });
  connect(m_health, &HealthMonitor::updated, this, &MainWindow::updateHealth);
  connect(m_live, &LiveSubscriber::updatesReceived, m_health, &HealthMonitor::dataFlowed);
  connect(m_health, &HealthMonitor::stateChanged, this, [this](HealthMonitor::State s) {
    if (s != HealthMonitor::State::Unreachable && s != HealthMonitor::State::Healthy) return;
    for (DashboardTab* tab : allTabs())
      for (auto* p : tab->canvas()->panels())
        p->controller()->setCollectorReachable(s == HealthMonitor::State::Healthy,
                                               m_health->lastContact());
  });
  connect(m_health, &HealthMonitor::recovered, this, [this] {
    for (DashboardTab* tab : allTabs()) tab->canvas()->refreshAll();
    m_browser->reload();
  });
  auto* countdown = new QTimer(this);
  countdown->start(1000);
  connect(countdown, &QTimer::timeout, this, &MainWindow::updateHealth);

  // The dashboards to show: the ones asked for, else those open when the app last closed (each in
  // its tab), else the last one, else the demo.
  addTab();
  bool shown = false;
  if (!options.dashboard.isEmpty()) {
    shown = QFileInfo::exists(options.dashboard) && openDashboard(options.dashboard, true);
    for (const QString& more : options.moreDashboards) {
      if (!shown) {
        shown = openDashboard(more, true);
        continue;
      }
      if (!tabWithFile(more)) openInNewTab(more);
    }
    m_tabs->setCurrentIndex(0);  // the first one given is in front
  } else {
    shown = restoreSession();
    const QString last = document()->lastDashboard();
    if (!shown && !last.isEmpty() && QFileInfo::exists(last)) shown = openDashboard(last, false);
  }
  if (!shown) setDashboard(DashboardDocument::builtin(":/tally/dashboards/demo.json"), QString());
  m_health->start();
  m_browser->reload();
  // The size and place the window had when it was last closed.
  if (!restoreGeometry(QSettings().value("window/geometry").toByteArray())) resize(1400, 900);
}

void MainWindow::buildActions() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&New dashboard"), QKeySequence::New, this, &MainWindow::newDashboard);
  file->addAction(tr("&Open…"), QKeySequence::Open, this, &MainWindow::open);
  QAction* newTabAction =
      file->addAction(tr("New &tab"), QKeySequence::AddTab, this, [this] { newTab(); });
  newTabAction->setObjectName("newTabAction");
  QAction* openTab = file->addAction(tr("Open in new ta&b…"), QKeySequence(tr("Ctrl+Shift+O")),
                                     this, [this] { openInNewTab(); });
  openTab->setObjectName("openInNewTabAction");
  QAction* newWindow =
      file->addAction(tr("Open in new &window…"), this, [this] { openInNewWindow(); });
  newWindow->setObjectName("openInNewWindowAction");
  QAction* closeTabAction = file->addAction(tr("&Close tab"), QKeySequence::Close, this,
                                            [this] { closeTab(m_tabs->currentIndex()); });
  closeTabAction->setObjectName("closeTabAction");
  m_recentMenu = file->addMenu(tr("Open &recent"));
  QMenu* shipped = file->addMenu(tr("Open shipped dashboard"));
  shipped->addAction(tr("Tally demo"), this, [this] {
    if (maybeSave())
      setDashboard(DashboardDocument::builtin(":/tally/dashboards/demo.json"), QString());
  });
  shipped->addAction(tr("Collector health"), this, [this] {
    if (maybeSave())
      setDashboard(DashboardDocument::builtin(":/tally/dashboards/collector-health.json"),
                   QString());
  });
  file->addSeparator();
  file->addAction(tr("&Save"), QKeySequence::Save, this, &MainWindow::save);
  file->addAction(tr("Save &as…"), QKeySequence::SaveAs, this, &MainWindow::saveAs);
  file->addAction(tr("&Duplicate"), this, &MainWindow::duplicate);
  file->addAction(tr("&Import…"), this, &MainWindow::importDashboard);
  file->addAction(tr("&Export dashboard file…"), this, &MainWindow::exportDashboard);
  file->addAction(tr("Export dashboard &image…"), this, &MainWindow::exportDashboardImage);
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

  QMenu* edit = menuBar()->addMenu(tr("&Edit"));
  // Undo and redo of every edit (DashboardCanvas::undoStack): "Undo Remove panel “Errors”".
  // The group follows the current tab: each tab keeps its own history.
  QAction* undo = m_undoGroup->createUndoAction(this, tr("&Undo"));
  undo->setShortcut(QKeySequence::Undo);
  undo->setObjectName("undoAction");
  edit->addAction(undo);
  QAction* redo = m_undoGroup->createRedoAction(this, tr("&Redo"));
  redo->setShortcut(QKeySequence::Redo);
  redo->setObjectName("redoAction");
  edit->addAction(redo);

  QMenu* dash = menuBar()->addMenu(tr("&Dashboard"));
  QAction* sources = dash->addAction(tr("Data &sources…"), this, &MainWindow::editDataSources);
  sources->setObjectName("dataSourcesAction");
  sources->setToolTip(
      tr("Prometheus-compatible servers (VictoriaMetrics, Prometheus) panels can read"));
  QAction* addRowAction = dash->addAction(tr("Add &row"), this, [this] {
    bool ok = false;
    const QString t = QInputDialog::getText(this, tr("Add row"), tr("Row title:"),
                                            QLineEdit::Normal, tr("Row"), &ok);
    if (ok) canvas()->addRow(t.trimmed());
  });
  addRowAction->setObjectName("addRowAction");
  addRowAction->setToolTip(tr("A header that groups the panels below it and collapses them"));
  QAction* annotate =
      dash->addAction(tr("Add a&nnotation…"), this, [this] { canvas()->annotate(); });
  annotate->setObjectName("annotateAction");
  annotate->setToolTip(
      tr("Mark an event (a deploy, an incident) on every panel; or right-click a chart there"));
  QAction* vars = dash->addAction(tr("&Variables…"), this, &MainWindow::editVariables);
  vars->setObjectName("variablesAction");
  vars->setToolTip(tr("Drop-downs of a tag's values above the panels; panels use them as $name"));

  QMenu* view = menuBar()->addMenu(tr("&View"));
  QAction* card = m_cardinalityDock->toggleViewAction();
  card->setText(tr("&Cardinality"));
  card->setObjectName("cardinalityAction");
  view->addAction(card);
  QAction* alertsAction = m_alertsDock->toggleViewAction();
  alertsAction->setText(tr("&Alerts"));
  alertsAction->setObjectName("alertsAction");
  view->addAction(alertsAction);
  // Theme: follows the desktop unless chosen (theme.h); panels redraw in it at once.
  QMenu* themeMenu = view->addMenu(tr("&Theme"));
  auto* themes = new QActionGroup(this);
  for (auto [mode, label] :
       {std::pair{Theme::Mode::System, tr("Follow the &desktop")},
        std::pair{Theme::Mode::Light, tr("&Light")}, std::pair{Theme::Mode::Dark, tr("&Dark")}}) {
    QAction* a = themeMenu->addAction(label);
    a->setCheckable(true);
    a->setChecked(Theme::mode() == mode);
    a->setObjectName(QStringLiteral("theme_%1").arg(Theme::modeName(mode)));
    themes->addAction(a);
    connect(a, &QAction::triggered, this, [this, m = mode] {
      Theme::setMode(m);
      for (DashboardTab* tab : allTabs())
        for (PanelWidget* p : tab->canvas()->panels()) p->flushRedraw();
    });
  }

  QToolBar* tb = addToolBar(tr("Dashboard"));
  tb->setObjectName("mainToolbar");
  tb->setMovable(false);
  QAction* addPanel = tb->addAction(tr("Add panel"), this, [this] {
    PanelSpec s;
    s.grid.h = 5;
    PanelWidget* p = canvas()->addPanel(s);
    canvas()->editPanel(p);
  });
  addPanel->setObjectName("addPanelAction");
  addPanel->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_A));
  tb->addAction(sources);
  tb->addSeparator();
  tb->addWidget(new QLabel(tr(" Range "), tb));
  tb->addWidget(m_range);
  m_liveAction = tb->addAction(tr("Live"));
  m_liveAction->setObjectName("liveAction");
  m_liveAction->setCheckable(true);
  m_liveAction->setToolTip(tr("Follow new data as it arrives (the window slides)"));
  m_liveAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_L));
  connect(m_liveAction, &QAction::toggled, this, [this](bool on) {
    if (on == canvas()->isLive()) return;
    canvas()->setLive(on);
  });
  QAction* refresh = tb->addAction(tr("Refresh"), this, [this] { canvas()->refreshAll(); });
  refresh->setShortcut(QKeySequence::Refresh);
  QAction* rename = tb->addAction(tr("Rename…"));
  rename->setShortcut(QKeySequence(Qt::Key_F2));
  connect(rename, &QAction::triggered, this, [this] {
    bool ok = false;
    QString t = QInputDialog::getText(this, tr("Dashboard title"), tr("Title:"), QLineEdit::Normal,
                                      QString::fromStdString(canvas()->dashboard().title), &ok);
    if (!ok || t.trimmed().isEmpty()) return;
    canvas()->setTitle(t.trimmed());
    canvas()->noteEdited();  // a step to undo; marks the dashboard modified
    updateTitle();
  });

  QAction* nextTab = view->addAction(tr("&Next tab"), this, [this] {
    if (m_tabs->count() > 1)
      m_tabs->setCurrentIndex((m_tabs->currentIndex() + 1) % m_tabs->count());
  });
  nextTab->setShortcuts({QKeySequence(Qt::CTRL | Qt::Key_PageDown), QKeySequence::NextChild});
  nextTab->setObjectName("nextTabAction");
  QAction* prevTab = view->addAction(tr("&Previous tab"), this, [this] {
    if (m_tabs->count() > 1)
      m_tabs->setCurrentIndex((m_tabs->currentIndex() + m_tabs->count() - 1) % m_tabs->count());
  });
  prevTab->setShortcuts({QKeySequence(Qt::CTRL | Qt::Key_PageUp), QKeySequence::PreviousChild});
  prevTab->setObjectName("previousTabAction");

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  QAction* keys = help->addAction(tr("&Keyboard shortcuts"), this, &MainWindow::showShortcuts);
  keys->setObjectName("shortcutsAction");
  keys->setShortcut(QKeySequence::HelpContents);
}

void MainWindow::showShortcuts() {
  // Built from the window's own actions each time, so the list cannot drift from the keys.
  if (!m_shortcuts) {
    m_shortcuts = new QDialog(this);
    m_shortcuts->setObjectName("shortcutsDialog");
    m_shortcuts->setWindowTitle(tr("Keyboard shortcuts"));
    auto* layout = new QVBoxLayout(m_shortcuts);
    auto* table = new QTableWidget(0, 2, m_shortcuts);
    table->setObjectName("shortcutsTable");
    table->setHorizontalHeaderLabels({tr("Action"), tr("Keys")});
    table->horizontalHeader()->setStretchLastSection(true);
    table->verticalHeader()->hide();
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    layout->addWidget(table);
    auto* close = new QDialogButtonBox(QDialogButtonBox::Close, m_shortcuts);
    connect(close, &QDialogButtonBox::rejected, m_shortcuts, &QDialog::reject);
    layout->addWidget(close);
    m_shortcuts->resize(460, 520);
  }
  auto* table = m_shortcuts->findChild<QTableWidget*>("shortcutsTable");
  QList<QPair<QString, QString>> rows;
  QSet<QAction*> seen;
  auto collect = [&](QAction* a) {
    if (!a || seen.contains(a) || a->shortcut().isEmpty()) return;
    seen.insert(a);
    QString name = a->text();
    name.remove('&');
    if (name.endsWith(QStringLiteral("…"))) name.chop(1);
    rows.append({name, a->shortcut().toString(QKeySequence::NativeText)});
  };
  for (QAction* menu : menuBar()->actions())
    if (menu->menu())
      for (QAction* a : menu->menu()->actions()) collect(a);
  for (QAction* a : findChildren<QAction*>()) collect(a);
  // What the charts do with the mouse (no key to list, but nowhere else to find it).
  rows.append({tr("Zoom into a time span"), tr("Drag across a chart")});
  rows.append({tr("Pan"), tr("Right-drag or Shift+drag")});
  rows.append({tr("Zoom around the cursor"), tr("Mouse wheel")});
  rows.append({tr("Reset the zoom"), tr("Double-click a chart")});
  rows.append({tr("Hide or show a series"), tr("Click its legend entry")});
  table->setRowCount(int(rows.size()));
  for (int i = 0; i < rows.size(); ++i) {
    table->setItem(i, 0, new QTableWidgetItem(rows[i].first));
    table->setItem(i, 1, new QTableWidgetItem(rows[i].second));
  }
  table->resizeColumnToContents(0);
  m_shortcuts->show();
  m_shortcuts->raise();
}

void MainWindow::setDashboard(const Dashboard& d, const QString& path) {
  canvas()->setDashboard(d);
  m_range->setRange(d.range);
  m_liveAction->blockSignals(true);
  m_liveAction->setChecked(d.live);
  m_liveAction->blockSignals(false);
  document()->setPath(path);
  document()->setModified(false);
  if (!path.isEmpty()) {
    document()->addRecent(path);
    document()->rememberLast(path);
  }
  updateTitle();
}

void MainWindow::setTimeRange(const TimeRangeSpec& range) {
  m_range->setRange(range);
  canvas()->setRange(range);
}

void MainWindow::showError(const QString& title, const QString& text) {
  if (m_interactive)
    QMessageBox::warning(this, title, text);
  else
    qWarning("tally-dashboard: %s", qPrintable(text));
}

std::set<std::string> MainWindow::askAboutNewHosts(const Dashboard& d, const QString& path) {
  std::set<std::string> blocked;
  for (const DataSource& s : hostApproval::unapproved(d)) {
    HostApprovalDialog dialog(s, QFileInfo(path).fileName(), this);
    if (dialog.exec() == QDialog::Accepted) {
      hostApproval::approve(s);
    } else {
      blocked.insert(s.name);
      qInfo("tally-dashboard: event=host_not_approved host=%s source=%s",
            urlHostPort(s.url).c_str(), s.name.c_str());
    }
  }
  return blocked;
}

// Opened (or imported) from a file: ask about new hosts before any request goes out, then say
// what the file's secrets need.
void MainWindow::showFileDashboard(const Dashboard& d, const QString& path,
                                   const QString& shownPath,
                                   const DashboardDocument::SecretNotes& notes) {
  canvas()->dataSources()->setBlocked(askAboutNewHosts(d, path));
  setDashboard(d, shownPath);
  currentTab()->secretsInFile() = notes.inFile;
  if (!notes.inFile.isEmpty()) document()->setModified(true);  // saving moves them out
  if (const QString text = notes.text(); !text.isEmpty()) {
    statusBar()->showMessage(text, 30000);
    qInfo("tally-dashboard: %s", qPrintable(text));
  }
}

bool MainWindow::openDashboard(const QString& path, bool interactive) {
  Dashboard d;
  QString error;
  DashboardDocument::SecretNotes notes;
  if (!DashboardDocument::read(path, &d, &error, &notes)) {
    m_interactive = interactive;
    showError(tr("Cannot open dashboard"),
              tr("The dashboard was not opened and nothing was changed.\n\n%1").arg(error));
    m_interactive = true;
    statusBar()->showMessage(error, 15000);
    return false;
  }
  showFileDashboard(d, path, QFileInfo(path).absoluteFilePath(), notes);
  QSettings().setValue("folders/dashboards", QFileInfo(path).absolutePath());
  return true;
}

bool MainWindow::saveDashboard(const QString& path) {
  // An untitled dashboard takes its file's name, so the window and the recent list say which.
  if (canvas()->dashboard().title == Dashboard{}.title)
    canvas()->setTitle(QFileInfo(path).completeBaseName());
  QString error;
  if (!DashboardDocument::write(canvas()->dashboard(), path, &error)) {
    showError(tr("Cannot save dashboard"), error);
    return false;
  }
  if (QStringList& secrets = currentTab()->secretsInFile(); !secrets.isEmpty()) {
    const QString text =
        tr("Moved the secret header values (%1) out of the dashboard file into %2.")
            .arg(secrets.join(", "), SecretStore::instance().describe());
    statusBar()->showMessage(text, 30000);
    qInfo("tally-dashboard: event=secrets_moved %s", qPrintable(text));
    secrets.clear();
  }
  document()->setPath(QFileInfo(path).absoluteFilePath());
  document()->setModified(false);
  canvas()->undoStack()->setClean();
  document()->addRecent(path);
  document()->rememberLast(path);
  QSettings().setValue("folders/dashboards", QFileInfo(path).absolutePath());
  updateTitle();
  return true;
}

void MainWindow::newDashboard() {
  if (!maybeSave()) return;
  Dashboard d;
  d.range = canvas()->range();
  d.live = true;
  setDashboard(d, QString());
}

// The folder of the last dashboard opened or saved, else the app's own.
static QString dashboardsDir() {
  const QString last = QSettings().value("folders/dashboards").toString();
  if (!last.isEmpty() && QFileInfo(last).isDir()) return last;
  QString dir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + "/dashboards";
  QDir().mkpath(dir);
  return dir;
}

// The file dialog every "open a dashboard" action shows; empty when the user cancels.
static QString askDashboardFile(QWidget* parent, const QString& title, const QString& dir) {
  return QFileDialog::getOpenFileName(parent, title, dir,
                                      MainWindow::tr("Tally dashboards (*.json);;All files (*)"));
}

void MainWindow::open() {
  if (!maybeSave()) return;
  QString path = askDashboardFile(this, tr("Open dashboard"), dashboardsDir());
  if (path.isEmpty()) return;
  // A file open in another tab is shown there, not opened twice.
  if (DashboardTab* open = tabWithFile(path); open && open != currentTab())
    m_tabs->setCurrentWidget(open);
  else
    openDashboard(path);
}

bool MainWindow::save() {
  if (document()->path().isEmpty()) return saveAs();
  return saveDashboard(document()->path());
}

bool MainWindow::saveAs() {
  QString suggested = dashboardsDir() + "/" +
                      QString::fromStdString(canvas()->dashboard().title)
                          .replace(QRegularExpression("[^A-Za-z0-9._-]+"), "-") +
                      ".json";
  QString path = QFileDialog::getSaveFileName(this, tr("Save dashboard"), suggested,
                                              tr("Tally dashboards (*.json)"));
  if (path.isEmpty()) return false;
  if (!path.endsWith(".json")) path += ".json";
  return saveDashboard(path);
}

MainWindow* MainWindow::openInNewWindow(const QString& given) {
  QString path = given;
  if (path.isEmpty()) {
    path = askDashboardFile(this, tr("Open dashboard in a new window"), dashboardsDir());
    if (path.isEmpty()) return nullptr;
  }
  Dashboard d;
  QString error;
  if (!DashboardDocument::read(path, &d, &error)) {
    showError(tr("Cannot open dashboard"), error);
    return nullptr;
  }
  MainWindowOptions o = m_options;
  o.dashboard = path;
  auto* w = new MainWindow(o);
  w->setAttribute(Qt::WA_DeleteOnClose);
  w->show();
  return w;
}

void MainWindow::duplicate() {
  // The copy opens in a tab of its own; the original stays open as it is.
  Dashboard d = canvas()->dashboard();
  d.title = tr("Copy of %1").arg(QString::fromStdString(d.title)).toStdString();
  const std::set<std::string> blocked = canvas()->dataSources()->blocked();
  m_tabs->setCurrentWidget(addTab());
  canvas()->dataSources()->setBlocked(blocked);
  setDashboard(d, QString());
  document()->setModified(true);
  statusBar()->showMessage(tr("Duplicated: this copy is not saved yet"), 8000);
}

void MainWindow::importDashboard() {
  if (!maybeSave()) return;
  QString path = askDashboardFile(this, tr("Import dashboard"), QString());
  if (path.isEmpty()) return;
  Dashboard d;
  QString error;
  DashboardDocument::SecretNotes notes;
  if (!DashboardDocument::read(path, &d, &error, &notes)) {
    showError(tr("Cannot import dashboard"), error);
    return;
  }
  // An import is a new, unsaved copy: the original file is never written.
  showFileDashboard(d, path, QString(), notes);
  document()->setModified(true);
}

void MainWindow::exportDashboard() {
  QString path = QFileDialog::getSaveFileName(this, tr("Export dashboard file"), QString(),
                                              tr("Tally dashboards (*.json)"));
  if (path.isEmpty()) return;
  QString error;
  if (!DashboardDocument::write(canvas()->dashboard(), path, &error))
    showError(tr("Export failed"), error);
}

void MainWindow::exportDashboardImage() {
  bool ok = false;
  QString sizeText = QInputDialog::getText(this, tr("Export dashboard image"),
                                           tr("Size in pixels (WIDTHxHEIGHT):"), QLineEdit::Normal,
                                           "1600x900", &ok);
  if (!ok) return;
  QSize size = Exporter::parseSize(sizeText);
  if (!size.isValid()) {
    showError(tr("Export failed"), tr("'%1' is not a size like 1600x900").arg(sizeText));
    return;
  }
  QString path = QFileDialog::getSaveFileName(this, tr("Export dashboard image"), "dashboard.png",
                                              tr("PNG (*.png);;SVG (*.svg);;PDF (*.pdf)"));
  if (path.isEmpty()) return;
  QList<const PanelController*> panels;
  for (auto* p : canvas()->panels()) panels << p->controller();
  Dashboard d = canvas()->dashboard();
  QString error;
  QString subtitle = m_range->combo()->currentText();
  if (!Exporter::writeDashboardImage(QString::fromStdString(d.title), subtitle, panels, path, size,
                                     &error))
    showError(tr("Export failed"), error);
}

void MainWindow::addPanelForMetric(const QString& metric) {
  canvas()->addPanel(panelForMetric(metric.toStdString(), m_browser->model()->metricKind(metric),
                                    m_browser->currentSource().toStdString()));
}

void MainWindow::editVariables() {
  VariablesDialog dlg(m_client, canvas()->dataSources(), canvas()->variables(), this);
  if (dlg.exec() != QDialog::Accepted) return;
  if (dlg.variables() != canvas()->variables()) canvas()->setVariables(dlg.variables());
}

bool MainWindow::setVariableArg(const QString& arg, QString* error) {
  std::vector<Variable> vars = canvas()->variables();
  if (auto s = setVariableFromArg(vars, arg.toStdString()); !s) {
    *error = QString::fromStdString(s.message());
    return false;
  }
  for (const auto& v : vars) canvas()->setVariableValues(v.name, v.current);
  return true;
}

void MainWindow::editDataSources() {
  DataSourcesDialog dialog(
      canvas()->dataSources()->sources(),
      [this](const std::string& name) { return canvas()->panelsUsingSource(name); }, this);
  if (dialog.exec() != QDialog::Accepted) return;
  const std::vector<DataSource> before = canvas()->dataSources()->sources();
  if (dialog.sources() == before && dialog.renamed().empty()) return;
  // A source the user added or whose URL or headers they changed is theirs: approved, and no
  // longer blocked. An unchanged one keeps its state (under its new name if renamed).
  std::set<std::string> blocked;
  const auto renamed = dialog.renamed();
  for (const DataSource& s : dialog.sources()) {
    std::string oldName = s.name;
    for (const auto& [from, to] : renamed)
      if (to == s.name) oldName = from;
    auto old = std::find_if(before.begin(), before.end(),
                            [&](const DataSource& b) { return b.name == oldName; });
    if (old == before.end() || old->url != s.url || old->headers != s.headers)
      hostApproval::approve(s);
    else if (canvas()->dataSources()->blocked().count(oldName))
      blocked.insert(s.name);
  }
  canvas()->dataSources()->setBlocked(blocked);
  canvas()->setSources(dialog.sources(), dialog.renamed());
  canvas()->noteEdited();
  document()->setModified(true);
}

bool MainWindow::maybeSave() {
  if (!document()->isModified() || canvas()->panels().isEmpty()) return true;
  auto answer = QMessageBox::question(
      this, tr("Unsaved dashboard"),
      tr("Save the changes to “%1”?").arg(QString::fromStdString(canvas()->dashboard().title)),
      QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel);
  if (answer == QMessageBox::Save) return save();
  return answer == QMessageBox::Discard;
}

void MainWindow::closeEvent(QCloseEvent* e) {
  rememberSession();
  document()->rememberLast(document()->path());
  // Each modified tab asks in turn, shown while it asks.
  for (DashboardTab* tab : allTabs()) {
    if (!tab->document()->isModified()) continue;
    m_tabs->setCurrentWidget(tab);
    if (!maybeSave()) {
      e->ignore();
      return;
    }
  }
  QSettings().setValue("window/geometry", saveGeometry());
  e->accept();
}

DashboardTab* MainWindow::currentTab() const {
  return qobject_cast<DashboardTab*>(m_tabs->currentWidget());
}
DashboardCanvas* MainWindow::canvas() const {
  return currentTab()->canvas();
}
DashboardDocument* MainWindow::document() const {
  return currentTab()->document();
}
VariableBar* MainWindow::variableBar() const {
  return currentTab()->variableBar();
}
AlertManager* MainWindow::alerts() const {
  return currentTab()->alerts();
}

QList<DashboardTab*> MainWindow::allTabs() const {
  QList<DashboardTab*> tabs;
  for (int i = 0; i < m_tabs->count(); ++i)
    if (auto* t = qobject_cast<DashboardTab*>(m_tabs->widget(i))) tabs << t;
  return tabs;
}

DashboardTab* MainWindow::addTab() {
  auto* tab = new DashboardTab(m_client, m_live, m_tabs);
  m_undoGroup->addStack(tab->canvas()->undoStack());
  DashboardDocument* doc = tab->document();
  connect(doc, &DashboardDocument::changed, this, [this, tab] {
    updateTabText(tab);
    if (tab == currentTab()) updateTitle();
    updateRecentMenu();
  });
  connect(tab->canvas(), &DashboardCanvas::modified, this, [this, tab] { updateTabText(tab); });
  connect(tab->canvas(), &DashboardCanvas::panelRemoved, this, [this, tab](const QString& title) {
    if (tab != currentTab()) return;
    statusBar()->showMessage(tr("Removed “%1”. Edit › Undo (%2) puts it back.")
                                 .arg(title, QKeySequence(QKeySequence::Undo).toString()),
                             15000);
  });
  // Annotations belong to the collector: one added or deleted here shows in every tab.
  auto annotationsChanged = [this](const QString& what) {
    for (DashboardTab* t : allTabs()) t->canvas()->refreshAnnotations();
    statusBar()->showMessage(what, 8000);
  };
  connect(tab->canvas(), &DashboardCanvas::annotationPosted, this,
          [annotationsChanged] { annotationsChanged(tr("Annotation added")); });
  connect(tab->canvas(), &DashboardCanvas::annotationDeleted, this,
          [annotationsChanged] { annotationsChanged(tr("Annotation deleted")); });
  connect(tab->canvas(), &DashboardCanvas::annotationFailed, this, [this](const QString& reason) {
    showError(tr("Annotation not changed"),
              tr("The collector did not take the change: %1\n\nWhere the collector has tokens, "
                 "annotations need an admin token in TALLY_TOKEN (docs/SECURITY.md).")
                  .arg(reason));
  });
  AlertManager* alerts = tab->alerts();
  connect(alerts, &AlertManager::firingCountChanged, this, [this, tab] { updateTabText(tab); });
  connect(
      alerts, &AlertManager::fired, this,
      [this, tab](const QString& panel, const QString& series, double value, const QString& rule) {
        const QString title = allTabs().size() > 1
                                  ? tr("Alert firing: %1 › %2").arg(tab->title(), panel)
                                  : tr("Alert firing: %1").arg(panel);
        const QString text = tr("%1 = %2 (%3)").arg(series).arg(value).arg(rule);
        if (m_tray) m_tray->showMessage(title, text, QSystemTrayIcon::Warning, 10000);
        statusBar()->showMessage(title + " — " + text, 30000);
        if (tab == currentTab()) m_alertsDock->show();
      });
  connect(alerts, &AlertManager::resolved, this,
          [this](const QString& panel, const QString& series) {
            if (m_tray)
              m_tray->showMessage(tr("Alert resolved: %1").arg(panel), series,
                                  QSystemTrayIcon::Information, 5000);
          });
  m_tabs->addTab(tab, tab->tabText());
  updateTabText(tab);
  return tab;
}

void MainWindow::currentTabChanged() {
  DashboardTab* tab = currentTab();
  if (!tab || !m_liveAction) return;
  DashboardCanvas* c = tab->canvas();
  m_undoGroup->setActiveStack(c->undoStack());
  m_range->setRange(c->range());
  m_liveAction->blockSignals(true);
  m_liveAction->setChecked(c->isLive());
  m_liveAction->blockSignals(false);
  m_browser->setDataSources(c->dataSources());
  m_alertView->setModel(tab->alerts());
  m_alertView->horizontalHeader()->setStretchLastSection(true);
  updateTitle();
  updateRecentMenu();
  updateHealth();
}

void MainWindow::updateTabText(DashboardTab* tab) {
  const int i = m_tabs->indexOf(tab);
  if (i < 0) return;
  m_tabs->setTabText(i, tab->tabText());
  m_tabs->setTabToolTip(i, tab->document()->path().isEmpty()
                               ? tr("%1 (not saved)").arg(tab->title())
                               : tab->document()->path());
}

DashboardTab* MainWindow::tabWithFile(const QString& path) const {
  const QString abs = QFileInfo(path).absoluteFilePath();
  for (DashboardTab* tab : allTabs())
    if (!tab->document()->path().isEmpty() && tab->document()->path() == abs) return tab;
  return nullptr;
}

DashboardTab* MainWindow::newTab() {
  Dashboard d;
  d.range = canvas()->range();
  d.live = true;
  m_tabs->setCurrentWidget(addTab());
  setDashboard(d, QString());
  return currentTab();
}

DashboardTab* MainWindow::openInNewTab(const QString& given) {
  QString path = given;
  if (path.isEmpty()) {
    path = askDashboardFile(this, tr("Open dashboard in a new tab"), dashboardsDir());
    if (path.isEmpty()) return nullptr;
  }
  if (DashboardTab* open = tabWithFile(path)) {
    m_tabs->setCurrentWidget(open);
    return open;
  }
  Dashboard d;
  QString error;
  DashboardDocument::SecretNotes notes;
  if (!DashboardDocument::read(path, &d, &error, &notes)) {
    showError(tr("Cannot open dashboard"),
              tr("The dashboard was not opened and nothing was changed.\n\n%1").arg(error));
    return nullptr;
  }
  m_tabs->setCurrentWidget(addTab());
  showFileDashboard(d, path, QFileInfo(path).absoluteFilePath(), notes);
  QSettings().setValue("folders/dashboards", QFileInfo(path).absolutePath());
  return currentTab();
}

bool MainWindow::closeTab(int index) {
  auto* tab = qobject_cast<DashboardTab*>(m_tabs->widget(index));
  if (!tab) return false;
  if (tab->document()->isModified()) {  // asked about in front; an unmodified one closes in place
    m_tabs->setCurrentWidget(tab);
    if (!maybeSave()) return false;
  }
  if (m_tabs->count() == 1) {  // the window always shows a dashboard: a new, empty one
    newTab();
  }
  m_undoGroup->removeStack(tab->canvas()->undoStack());
  m_tabs->removeTab(m_tabs->indexOf(tab));
  tab->deleteLater();
  return true;
}

// The saved dashboards open in tabs, in their order, and which one was in front.
void MainWindow::rememberSession() {
  QStringList paths;
  int current = 0;
  for (DashboardTab* tab : allTabs()) {
    if (tab->document()->path().isEmpty()) continue;
    if (tab == currentTab()) current = int(paths.size());
    paths << tab->document()->path();
  }
  QSettings settings;
  settings.setValue("session/tabs", paths);
  settings.setValue("session/current", current);
}

bool MainWindow::restoreSession() {
  QSettings settings;
  const QStringList paths = settings.value("session/tabs").toStringList();
  const int current = settings.value("session/current").toInt();
  DashboardTab* front = nullptr;
  bool any = false;
  for (int i = 0; i < paths.size(); ++i) {
    const QString& path = paths[i];
    if (!QFileInfo::exists(path) || tabWithFile(path)) continue;
    DashboardTab* tab = nullptr;
    if (!any) {
      if (!openDashboard(path, false)) continue;
      tab = currentTab();
    } else {
      m_interactive = false;
      tab = openInNewTab(path);
      m_interactive = true;
      if (!tab) continue;
    }
    any = true;
    if (i == current) front = tab;
  }
  if (front) m_tabs->setCurrentWidget(front);
  return any;
}

void MainWindow::updateTitle() {
  updateTabText(currentTab());
  setWindowTitle(QStringLiteral("%1%2 — %3 — Tally")
                     .arg(QString::fromStdString(canvas()->dashboard().title),
                          document()->isModified() ? "*" : "", document()->displayName()));
}

void MainWindow::updateRecentMenu() {
  m_recentMenu->clear();
  for (const QString& path : document()->recentFiles())
    m_recentMenu->addAction(path, this, [this, path] {
      if (DashboardTab* open = tabWithFile(path); open && open != currentTab())
        m_tabs->setCurrentWidget(open);
      else if (maybeSave())
        openDashboard(path);
    });
  m_recentMenu->setEnabled(!m_recentMenu->isEmpty());
}

static QString humanDuration(int64_t s) {
  if (s >= 86400) return QStringLiteral("%1d %2h").arg(s / 86400).arg(s % 86400 / 3600);
  if (s >= 3600) return QStringLiteral("%1h %2m").arg(s / 3600).arg(s % 3600 / 60);
  if (s >= 60) return QStringLiteral("%1m").arg(s / 60);
  return QStringLiteral("%1s").arg(std::max<int64_t>(0, s));
}

void MainWindow::updateHealth() {
  using S = HealthMonitor::State;
  const auto& h = m_health->lastHealth();
  switch (m_health->state()) {
    case S::Unknown:
      m_statusHealth->setText(tr("● connecting…"));
      break;
    case S::Healthy:
      m_statusHealth->setText(tr("<span style='color:#188038'>●</span> healthy, %1 series, up %2")
                                  .arg(h.series)
                                  .arg(humanDuration(h.uptimeS)));
      break;
    case S::Unhealthy:
      m_statusHealth->setText(
          tr("<span style='color:#e37400'>●</span> unhealthy: %1").arg(m_health->reason()));
      break;
    case S::Unreachable:
      m_statusHealth->setText(tr("<span style='color:#d93025'>●</span> unreachable"));
      break;
  }
  const bool bad = m_health->state() == S::Unreachable || m_health->state() == S::Unhealthy;
  if (bad) {
    QString what = m_health->state() == S::Unreachable
                       ? tr("Cannot reach the collector at %1: %2")
                       : tr("The collector at %1 reports a problem: %2");
    m_bannerText->setText(what.arg(m_client->baseUrl().toString(), m_health->reason()) +
                          tr(" — retrying in %1 s.").arg(m_health->nextRetrySeconds()));
  }
  m_banner->setVisible(bad);
  m_statusLive->setText(
      canvas()->isLive()
          ? tr("live %1 · %2 updates").arg(m_live->endpoint()).arg(m_live->framesReceived())
          : tr("live off"));
}
