#include "storage/backup_writer.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "tally/common/version.h"

namespace tally::collector {

namespace fs = std::filesystem;

namespace {

// SQLite's online backup of `from` into a new file `to`, then synced.
Status snapshot_sqlite(const std::string& from, const std::string& to) {
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  auto close_both = [&] {
    sqlite3_close(dst);
    sqlite3_close(src);
  };
  if (sqlite3_open_v2(from.c_str(), &src, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    const std::string err = sqlite3_errmsg(src);
    close_both();
    return Status::io_error("open " + from + ": " + err);
  }
  sqlite3_busy_timeout(src, 10000);
  if (sqlite3_open_v2(to.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    const std::string err = sqlite3_errmsg(dst);
    close_both();
    return Status::io_error("create " + to + ": " + err);
  }
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
  if (!b) {
    const std::string err = sqlite3_errmsg(dst);
    close_both();
    return Status::io_error("backup of " + from + ": " + err);
  }
  int rc = SQLITE_OK;
  do {
    rc = sqlite3_backup_step(b, -1);  // every page in one read transaction: one snapshot
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(10);
  } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    const std::string err = sqlite3_errstr(rc);
    close_both();
    return rc == SQLITE_FULL ? Status::unavailable("backup of " + from + ": " + err)
                             : Status::io_error("backup of " + from + ": " + err);
  }
  // The copy is a self-contained file: fold its own journal in, then sync it.
  char* err = nullptr;
  rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;", nullptr, nullptr,
                    &err);
  const std::string why = err ? err : "";
  sqlite3_free(err);
  close_both();
  if (rc != SQLITE_OK) return Status::io_error("finish " + to + ": " + why);
  return Status::ok();
}

}  // namespace

Result<backup::Manifest> write_backup(const std::string& data_dir, const std::string& target,
                                      int64_t now_unix_ms, int64_t pause_us) {
  std::error_code ec;
  const fs::path t(target);
  if (target.empty() || !t.is_absolute())
    return Status::invalid_argument("backup directory must be an absolute path, got '" + target +
                                    "'");
  const fs::path data = fs::weakly_canonical(data_dir, ec);
  const fs::path dest = fs::weakly_canonical(t, ec);
  const auto rel = dest.lexically_relative(data);
  if (!rel.empty() && *rel.begin() != "..")
    return Status::invalid_argument("backup directory " + target +
                                    " is inside the data directory " + data_dir);
  if (fs::exists(t, ec) && (!fs::is_directory(t, ec) || !fs::is_empty(t, ec)))
    return Status::invalid_argument("backup directory " + target +
                                    " exists and is not empty; name a new directory");
  fs::create_directories(t / "wal", ec);
  if (ec) return Status::io_error("cannot create " + target + ": " + ec.message());

  backup::Manifest m;
  m.tally_version = kVersion;
  m.created_unix_ms = now_unix_ms;
  // 1. SQLite files (shards, ingest state) as snapshots; 2. other files (the marker).
  std::vector<fs::path> sqlite_files, plain_files;
  for (const auto& e : fs::directory_iterator(data_dir, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal")) continue;
    (name.ends_with(".sqlite") ? sqlite_files : plain_files).push_back(e.path());
  }
  if (ec) return Status::io_error("cannot list " + data_dir + ": " + ec.message());
  std::sort(sqlite_files.begin(), sqlite_files.end());
  std::sort(plain_files.begin(), plain_files.end());
  for (const auto& p : sqlite_files) {
    const std::string name = p.filename().string();
    const std::string to = (t / name).string();
    if (auto s = snapshot_sqlite(p.string(), to); !s) return s;
    auto d = backup::describe_file(to, name);
    if (!d) return d.status();
    m.files.push_back(*d);
  }
  for (const auto& p : plain_files) {
    const std::string name = p.filename().string();
    auto c = backup::copy_file(p.string(), (t / name).string(), name);
    if (!c) return c.status();
    m.files.push_back(*c);
  }
  if (pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
  // 3. The log, after the snapshots: every record they lack.
  std::vector<fs::path> segments;
  for (const auto& e : fs::directory_iterator(fs::path(data_dir) / "wal", ec))
    if (e.is_regular_file() && e.path().extension() == ".log") segments.push_back(e.path());
  if (ec) return Status::io_error("cannot list the log: " + ec.message());
  std::sort(segments.begin(), segments.end());
  for (const auto& p : segments) {
    const std::string name = "wal/" + p.filename().string();
    auto c = backup::copy_file(p.string(), (t / name).string(), name);
    if (!c) return c.status();
    m.files.push_back(*c);
  }
  if (auto s = backup::sync_dir((t / "wal").string()); !s) return s;
  if (auto s = backup::sync_dir(target); !s) return s;
  if (auto s = backup::write_manifest(target, m); !s) return s;
  return m;
}

}  // namespace tally::collector
