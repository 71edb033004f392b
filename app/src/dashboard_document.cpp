#include "dashboard_document.h"

#include <QFile>
#include <QFileInfo>
#include <QSaveFile>
#include <QSettings>

#include "secret_store.h"

using namespace tally::dash;

DashboardDocument::DashboardDocument(QObject* parent) : QObject(parent) {}

void DashboardDocument::setPath(const QString& path) {
  m_path = path;
  emit changed();
}

void DashboardDocument::setModified(bool modified) {
  if (m_modified == modified) return;
  m_modified = modified;
  emit changed();
}

QString DashboardDocument::displayName() const {
  return m_path.isEmpty() ? tr("unsaved") : QFileInfo(m_path).fileName();
}

bool DashboardDocument::read(const QString& path, Dashboard* out, QString* error,
                             SecretNotes* notes) {
  QFile f(path);
  if (!f.open(QIODevice::ReadOnly)) {
    if (error) *error = QStringLiteral("%1: %2").arg(path, f.errorString());
    return false;
  }
  if (f.size() > 16 * 1024 * 1024) {
    if (error) *error = QStringLiteral("%1: larger than 16 MiB, not a dashboard").arg(path);
    return false;
  }
  QByteArray data = f.readAll();
  auto parsed = parseDashboard(std::string_view(data.constData(), size_t(data.size())));
  if (!parsed) {
    if (error)
      *error =
          QStringLiteral("%1: %2").arg(path, QString::fromStdString(parsed.status().message()));
    return false;
  }
  // Secrets: those the file holds itself stay in memory (and move out at the next save); the
  // references are read from the store.
  SecretNotes found;
  for (auto& source : parsed->sources)
    for (auto& h : source.headers) {
      if (!storedAsSecret(h)) continue;
      const QString what = QStringLiteral("%1: %2").arg(QString::fromStdString(source.name),
                                                        QString::fromStdString(h.name));
      if (!h.value.empty()) {
        found.inFile << what;
        continue;
      }
      auto value = SecretStore::instance().read(secretStoreKey(source, h));
      if (value && *value)
        h.value = **value;
      else
        found.missing << (value ? what
                                : what + " (" + QString::fromStdString(value.status().message()) +
                                      ")");
    }
  if (notes) *notes = found;
  *out = std::move(*parsed);
  return true;
}

QString DashboardDocument::SecretNotes::text() const {
  if (inFile.isEmpty() && missing.isEmpty()) return QString();
  QStringList out;
  const QString store = SecretStore::instance().describe();
  if (!inFile.isEmpty())
    out << tr("This dashboard file holds secret header values itself (%1). They move out of the "
              "file into %2 when you save it.")
               .arg(inFile.join(", "), store);
  if (!missing.isEmpty())
    out << tr("The secret values of %1 are not in %2 on this machine: enter them in Dashboard › "
              "Data sources (the panels of these sources fail until then).")
               .arg(missing.join(", "), store);
  return out.join(" ");
}

bool DashboardDocument::write(const Dashboard& d, const QString& path, QString* error,
                              int* storedSecrets) {
  if (auto s = validateDashboard(d); !s) {
    if (error) *error = QStringLiteral("%1: %2").arg(path, QString::fromStdString(s.message()));
    return false;
  }
  int stored = 0;
  for (const auto& source : d.sources)
    for (const auto& h : source.headers) {
      if (!storedAsSecret(h) || h.value.empty()) continue;  // empty: not known here, keep the ref
      if (auto s = SecretStore::instance().write(secretStoreKey(source, h), h.value); !s) {
        if (error)
          *error =
              QStringLiteral(
                  "%1: not saved: the secret value of %2: %3 cannot be kept in "
                  "%4: %5")
                  .arg(path, QString::fromStdString(source.name), QString::fromStdString(h.name),
                       SecretStore::instance().describe(), QString::fromStdString(s.message()));
        return false;
      }
      ++stored;
    }
  if (storedSecrets) *storedSecrets = stored;
  QSaveFile f(path);
  std::string text = serializeDashboard(d);
  if (!f.open(QIODevice::WriteOnly) ||
      f.write(text.data(), qint64(text.size())) != qint64(text.size()) || !f.commit()) {
    if (error) *error = QStringLiteral("%1: %2").arg(path, f.errorString());
    return false;
  }
  return true;
}

Dashboard DashboardDocument::builtin(const QString& resource) {
  Dashboard d;
  QString err;
  if (!read(resource, &d, &err)) qWarning("tally-dashboard: %s", qPrintable(err));
  return d;
}

QStringList DashboardDocument::recentFiles() const {
  return QSettings().value("dashboards/recent").toStringList();
}

void DashboardDocument::addRecent(const QString& path) {
  QString abs = QFileInfo(path).absoluteFilePath();
  QStringList list = recentFiles();
  list.removeAll(abs);
  list.prepend(abs);
  while (list.size() > kMaxRecent) list.removeLast();
  QSettings().setValue("dashboards/recent", list);
  emit changed();
}

QString DashboardDocument::lastDashboard() const {
  return QSettings().value("dashboards/last").toString();
}

void DashboardDocument::rememberLast(const QString& path) {
  QSettings().setValue("dashboards/last",
                       path.isEmpty() ? QString() : QFileInfo(path).absoluteFilePath());
}
