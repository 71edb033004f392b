// SecretStore: where the dashboard keeps the values of secret data source headers
// (docs/SECURITY.md, "Secrets of data sources"; which headers are secret: core/dashboard.h).
// The OS keychain through QtKeychain (the Secret Service of GNOME / KDE, the macOS Keychain, the
// Windows Credential Manager), or, where no keychain service answers (a headless machine, CI), a
// JSON file that only its owner may read or write (0600, in a 0700 folder) under
// QStandardPaths::AppConfigLocation. The backend is chosen once per process: TALLY_SECRET_STORE=
// keychain|file forces one, else a first keychain request decides. The choice is logged
// (event=secret_store) and shown in the Data sources dialog.
// QtKeychain answers asynchronously; read() and write() wait for it in a local event loop (a
// keychain may ask the user to unlock it first).
// Thread-safety: the GUI (main) thread only.
#pragma once

#include <QString>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "tally/common/status.h"

class SecretStore {
 public:
  enum class Backend { Keychain, File };

  // The process's store, chosen on first use (choose()).
  static SecretStore& instance();
  // TALLY_SECRET_STORE, else the keychain if a keychain service answers, else the file; logged.
  static std::unique_ptr<SecretStore> choose();
  // A store on `backend`; `filePath` is the file backend's file.
  SecretStore(Backend backend, QString filePath, QString reason);

  Backend backend() const { return m_backend; }
  QString filePath() const { return m_filePath; }
  // Why this backend: "TALLY_SECRET_STORE=file", "no keychain service answered: ...".
  QString reason() const { return m_reason; }
  // For people: "the system keychain" / "the file PATH, readable only by you (REASON)".
  QString describe() const;

  // The value stored under `key`, nullopt when there is none.
  tally::Result<std::optional<std::string>> read(const std::string& key);
  tally::Status write(const std::string& key, const std::string& value);

  // The file under AppConfigLocation ("<config>/secrets.json").
  static QString defaultFilePath();
  static constexpr const char* kKeychainService = "tally-dashboard";

 private:
  tally::Result<std::map<std::string, std::string>> readFile() const;
  tally::Status writeFile(const std::map<std::string, std::string>& secrets) const;

  Backend m_backend;
  QString m_filePath;
  QString m_reason;
};
