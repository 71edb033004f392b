#include "secret_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <qt6keychain/keychain.h>
#include <QDir>
#include <QEventLoop>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QStandardPaths>
#include <QTimer>
#include <cerrno>
#include <cstring>
#include <memory>

using tally::Result;
using tally::Status;

namespace {

struct JobResult {
  bool done = false;
  QKeychain::Error error = QKeychain::NoError;
  QString errorString;
  QString text;
};

// Runs a QtKeychain job to its end (or `timeoutMs`). The job deletes itself when it finishes, also
// after a timeout, so the state it writes into is shared.
JobResult runJob(QKeychain::Job* job, int timeoutMs) {
  auto result = std::make_shared<JobResult>();
  QEventLoop loop;
  QObject::connect(job, &QKeychain::Job::finished, &loop, [result, &loop](QKeychain::Job* j) {
    result->done = true;
    result->error = j->error();
    result->errorString = j->errorString();
    if (auto* r = qobject_cast<QKeychain::ReadPasswordJob*>(j)) result->text = r->textData();
    loop.quit();
  });
  QTimer::singleShot(timeoutMs, &loop, &QEventLoop::quit);
  job->setAutoDelete(true);
  job->start();
  if (!result->done) loop.exec();
  if (!result->done) {
    result->error = QKeychain::OtherError;
    result->errorString =
        QStringLiteral("the keychain did not answer within %1 s").arg(timeoutMs / 1000);
  }
  return *result;
}

constexpr int kProbeTimeoutMs = 5000;
constexpr int kJobTimeoutMs = 120000;  // the keychain may ask the user to unlock it

}  // namespace

std::unique_ptr<SecretStore> SecretStore::choose() {
  const QString path = SecretStore::defaultFilePath();
  const QString forced = qEnvironmentVariable("TALLY_SECRET_STORE").trimmed().toLower();
  SecretStore* store = nullptr;
  if (forced == "file") {
    store = new SecretStore(SecretStore::Backend::File, path, "TALLY_SECRET_STORE=file");
  } else if (forced == "keychain") {
    store = new SecretStore(SecretStore::Backend::Keychain, path, "TALLY_SECRET_STORE=keychain");
  } else {
    // Is there a keychain service? A read of a key nobody writes says so: "not found" is an
    // answer; no D-Bus session, no Secret Service, no backend is not.
    auto* probe = new QKeychain::ReadPasswordJob(SecretStore::kKeychainService);
    probe->setKey("tally-dashboard/probe");
    const JobResult r = runJob(probe, kProbeTimeoutMs);
    if (r.error == QKeychain::NoError || r.error == QKeychain::EntryNotFound)
      store = new SecretStore(SecretStore::Backend::Keychain, path, "a keychain service answered");
    else
      store = new SecretStore(SecretStore::Backend::File, path,
                              "no keychain service answered: " + r.errorString);
  }
  if (store->backend() == SecretStore::Backend::Keychain)
    qInfo("tally-dashboard: event=secret_store backend=keychain service=%s reason=\"%s\"",
          SecretStore::kKeychainService, qPrintable(store->reason()));
  else
    qInfo("tally-dashboard: event=secret_store backend=file path=%s reason=\"%s\"",
          qPrintable(store->filePath()), qPrintable(store->reason()));
  return std::unique_ptr<SecretStore>(store);
}

SecretStore& SecretStore::instance() {
  static SecretStore* store = choose().release();  // lives as long as the process
  return *store;
}

SecretStore::SecretStore(Backend backend, QString filePath, QString reason)
    : m_backend(backend), m_filePath(std::move(filePath)), m_reason(std::move(reason)) {}

QString SecretStore::defaultFilePath() {
  return QStandardPaths::writableLocation(QStandardPaths::AppConfigLocation) + "/secrets.json";
}

QString SecretStore::describe() const {
  if (m_backend == Backend::Keychain) return QStringLiteral("the system keychain");
  return QStringLiteral("the file %1, readable only by you (%2)").arg(m_filePath, m_reason);
}

Result<std::optional<std::string>> SecretStore::read(const std::string& key) {
  if (m_backend == Backend::File) {
    auto secrets = readFile();
    if (!secrets) return secrets.status();
    auto it = secrets->find(key);
    if (it == secrets->end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  auto* job = new QKeychain::ReadPasswordJob(kKeychainService);
  job->setKey(QString::fromStdString(key));
  const JobResult r = runJob(job, kJobTimeoutMs);
  if (r.error == QKeychain::EntryNotFound) return std::optional<std::string>();
  if (r.error != QKeychain::NoError)
    return Status::unavailable("the system keychain: " + r.errorString.toStdString());
  return std::optional<std::string>(r.text.toStdString());
}

Status SecretStore::write(const std::string& key, const std::string& value) {
  if (m_backend == Backend::File) {
    auto secrets = readFile();
    if (!secrets) return secrets.status();
    auto it = secrets->find(key);
    if (it != secrets->end() && it->second == value) return Status::ok();
    (*secrets)[key] = value;
    return writeFile(*secrets);
  }
  auto* job = new QKeychain::WritePasswordJob(kKeychainService);
  job->setKey(QString::fromStdString(key));
  job->setTextData(QString::fromStdString(value));
  const JobResult r = runJob(job, kJobTimeoutMs);
  if (r.error != QKeychain::NoError)
    return Status::unavailable("the system keychain: " + r.errorString.toStdString());
  return Status::ok();
}

// {"format": "tally-secrets", "version": 1, "secrets": {"<key>": "<value>", ...}}
Result<std::map<std::string, std::string>> SecretStore::readFile() const {
  std::map<std::string, std::string> out;
  const QByteArray path = QFile::encodeName(m_filePath);
  const int fd = ::open(path.constData(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return out;
    return Status::io_error(m_filePath.toStdString() + ": " + std::strerror(errno));
  }
  struct stat st {};
  QByteArray data;
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    // Someone widened it: narrow it again, and say so (the secrets may have been read).
    ::fchmod(fd, 0600);
    qWarning("tally-dashboard: event=secret_file_mode_fixed path=%s mode=%o", path.constData(),
             unsigned(st.st_mode & 0777));
  }
  char buf[8192];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return Status::io_error(m_filePath.toStdString() + ": " + std::strerror(e));
    }
    data.append(buf, n);
  }
  ::close(fd);
  QJsonParseError err;
  const QJsonDocument doc = QJsonDocument::fromJson(data, &err);
  if (!doc.isObject() || doc.object().value("format").toString() != "tally-secrets")
    return Status::corruption(m_filePath.toStdString() + ": not a Tally secrets file");
  const QJsonObject secrets = doc.object().value("secrets").toObject();
  for (auto it = secrets.begin(); it != secrets.end(); ++it)
    out[it.key().toStdString()] = it.value().toString().toStdString();
  return out;
}

// Written to a new file created 0600 (never wider, whatever the umask), synced, then renamed over
// the old one: a crash leaves the old file or the new one, whole.
Status SecretStore::writeFile(const std::map<std::string, std::string>& secrets) const {
  const QString dir = QFileInfo(m_filePath).absolutePath();
  if (!QDir().mkpath(dir)) return Status::io_error("cannot create " + dir.toStdString());
  ::chmod(QFile::encodeName(dir).constData(), 0700);
  QJsonObject values;
  for (const auto& [k, v] : secrets)
    values.insert(QString::fromStdString(k), QString::fromStdString(v));
  QJsonObject doc{{"format", "tally-secrets"}, {"version", 1}, {"secrets", values}};
  const QByteArray data = QJsonDocument(doc).toJson(QJsonDocument::Indented);
  QByteArray tmp = QFile::encodeName(m_filePath) + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());  // mode 0600
  if (fd < 0) return Status::io_error(m_filePath.toStdString() + ": " + std::strerror(errno));
  bool ok = ::fchmod(fd, 0600) == 0;
  for (qsizetype off = 0; ok && off < data.size();) {
    const ssize_t n = ::write(fd, data.constData() + off, size_t(data.size() - off));
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    off += n > 0 ? n : 0;
  }
  const int e = errno;
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.constData(), QFile::encodeName(m_filePath).constData()) != 0) {
    ::unlink(tmp.constData());
    return Status::io_error(m_filePath.toStdString() + ": " + std::strerror(ok ? errno : e));
  }
  return Status::ok();
}
