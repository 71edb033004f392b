#include "storage/shard_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "storage/chunk_format.h"
#include "storage/point_layout.h"

namespace tally::collector {
namespace {

Status prepare_into(Db& db, Stmt* out, const std::string& sql) {
  auto st = db.prepare(sql);
  if (!st) return st.status();
  *out = std::move(*st);
  return Status::ok();
}

Result<bool> table_exists(Db& db, const std::string& name) {
  auto st = db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?");
  if (!st) return st.status();
  st->bind(1, std::string_view(name));
  return st->step();
}

}  // namespace

ShardStore::ShardStore(std::string path, std::vector<Resolution> resolutions,
                       ShardStoreOptions options)
    : path_(std::move(path)), resolutions_(std::move(resolutions)), options_(options) {}
ShardStore::~ShardStore() = default;
ShardReader::ShardReader() = default;
ShardReader::~ShardReader() = default;

Result<std::unique_ptr<ShardStore>> ShardStore::open(const std::string& path,
                                                     const std::vector<Resolution>& resolutions,
                                                     ShardStoreOptions options) {
  const bool chunks = options.layout == StorageLayout::kChunks;
  // The page size only applies to a new file; it must be set before WAL mode writes the header.
  auto db = Db::open(path, true, false, chunks ? chunk_format::kPageSize : 0);
  if (!db) return db.status();
  std::unique_ptr<ShardStore> s(new ShardStore(path, resolutions, options));
  s->db_ = std::move(*db);
  Db& d = *s->db_;
  if (options.sync_commits) {
    if (auto st = d.exec("PRAGMA synchronous=FULL;"); !st) return st;
  }
  if (auto st =
          d.exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) "
                 "WITHOUT ROWID;"
                 "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, metric TEXT NOT NULL,"
                 " tags TEXT NOT NULL, kind INTEGER NOT NULL);");
      !st)
    return st;
  // Idle-series expiry (docs/format/storage.md): when a series left memory and its last point; a
  // file from before has neither column and every series in it is live.
  bool has_columns = false;
  {
    // Finalised here: a statement left open would lock the schema against the conversion below.
    auto has_expired =
        d.prepare("SELECT 1 FROM pragma_table_info('series') WHERE name='expired_s'");
    if (!has_expired) return has_expired.status();
    auto expired_row = has_expired->step();
    if (!expired_row) return expired_row.status();
    has_columns = *expired_row;
  }
  if (!has_columns) {
    if (auto st = d.exec("ALTER TABLE series ADD COLUMN expired_s INTEGER NOT NULL DEFAULT 0;"
                         "ALTER TABLE series ADD COLUMN last_s INTEGER NOT NULL DEFAULT 0;");
        !st)
      return st;
  }
  if (auto st = d.exec("CREATE INDEX IF NOT EXISTS series_expired ON series(metric, kind, tags)"
                       " WHERE expired_s != 0;");
      !st)
    return st;
  if (auto st = s->prepare(); !st) return st;

  // Which format is the file in? A file written before chunks existed has no storage_format and
  // plain rows (points_0); a new file has neither.
  auto format = s->get_meta("storage_format", 0);
  if (!format) return format.status();
  auto has_rows = table_exists(d, "points_0");
  if (!has_rows) return has_rows.status();
  int stored = static_cast<int>(*format);
  if (stored == 0 && *has_rows) stored = 1;
  if (stored > chunk_format::kStorageFormat)
    return Status::corruption(path + ": storage format " + std::to_string(stored) +
                              ", this collector reads up to " +
                              std::to_string(chunk_format::kStorageFormat));
  if (chunks) {
    if (stored == 1) {
      spdlog::info("event=storage_convert path={} from=rows to=chunks", path);
      if (auto st = convert_rows_to_chunks(d, resolutions); !st) return st;
      s->converted_rows_ = true;
    }
    if (auto st = d.exec(chunk_layout_schema(resolutions)); !st) return st;
    if (auto st = s->set_meta("storage_format", chunk_format::kStorageFormat); !st) return st;
    auto w = make_chunk_writer(d, resolutions);
    if (!w) return w.status();
    s->points_ = std::move(*w);
  } else {
    if (stored == chunk_format::kStorageFormat)
      return Status::invalid_argument(path +
                                      " is in the chunk layout; it cannot be opened as plain rows");
    if (auto st = d.exec(row_layout_schema(resolutions)); !st) return st;
    auto w = make_row_writer(d, resolutions);
    if (!w) return w.status();
    s->points_ = std::move(*w);
  }
  return s;
}

Status ShardStore::prepare() {
  Db& d = *db_;
  if (auto s = prepare_into(d, &begin_, "BEGIN IMMEDIATE"); !s) return s;
  if (auto s = prepare_into(d, &commit_, "COMMIT"); !s) return s;
  if (auto s = prepare_into(d, &rollback_, "ROLLBACK"); !s) return s;
  if (auto s = prepare_into(d, &put_series_,
                            "INSERT OR IGNORE INTO series(id, metric, tags, kind) VALUES(?,?,?,?)");
      !s)
    return s;
  if (auto s = prepare_into(d, &mark_expired_,
                            "UPDATE series SET expired_s = ?, last_s = ? WHERE id = ?");
      !s)
    return s;
  if (auto s = prepare_into(d, &get_meta_, "SELECT value FROM meta WHERE key=?"); !s) return s;
  return prepare_into(d, &set_meta_,
                      "INSERT INTO meta(key, value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET "
                      "value=excluded.value");
}

namespace {

// A row (id, metric, tags, kind) of the series table.
Result<SeriesDef> series_row(const Stmt& st, const std::string& path) {
  SeriesDef info;
  info.id = static_cast<uint64_t>(st.int64(0));
  info.metric = std::string(st.text(1));
  auto key = parse_series_key(std::string(info.metric) + std::string(st.text(2)));
  if (!key)
    return Status::corruption(path + ": series " + std::to_string(info.id) + " has bad tags");
  info.tags = std::move(key->second);
  auto kind = static_cast<Kind>(st.int64(3));
  if (kind != Kind::kCounter && kind != Kind::kGauge && kind != Kind::kDistribution)
    return Status::corruption(path + ": series " + std::to_string(info.id) + " has unknown kind");
  info.kind = kind;
  info.hash = series_hash(series_key(info.metric, info.tags));
  return info;
}

// The tags column: the canonical key without its metric ("{a=1,b=2}" or "").
std::string tags_text(std::string_view metric, const Tags& tags) {
  return series_key(metric, tags).substr(metric.size());
}

}  // namespace

Result<std::vector<SeriesDef>> ShardStore::load_series() {
  auto st = db_->prepare("SELECT id, metric, tags, kind FROM series WHERE expired_s = 0");
  if (!st) return st.status();
  std::vector<SeriesDef> out;
  while (true) {
    auto row = st->step();
    if (!row) return row.status();
    if (!*row) break;
    auto info = series_row(*st, path_);
    if (!info) return info.status();
    out.push_back(std::move(*info));
  }
  return out;
}

Result<uint64_t> ShardStore::max_series_id() {
  auto st = db_->prepare("SELECT coalesce(max(id), 0) FROM series");
  if (!st) return st.status();
  auto row = st->step();
  if (!row) return row.status();
  return static_cast<uint64_t>(*row ? st->int64(0) : 0);
}

Result<std::vector<std::pair<std::string, Kind>>> ShardStore::expired_metrics() {
  auto st = db_->prepare("SELECT DISTINCT metric, kind FROM series WHERE expired_s != 0");
  if (!st) return st.status();
  std::vector<std::pair<std::string, Kind>> out;
  while (true) {
    auto row = st->step();
    if (!row) return row.status();
    if (!*row) break;
    out.emplace_back(std::string(st->text(0)), static_cast<Kind>(st->int64(1)));
  }
  return out;
}

Result<std::optional<SeriesDef>> ShardStore::load_series_by_id(uint64_t id) {
  auto st = db_->prepare("SELECT id, metric, tags, kind FROM series WHERE id = ?");
  if (!st) return st.status();
  st->bind(1, id);
  auto row = st->step();
  if (!row) return row.status();
  if (!*row) return std::optional<SeriesDef>();
  auto info = series_row(*st, path_);
  if (!info) return info.status();
  return std::optional<SeriesDef>(std::move(*info));
}

Status ShardStore::mark_expired(uint64_t id, int64_t at_s, int64_t last_s) {
  mark_expired_.bind(1, at_s).bind(2, last_s).bind(3, id);
  return mark_expired_.run();
}

Status ShardStore::drop_step(int64_t step_s, uint64_t* freed_bytes) {
  if (std::any_of(resolutions_.begin(), resolutions_.end(),
                  [&](const Resolution& r) { return r.step_s == step_s; }))
    return Status::invalid_argument(path_ + ": resolution " + std::to_string(step_s) +
                                    " s is configured; not dropped");
  if (options_.layout != StorageLayout::kChunks)
    return Status::invalid_argument(
        path_ + ": plain rows name tables by position; a step cannot be dropped");
  auto free_pages = [this]() -> Result<int64_t> {
    auto st = db_->prepare(
        "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size");
    if (!st) return st.status();
    auto row = st->step();
    if (!row) return row.status();
    return *row ? st->int64(0) : 0;
  };
  auto before = free_pages();
  if (!before) return before.status();
  if (auto s = drop_chunk_layout_step(*db_, step_s); !s) return s;
  auto after = free_pages();
  if (!after) return after.status();
  *freed_bytes = static_cast<uint64_t>(std::max<int64_t>(0, *after - *before));
  return Status::ok();
}

Status ShardStore::begin() {
  Status s = begin_.run();
  in_transaction_ = s.is_ok();
  return s;
}

Status ShardStore::commit() {
  if (auto s = points_->before_commit(); !s) return s;  // the caller rolls back
  Status s = commit_.run();
  if (s) in_transaction_ = false;
  return s;
}

void ShardStore::rollback() {
  (void)rollback_.run();
  points_->after_rollback();
  in_transaction_ = false;
}

Status ShardStore::put_series(const SeriesDef& s) {
  std::string key = series_key(s.metric, s.tags);
  put_series_.bind(1, s.id)
      .bind(2, std::string_view(s.metric))
      .bind(3, std::string_view(key).substr(s.metric.size()))
      .bind(4, static_cast<int>(s.kind));
  return put_series_.run();
}

Status ShardStore::merge_bucket(uint64_t series_id, Kind kind, size_t res, int64_t time,
                                const BucketAgg& agg, uint64_t lsn, BucketAgg* merged_out) {
  if (res >= resolutions_.size())
    return Status::invalid_argument("no resolution " + std::to_string(res));
  if (in_transaction_) return points_->merge(series_id, kind, res, time, agg, lsn, merged_out);
  // Outside begin()/commit(): a transaction of its own.
  if (auto s = begin(); !s) return s;
  Status s = points_->merge(series_id, kind, res, time, agg, lsn, merged_out);
  if (s) s = commit();
  if (!s) rollback();
  return s;
}

Status ShardStore::delete_before(uint64_t series_id, size_t res, int64_t before, int64_t* deleted) {
  if (res >= resolutions_.size())
    return Status::invalid_argument("no resolution " + std::to_string(res));
  return points_->delete_before(series_id, res, before, deleted);
}

Status ShardStore::delete_all_before(size_t res, int64_t before, int64_t* deleted) {
  if (res >= resolutions_.size())
    return Status::invalid_argument("no resolution " + std::to_string(res));
  return points_->delete_all_before(res, before, deleted);
}

Result<uint64_t> ShardStore::stored_lsn(uint64_t series_id, size_t res, int64_t time) {
  if (res >= resolutions_.size())
    return Status::invalid_argument("no resolution " + std::to_string(res));
  return points_->stored_lsn(series_id, res, time);
}

Status ShardStore::compact(int64_t watermark, CompactStats* stats,
                           const std::function<void()>& between) {
  CompactStats ignored;
  return points_->compact(watermark, stats ? stats : &ignored, between);
}

Result<int64_t> ShardStore::get_meta(std::string_view key, int64_t fallback) {
  get_meta_.bind(1, key);
  auto row = get_meta_.step();
  if (!row) {
    get_meta_.reset();
    return row.status();
  }
  int64_t v = *row ? get_meta_.int64(0) : fallback;
  get_meta_.reset();
  return v;
}

Status ShardStore::set_meta(std::string_view key, int64_t value) {
  set_meta_.bind(1, key).bind(2, value);
  return set_meta_.run();
}

Result<std::unique_ptr<ShardReader>> ShardStore::acquire_reader() {
  {
    MutexLock lock(readers_mu_);
    if (!readers_.empty()) {
      auto r = std::move(readers_.back());
      readers_.pop_back();
      return r;
    }
  }
  auto db = Db::open(path_, false, true);
  if (!db) return db.status();
  auto r = std::make_unique<ShardReader>();
  r->db_ = std::move(*db);
  if (auto s = prepare_into(*r->db_, &r->begin_, "BEGIN"); !s) return s;
  if (auto s = prepare_into(*r->db_, &r->end_, "COMMIT"); !s) return s;
  auto points = options_.layout == StorageLayout::kChunks ? make_chunk_reader(*r->db_, resolutions_)
                                                          : make_row_reader(*r->db_, resolutions_);
  if (!points) return points.status();
  r->points_ = std::move(*points);
  return r;
}

void ShardStore::release_reader(std::unique_ptr<ShardReader> r) {
  MutexLock lock(readers_mu_);
  readers_.push_back(std::move(r));
}

void ShardStore::drop_readers() {
  MutexLock lock(readers_mu_);
  readers_.clear();
}

Status ShardReader::begin_snapshot() {
  if (auto s = begin_.run(); !s) return s;
  // The snapshot is taken at the first read of the transaction.
  if (auto s = points_->pin(); !s) {
    end_snapshot();
    return s;
  }
  return Status::ok();
}

void ShardReader::end_snapshot() {
  (void)end_.run();
}

Status ShardReader::read(uint64_t series_id, Kind kind, size_t res, int64_t from, int64_t to,
                         std::vector<StoredBucket>* out) {
  std::vector<std::vector<StoredBucket>> one;
  if (auto s = points_->read({SeriesRef{series_id, kind}}, res, from, to, 1, &one); !s) return s;
  for (auto& b : one[0]) out->push_back(std::move(b));
  return Status::ok();
}

Status ShardReader::read(const std::vector<SeriesRef>& series, size_t res, int64_t from, int64_t to,
                         size_t shard_series, std::vector<std::vector<StoredBucket>>* out) {
  out->assign(series.size(), {});
  return points_->read(series, res, from, to, shard_series, out);
}

void ShardReader::set_deadline(const Deadline* d) {
  points_->set_deadline(d);
}

Result<std::optional<uint64_t>> ShardReader::find_expired(std::string_view metric, Kind kind,
                                                          const Tags& tags) {
  if (!find_expired_.valid()) {
    if (auto s = prepare_into(*db_, &find_expired_,
                              "SELECT id FROM series WHERE metric = ? AND kind = ? AND tags = ? "
                              "AND expired_s != 0");
        !s)
      return s;
  }
  const std::string text = tags_text(metric, tags);
  find_expired_.bind(1, metric).bind(2, static_cast<int>(kind)).bind(3, std::string_view(text));
  auto row = find_expired_.step();
  std::optional<uint64_t> out;
  if (row && *row) out = static_cast<uint64_t>(find_expired_.int64(0));
  find_expired_.reset();
  if (!row) return row.status();
  return out;
}

Status ShardReader::expired_series(std::string_view metric, int64_t since_s,
                                   std::vector<SeriesDef>* out) {
  if (!expired_series_.valid()) {
    if (auto s = prepare_into(*db_, &expired_series_,
                              "SELECT id, metric, tags, kind FROM series WHERE metric = ? AND "
                              "expired_s != 0 AND last_s >= ?");
        !s)
      return s;
  }
  expired_series_.bind(1, metric).bind(2, since_s);
  Status status;
  while (true) {
    auto row = expired_series_.step();
    if (!row) {
      status = row.status();
      break;
    }
    if (!*row) break;
    auto info = series_row(expired_series_, "shard file");
    if (!info) {
      status = info.status();
      break;
    }
    out->push_back(std::move(*info));
  }
  expired_series_.reset();
  return status;
}

Status ShardReader::add_counter_sums(const std::vector<SeriesRef>& series,
                                     const std::vector<uint32_t>& rows, size_t res,
                                     const StepGrid& grid, size_t shard_series, double* out) {
  return points_->add_counter_sums(series, rows, res, grid, shard_series, out);
}

Result<std::optional<int64_t>> ShardReader::earliest(size_t res) {
  return points_->earliest(res);
}

}  // namespace tally::collector
