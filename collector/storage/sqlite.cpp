#include "storage/sqlite.h"

#include <algorithm>

namespace tally::collector {
namespace {

Status status_from(sqlite3* db, int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return (rc & 0xff) == SQLITE_FULL ? Status::unavailable(msg) : Status::io_error(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::corruption(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::unavailable(msg);
    default:
      return Status::internal(msg);
  }
}

}  // namespace

Result<bool> Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status s = status_from(db_, rc, "sqlite step");
  sqlite3_reset(s_);
  return s;
}

Status Stmt::run() {
  auto r = step();
  reset();
  return r.status();
}

Db::~Db() {
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<Db>> Db::open(const std::string& path, bool create, bool read_only,
                                     int page_size) {
  sqlite3* db = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (create && !read_only) flags |= SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = status_from(db, rc, "open " + path);
    sqlite3_close_v2(db);
    return s;
  }
  std::unique_ptr<Db> out(new Db(db, path));
  sqlite3_busy_timeout(db, 5000);
  if (!read_only) {
    // Only a file without a header takes a new page size, and WAL mode writes the header.
    if (page_size > 0) {
      if (auto s = out->exec("PRAGMA page_size=" + std::to_string(page_size)); !s) return s;
    }
    if (auto s = out->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); !s) return s;
    // SQLite checkpoints its WAL once it holds 1,000 pages (16 MiB at the shards' 16 KiB pages)
    // and never shrinks the file after: every shard file kept a 16 MiB -wal beside it, more than
    // an hour of the standard dataset's chunks. Checkpoint at kWalBytes instead and cut the file
    // back to it after each reset.
    auto ps = out->prepare("PRAGMA page_size");
    if (!ps) return ps.status();
    auto row = ps->step();
    if (!row) return row.status();
    const int64_t page = *row ? std::max<int64_t>(512, ps->int64(0)) : 4096;
    if (auto s = out->exec("PRAGMA wal_autocheckpoint=" + std::to_string(kWalBytes / page) +
                           "; PRAGMA journal_size_limit=" + std::to_string(kWalBytes) + ";");
        !s)
      return s;
  }
  return out;
}

Status Db::exec(std::string_view sql) {
  char* err = nullptr;
  std::string q(sql);
  int rc = sqlite3_exec(db_, q.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    Status s = status_from(db_, rc, "exec");
    sqlite3_free(err);
    return s;
  }
  return Status::ok();
}

Result<Stmt> Db::prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) return status_from(db_, rc, "prepare");
  return Stmt(db_, s);
}

Status Db::error(std::string_view what) const {
  return status_from(db_, sqlite3_errcode(db_), what);
}

}  // namespace tally::collector
