#include "storage/shard_store.h"

#include <cmath>

#include "tally/common/wire.h"

namespace tally::collector {
namespace {

std::string table(size_t res) { return "points_" + std::to_string(res); }

// min/max are stored only when there is data; an empty aggregate's +-inf is not a value.
double finite_or_zero(double v) { return std::isfinite(v) ? v : 0.0; }

std::string encode_sketch(const Sketch& s) {
  wire::Sketch p;
  sketch_to_proto(s, &p);
  return p.SerializeAsString();
}

Status decode_row(const Stmt& st, int first_col, Kind kind, BucketAgg* out) {
  out->sum = st.real(first_col);
  out->count = static_cast<uint64_t>(st.int64(first_col + 1));
  out->min = st.real(first_col + 2);
  out->max = st.real(first_col + 3);
  out->last = st.real(first_col + 4);
  if (kind == Kind::kDistribution && !st.is_null(first_col + 5)) {
    auto blob = st.blob(first_col + 5);
    wire::Sketch p;
    if (!p.ParseFromArray(blob.data(), static_cast<int>(blob.size())))
      return Status::corruption("stored sketch does not parse");
    auto s = sketch_from_proto(p);
    if (!s) return Status::corruption("stored sketch: " + s.status().message());
    out->sketch = std::make_unique<Sketch>(std::move(*s));
  }
  if (kind != Kind::kCounter && out->count == 0) {
    out->min = std::numeric_limits<double>::infinity();
    out->max = -std::numeric_limits<double>::infinity();
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<ShardStore>> ShardStore::open(const std::string& path, const std::vector<Resolution>& resolutions) {
  auto db = Db::open(path, true);
  if (!db) return db.status();
  std::unique_ptr<ShardStore> s(new ShardStore(path, resolutions.size()));
  s->db_ = std::move(*db);
  std::string schema =
      "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, metric TEXT NOT NULL, tags TEXT NOT NULL,"
      " kind INTEGER NOT NULL);";
  for (size_t r = 0; r < resolutions.size(); ++r) {
    // One row per (series, bucket); the primary key makes a time-range scan of a series one range.
    schema += "CREATE TABLE IF NOT EXISTS " + table(r) +
              "(series_id INTEGER NOT NULL, t INTEGER NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL,"
              " min REAL NOT NULL, max REAL NOT NULL, last REAL NOT NULL, sketch BLOB, lsn INTEGER NOT NULL,"
              " PRIMARY KEY(series_id, t)) WITHOUT ROWID;";
  }
  if (auto st = s->db_->exec(schema); !st) return st;
  if (auto st = s->prepare(); !st) return st;
  return s;
}

Status ShardStore::prepare() {
  auto p = [&](Stmt* out, const std::string& sql) -> Status {
    auto st = db_->prepare(sql);
    if (!st) return st.status();
    *out = std::move(*st);
    return Status::ok();
  };
  if (auto s = p(&begin_, "BEGIN IMMEDIATE"); !s) return s;
  if (auto s = p(&commit_, "COMMIT"); !s) return s;
  if (auto s = p(&rollback_, "ROLLBACK"); !s) return s;
  if (auto s = p(&put_series_, "INSERT OR IGNORE INTO series(id, metric, tags, kind) VALUES(?,?,?,?)"); !s) return s;
  if (auto s = p(&get_meta_, "SELECT value FROM meta WHERE key=?"); !s) return s;
  if (auto s = p(&set_meta_, "INSERT INTO meta(key, value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"); !s) return s;
  upsert_.resize(nres_);
  select_.resize(nres_);
  delete_.resize(nres_);
  lsn_.resize(nres_);
  for (size_t r = 0; r < nres_; ++r) {
    // Counters and gauges merge in SQL; distributions (sketch blobs) merge in C++ and replace.
    if (auto s = p(&upsert_[r], "INSERT INTO " + table(r) +
                                    "(series_id, t, sum, count, min, max, last, sketch, lsn) VALUES(?,?,?,?,?,?,?,?,?)"
                                    " ON CONFLICT(series_id, t) DO UPDATE SET sum=sum+excluded.sum,"
                                    " count=count+excluded.count, min=min(min, excluded.min),"
                                    " max=max(max, excluded.max), last=excluded.last, sketch=excluded.sketch,"
                                    " lsn=excluded.lsn");
        !s)
      return s;
    if (auto s = p(&select_[r], "SELECT sum, count, min, max, last, sketch FROM " + table(r) +
                                    " WHERE series_id=? AND t=?");
        !s)
      return s;
    if (auto s = p(&delete_[r], "DELETE FROM " + table(r) + " WHERE series_id=? AND t<?"); !s) return s;
    if (auto s = p(&lsn_[r], "SELECT lsn FROM " + table(r) + " WHERE series_id=? AND t=?"); !s) return s;
  }
  return Status::ok();
}

Result<std::vector<SeriesInfo>> ShardStore::load_series() {
  auto st = db_->prepare("SELECT id, metric, tags, kind FROM series");
  if (!st) return st.status();
  std::vector<SeriesInfo> out;
  while (true) {
    auto row = st->step();
    if (!row) return row.status();
    if (!*row) break;
    SeriesInfo info;
    info.id = static_cast<uint64_t>(st->int64(0));
    info.metric = std::string(st->text(1));
    auto key = parse_series_key(std::string(info.metric) + std::string(st->text(2)));
    if (!key) return Status::corruption(path_ + ": series " + std::to_string(info.id) + " has bad tags");
    info.tags = std::move(key->second);
    auto kind = static_cast<Kind>(st->int64(3));
    if (kind != Kind::kCounter && kind != Kind::kGauge && kind != Kind::kDistribution)
      return Status::corruption(path_ + ": series " + std::to_string(info.id) + " has unknown kind");
    info.kind = kind;
    info.hash = series_hash(series_key(info.metric, info.tags));
    out.push_back(std::move(info));
  }
  return out;
}

Status ShardStore::begin() { return begin_.run(); }
Status ShardStore::commit() { return commit_.run(); }
void ShardStore::rollback() { (void)rollback_.run(); }

Status ShardStore::put_series(const SeriesInfo& s) {
  std::string key = series_key(s.metric, s.tags);
  put_series_.bind(1, s.id).bind(2, std::string_view(s.metric)).bind(3, std::string_view(key).substr(s.metric.size()))
      .bind(4, static_cast<int>(s.kind));
  return put_series_.run();
}

Status ShardStore::read_row(size_t res, uint64_t series_id, int64_t time, Kind kind, BucketAgg* out, bool* found) {
  auto& st = select_[res];
  st.bind(1, series_id).bind(2, time);
  auto row = st.step();
  if (!row) {
    st.reset();
    return row.status();
  }
  *found = *row;
  Status s = *row ? decode_row(st, 0, kind, out) : Status::ok();
  st.reset();
  return s;
}

Status ShardStore::merge_bucket(uint64_t series_id, Kind kind, size_t res, int64_t time, const BucketAgg& agg,
                                uint64_t lsn, BucketAgg* merged_out) {
  // The upsert adds sum and count and takes min/max in SQL; a sketch cannot merge in SQL, so for
  // distributions the merged sketch is computed here and replaces the stored blob.
  BucketAgg merged;
  if (kind == Kind::kDistribution || merged_out) {
    bool found = false;
    if (auto s = read_row(res, series_id, time, kind, &merged, &found); !s) return s;
    if (found) merged.merge(agg, kind);
    else merged = agg;
    if (merged_out) *merged_out = merged;
  }
  const bool has_values = kind == Kind::kCounter || agg.count > 0;
  std::string blob;
  if (kind == Kind::kDistribution && merged.sketch) blob = encode_sketch(*merged.sketch);
  auto& st = upsert_[res];
  st.bind(1, series_id).bind(2, time).bind(3, agg.sum).bind(4, agg.count)
      .bind(5, has_values ? finite_or_zero(agg.min) : 0.0)
      .bind(6, has_values ? finite_or_zero(agg.max) : 0.0)
      .bind(7, agg.last)
      .bind(9, lsn);
  if (!blob.empty()) st.bind_blob(8, blob.data(), blob.size());
  else st.bind_null(8);
  return st.run();
}

Status ShardStore::delete_before(uint64_t series_id, size_t res, int64_t before, int64_t* deleted) {
  auto& st = delete_[res];
  st.bind(1, series_id).bind(2, before);
  Status s = st.run();
  if (s && deleted) *deleted += sqlite3_changes(db_->raw());
  return s;
}

Result<uint64_t> ShardStore::stored_lsn(uint64_t series_id, size_t res, int64_t time) {
  auto& st = lsn_[res];
  st.bind(1, series_id).bind(2, time);
  auto row = st.step();
  if (!row) {
    st.reset();
    return row.status();
  }
  uint64_t lsn = *row ? static_cast<uint64_t>(st.int64(0)) : 0;
  st.reset();
  return lsn;
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
    std::lock_guard lock(readers_mu_);
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
  auto p = [&](Stmt* out, const std::string& sql) -> Status {
    auto st = r->db_->prepare(sql);
    if (!st) return st.status();
    *out = std::move(*st);
    return Status::ok();
  };
  if (auto s = p(&r->begin_, "BEGIN"); !s) return s;
  if (auto s = p(&r->end_, "COMMIT"); !s) return s;
  if (auto s = p(&r->pin_, "SELECT count(*) FROM meta"); !s) return s;
  r->read_.resize(nres_);
  for (size_t i = 0; i < nres_; ++i) {
    if (auto s = p(&r->read_[i], "SELECT t, sum, count, min, max, last, sketch FROM " + table(i) +
                                     " WHERE series_id=? AND t>=? AND t<? ORDER BY t");
        !s)
      return s;
  }
  return r;
}

void ShardStore::release_reader(std::unique_ptr<ShardReader> r) {
  std::lock_guard lock(readers_mu_);
  readers_.push_back(std::move(r));
}

Status ShardReader::begin_snapshot() {
  if (auto s = begin_.run(); !s) return s;
  // The snapshot is taken at the first read of the transaction.
  auto row = pin_.step();
  pin_.reset();
  return row.status();
}

void ShardReader::end_snapshot() { (void)end_.run(); }

Status ShardReader::read(uint64_t series_id, Kind kind, size_t res, int64_t from, int64_t to,
                         std::vector<StoredBucket>* out) {
  auto& st = read_[res];
  st.bind(1, series_id).bind(2, from).bind(3, to);
  while (true) {
    auto row = st.step();
    if (!row) {
      st.reset();
      return row.status();
    }
    if (!*row) break;
    StoredBucket b{st.int64(0), {}};
    if (auto s = decode_row(st, 1, kind, &b.agg); !s) {
      st.reset();
      return s;
    }
    out->push_back(std::move(b));
  }
  st.reset();
  return Status::ok();
}

}  // namespace tally::collector
