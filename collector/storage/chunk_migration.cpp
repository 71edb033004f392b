// The migration of a shard file from plain rows (RowLayout, one row per bucket) to the chunk
// layout's hot rows; compaction then encodes them.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>
#include <unordered_map>

#include "storage/chunk_codec.h"
#include "storage/chunk_format.h"
#include "storage/chunk_layout.h"
#include "storage/point_layout.h"
#include "tally/common/wire.h"

namespace tally::collector {

using namespace chunk_layout;  // this file's part of the layout
namespace {

// Plain rows of one resolution into hot rows, (time, group) by (time, group). Counters kept
// zeros in min/max/last; gauges and distributions without samples have no min/max.
Status convert_table(Db& db, const std::string& from, const std::string& to) {
  auto read = db.prepare(
      "SELECT p.t, p.series_id, s.kind, p.lsn, p.sum, p.count, p.min, p.max, p.last, p.sketch "
      "FROM " +
      from + " p JOIN series s ON s.id = p.series_id ORDER BY p.t, p.series_id");
  if (!read) return read.status();
  auto put = db.prepare("INSERT OR REPLACE INTO " + to + "(t, grp, lsn, data) VALUES(?,?,?,?)");
  if (!put) return put.status();
  std::vector<HotEntry> entries;
  int64_t t = 0;
  uint64_t grp = 0, lsn = 0;
  auto write = [&]() -> Status {
    if (entries.empty()) return Status::ok();
    const std::string data = encode_hot_row(entries);
    put->bind(1, t).bind(2, grp).bind(3, lsn).bind_blob(4, data.data(), data.size());
    entries.clear();
    lsn = 0;
    return put->run();
  };
  while (true) {
    auto row = read->step();
    if (!row) return row.status();
    if (!*row) break;
    const int64_t rt = read->int64(0);
    const auto sid = static_cast<uint64_t>(read->int64(1));
    if (rt != t || hot_group(sid) != grp) {
      if (auto s = write(); !s) return s;
      t = rt;
      grp = hot_group(sid);
    }
    HotEntry e;
    e.series_id = sid;
    e.kind = static_cast<Kind>(read->int64(2));
    lsn = std::max(lsn, static_cast<uint64_t>(read->int64(3)));
    e.agg.sum = read->real(4);
    if (e.kind != Kind::kCounter) {
      e.agg.count = static_cast<uint64_t>(read->int64(5));
      if (e.agg.count > 0) {
        e.agg.min = read->real(6);
        e.agg.max = read->real(7);
      }
      e.agg.last = read->real(8);
    }
    if (e.kind == Kind::kDistribution && !read->is_null(9)) {
      auto blob = read->blob(9);
      wire::Sketch p;
      if (!p.ParseFromArray(blob.data(), static_cast<int>(blob.size())))
        return Status::corruption(from + ": stored sketch does not parse");
      auto sk = sketch_from_proto(p);
      if (!sk) return Status::corruption(from + ": stored sketch: " + sk.status().message());
      e.agg.sketch = std::make_unique<Sketch>(std::move(*sk));
    }
    entries.push_back(std::move(e));
  }
  return write();
}

}  // namespace

Status convert_rows_to_chunks(Db& db, const std::vector<Resolution>& resolutions) {
  if (auto s = db.exec(chunk_layout_schema(resolutions)); !s) return s;
  if (auto s = db.exec("BEGIN IMMEDIATE"); !s) return s;
  Status s;
  for (size_t r = 0; s && r < resolutions.size(); ++r) {
    Result<bool> row = false;
    {
      auto exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='points_" +
                               std::to_string(r) + "'");
      if (!exists) {
        s = exists.status();
        break;
      }
      row = exists->step();
    }  // finalised here: DROP TABLE below fails while a statement reads the schema
    if (!row) {
      s = row.status();
      break;
    }
    if (!*row) continue;
    s = convert_table(db, "points_" + std::to_string(r), hot_table(resolutions[r]));
    if (s) s = db.exec("DROP TABLE points_" + std::to_string(r));
  }
  if (s)
    s = db.exec("INSERT INTO meta(key, value) VALUES('storage_format', " +
                std::to_string(cf::kStorageFormat) +
                ") ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  if (s) s = db.exec("COMMIT");
  if (!s) {
    (void)db.exec("ROLLBACK");
    return s;
  }
  // New files use kPageSize; an old one takes it by a VACUUM, which needs a rollback journal.
  s = db.exec("PRAGMA journal_mode=DELETE; PRAGMA page_size=" + std::to_string(cf::kPageSize) +
              "; VACUUM; PRAGMA journal_mode=WAL;");
  if (!s)
    spdlog::warn("event=storage_convert_vacuum_failed path={} error=\"{}\"", db.path(),
                 s.to_string());
  return Status::ok();
}

}  // namespace tally::collector
