#include "dashboard_document.h"

#include <QFile>
#include <QFileInfo>
#include <QSaveFile>
#include <QSettings>

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

bool DashboardDocument::read(const QString& path, Dashboard* out, QString* error) {
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
  *out = std::move(*parsed);
  return true;
}

bool DashboardDocument::write(const Dashboard& d, const QString& path, QString* error) {
  if (auto s = validateDashboard(d); !s) {
    if (error) *error = QStringLiteral("%1: %2").arg(path, QString::fromStdString(s.message()));
    return false;
  }
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
