// tally backup / restore / reload: the operator's commands (docs/CLI.md, docs/OPERATIONS.md).
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

#include "collector_http.h"
#include "commands.h"
#include "exit_codes.h"
#include "tally/common/backup.h"

namespace tally::cli {

namespace fs = std::filesystem;
using json = nlohmann::json;

int run_backup(const GlobalOptions& g, const BackupArgs& a, std::ostream& out, std::ostream& err) {
  if (a.dir.empty()) {
    err << "tally: name the directory to write the backup into\n";
    return kExitUsage;
  }
  const std::string dir = fs::absolute(a.dir).lexically_normal().string();
  // A backup copies the whole data directory: give it far longer than a query.
  json body;
  if (int rc =
          call_collector(g, true, "/api/admin/backup", {{"dir", dir}},
                         std::max(g.timeout, std::chrono::milliseconds(3600 * 1000)), &body, err);
      rc != kExitOk)
    return rc;
  if (g.format == Format::kJson) {
    out << body.dump() << '\n';
  } else {
    out << "backup written to " << dir << ": " << body.value("files", 0) << " files, "
        << body.value("bytes", uint64_t{0}) << " bytes, in " << body.value("seconds", 0.0)
        << " s\n";
  }
  return kExitOk;
}

int run_restore(const GlobalOptions& g, const RestoreArgs& a, std::ostream& out,
                std::ostream& err) {
  backup::Manifest m;
  if (Status s = backup::restore(a.backup, a.data_dir, &m); !s) {
    err << "tally: restore: " << s.message() << '\n';
    switch (s.code()) {
      case StatusCode::kInvalidArgument:
        return kExitUsage;
      case StatusCode::kNotFound:
        return kExitNotFound;
      default:
        return kExitRejected;
    }
  }
  if (g.format == Format::kJson) {
    out << json{{"status", "ok"},
                {"backup", a.backup},
                {"data_dir", a.data_dir},
                {"files", m.files.size()},
                {"bytes", m.total_bytes()},
                {"created_unix_ms", m.created_unix_ms},
                {"tally_version", m.tally_version}}
               .dump()
        << '\n';
  } else {
    out << "restored " << m.files.size() << " files (" << m.total_bytes() << " bytes) from "
        << a.backup << " into " << a.data_dir << "; start tally-collector --data-dir " << a.data_dir
        << ": it replays the backed-up log and answers as at the backup\n";
  }
  return kExitOk;
}

int run_reload(const GlobalOptions& g, std::ostream& out, std::ostream& err) {
  json body;
  if (int rc = call_collector(g, true, "/api/admin/reload", {}, g.timeout, &body, err);
      rc != kExitOk)
    return rc;
  if (g.format == Format::kJson)
    out << body.dump() << '\n';
  else
    out << "reloaded: " << body.value("loaded", std::string()) << '\n';
  return kExitOk;
}

}  // namespace tally::cli
