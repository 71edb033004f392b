// DashboardDocument: the dashboard file behind the window: load and save (JSON, docs/DASHBOARD.md),
// the recent list and the last dashboard (QSettings), the modified flag.
// Loading never changes anything on disk: a corrupt or newer file is reported with its path and
// what is wrong, and the current dashboard stays. Saving writes through QSaveFile, so a failed
// save leaves the old file whole.
#pragma once

#include <QObject>
#include <QStringList>

#include "core/dashboard.h"

class DashboardDocument : public QObject {
  Q_OBJECT
 public:
  explicit DashboardDocument(QObject* parent = nullptr);

  QString path() const { return m_path; }
  void setPath(const QString& path);  // "" = not saved yet
  bool isModified() const { return m_modified; }
  void setModified(bool modified);
  QString displayName() const;

  // Reads and validates a dashboard file; error says "<path>: <what is wrong>".
  static bool read(const QString& path, tally::dash::Dashboard* out, QString* error);
  static bool write(const tally::dash::Dashboard& d, const QString& path, QString* error);
  // A shipped dashboard (":/tally/dashboards/demo.json").
  static tally::dash::Dashboard builtin(const QString& resource);

  QStringList recentFiles() const;
  void addRecent(const QString& path);
  QString lastDashboard() const;
  void rememberLast(const QString& path);
  static constexpr int kMaxRecent = 10;

 signals:
  void changed();  // path, modified flag or recent list

 private:
  QString m_path;
  bool m_modified = false;
};
