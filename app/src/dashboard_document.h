// DashboardDocument: the dashboard file behind the window: load and save (JSON, docs/DASHBOARD.md),
// the recent list and the last dashboard (QSettings), the modified flag.
// Secret header values (core/dashboard.h, storedAsSecret) never go into the file: write() puts
// them in the user's SecretStore and the file names them; read() takes them from there. A file
// that still holds such a value itself (written before secrets moved out) opens as it is, and the
// next write() moves the value out.
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

  // What read() found about the file's secrets, to tell the user ("vm: Authorization" each).
  struct SecretNotes {
    QStringList inFile;    // values the file holds itself: they move out at the next save
    QStringList missing;   // references the secret store does not hold (or could not be read)
    QString text() const;  // one paragraph for people; empty when there is nothing to say
  };

  // Reads and validates a dashboard file and fills in its secrets from the SecretStore; error
  // says "<path>: <what is wrong>". A secret the store does not hold stays empty (its source's
  // requests fail saying so) and is listed in `notes`.
  static bool read(const QString& path, tally::dash::Dashboard* out, QString* error,
                   SecretNotes* notes = nullptr);
  // Stores the secrets first (a secret that cannot be stored fails the save: the file is not
  // written), then the file, which holds references only. `storedSecrets` gets the count.
  static bool write(const tally::dash::Dashboard& d, const QString& path, QString* error,
                    int* storedSecrets = nullptr);
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
