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
  auto target = parse_collector_url(g.collector);
  if (!target) {
    err << "tally: " << target.status().message() << '\n';
    return kExitUsage;
  }
  const std::string dir = fs::absolute(a.dir).lexically_normal().string();
  // A backup copies the whole data directory: give it far longer than a query.
  CollectorHttp http(*target, std::max(g.timeout, std::chrono::milliseconds(3600 * 1000)));
  http.set_auth(g.token, g.ca_cert);
  HttpReply r = http.post("/api/admin/backup", {{"dir", dir}});
  if (r.exit_code != kExitOk) {
    err << "tally: " << r.error << '\n';
    return r.exit_code;
  }
  if (g.format == Format::kJson) {
    out << r.body.dump() << '\n';
  } else {
    out << "backup written to " << dir << ": " << r.body.value("files", 0) << " files, "
        << r.body.value("bytes", uint64_t{0}) << " bytes, in " << r.body.value("seconds", 0.0)
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
  auto target = parse_collector_url(g.collector);
  if (!target) {
    err << "tally: " << target.status().message() << '\n';
    return kExitUsage;
  }
  CollectorHttp http(*target, g.timeout);
  http.set_auth(g.token, g.ca_cert);
  HttpReply r = http.post("/api/admin/reload", {});
  if (r.exit_code != kExitOk) {
    err << "tally: " << r.error << '\n';
    return r.exit_code;
  }
  if (g.format == Format::kJson)
    out << r.body.dump() << '\n';
  else
    out << "reloaded: " << r.body.value("loaded", std::string()) << '\n';
  return kExitOk;
}

}  // namespace tally::cli
