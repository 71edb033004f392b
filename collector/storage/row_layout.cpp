// RowLayout: one row per (series, bucket) in points_<res>. The first storage format (16 bytes a
// point on the standard dataset); kept as the reference the chunk layout is tested against and as
// the baseline of bench_storage.
#include <cmath>

#include "storage/point_layout.h"
#include "tally/common/wire.h"

namespace tally::collector {
namespace {

std::string table(size_t res) {
  return "points_" + std::to_string(res);
}

// min/max are stored only when there is data; an empty aggregate's +-inf is not a value.
double finite_or_zero(double v) {
  return std::isfinite(v) ? v : 0.0;
}

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

Status prepare_into(Db& db, Stmt* out, const std::string& sql) {
  auto st = db.prepare(sql);
  if (!st) return st.status();
  *out = std::move(*st);
  return Status::ok();
}

class RowWriter final : public PointWriter {
 public:
  RowWriter(Db& db, size_t nres) : db_(db), nres_(nres) {}

  Status prepare() {
    upsert_.resize(nres_);
    select_.resize(nres_);
    delete_.resize(nres_);
    delete_all_.resize(nres_);
    lsn_.resize(nres_);
    for (size_t r = 0; r < nres_; ++r) {
      // Counters and gauges merge in SQL; distributions (sketch blobs) merge in C++ and replace.
      if (auto s = prepare_into(db_, &upsert_[r],
                                "INSERT INTO " + table(r) +
                                    "(series_id, t, sum, count, min, max, last, sketch, lsn)"
                                    " VALUES(?,?,?,?,?,?,?,?,?)"
                                    " ON CONFLICT(series_id, t) DO UPDATE SET sum=sum+excluded.sum,"
                                    " count=count+excluded.count, min=min(min, excluded.min),"
                                    " max=max(max, excluded.max), last=excluded.last,"
                                    " sketch=excluded.sketch, lsn=excluded.lsn");
          !s)
        return s;
      if (auto s = prepare_into(db_, &select_[r],
                                "SELECT sum, count, min, max, last, sketch FROM " + table(r) +
                                    " WHERE series_id=? AND t=?");
          !s)
        return s;
      if (auto s = prepare_into(db_, &delete_[r],
                                "DELETE FROM " + table(r) + " WHERE series_id=? AND t<?");
          !s)
        return s;
      if (auto s = prepare_into(db_, &delete_all_[r], "DELETE FROM " + table(r) + " WHERE t<?"); !s)
        return s;
      if (auto s = prepare_into(db_, &lsn_[r],
                                "SELECT lsn FROM " + table(r) + " WHERE series_id=? AND t=?");
          !s)
        return s;
    }
    return Status::ok();
  }

  Status merge(uint64_t series_id, Kind kind, size_t res, int64_t time, const BucketAgg& agg,
               uint64_t lsn, BucketAgg* merged_out) override {
    // The upsert adds sum and count and takes min/max in SQL; a sketch cannot merge in SQL, so for
    // distributions the merged sketch is computed here and replaces the stored blob.
    BucketAgg merged;
    if (kind == Kind::kDistribution || merged_out) {
      bool found = false;
      if (auto s = read_row(res, series_id, time, kind, &merged, &found); !s) return s;
      if (found)
        merged.merge(agg, kind);
      else
        merged = agg;
      if (merged_out) *merged_out = merged;
    }
    const bool has_values = kind == Kind::kCounter || agg.count > 0;
    std::string blob;
    if (kind == Kind::kDistribution && merged.sketch) blob = encode_sketch(*merged.sketch);
    auto& st = upsert_[res];
    st.bind(1, series_id)
        .bind(2, time)
        .bind(3, agg.sum)
        .bind(4, agg.count)
        .bind(5, has_values ? finite_or_zero(agg.min) : 0.0)
        .bind(6, has_values ? finite_or_zero(agg.max) : 0.0)
        .bind(7, agg.last)
        .bind(9, lsn);
    if (!blob.empty())
      st.bind_blob(8, blob.data(), blob.size());
    else
      st.bind_null(8);
    return st.run();
  }

  Status delete_before(uint64_t series_id, size_t res, int64_t before, int64_t* deleted) override {
    auto& st = delete_[res];
    st.bind(1, series_id).bind(2, before);
    Status s = st.run();
    if (s && deleted) *deleted += sqlite3_changes(db_.raw());
    return s;
  }

  Status delete_all_before(size_t res, int64_t before, int64_t* deleted) override {
    auto& st = delete_all_[res];
    st.bind(1, before);
    Status s = st.run();
    if (s && deleted) *deleted += sqlite3_changes(db_.raw());
    return s;
  }

  Result<uint64_t> stored_lsn(uint64_t series_id, size_t res, int64_t time) override {
    auto& st = lsn_[res];
    st.bind(1, series_id).bind(2, time);
    auto row = st.step();
    uint64_t lsn = row && *row ? static_cast<uint64_t>(st.int64(0)) : 0;
    st.reset();
    if (!row) return row.status();
    return lsn;
  }

  Status compact(int64_t, CompactStats*, const std::function<void()>&) override {
    return Status::ok();
  }

 private:
  Status read_row(size_t res, uint64_t series_id, int64_t time, Kind kind, BucketAgg* out,
                  bool* found) {
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

  Db& db_;
  const size_t nres_;
  std::vector<Stmt> upsert_, select_, delete_, delete_all_, lsn_;
};

class RowReader final : public PointReader {
 public:
  RowReader(Db& db, size_t nres) : db_(db), nres_(nres) {}

  Status prepare() {
    if (auto s = prepare_into(db_, &pin_, "SELECT count(*) FROM meta"); !s) return s;
    read_.resize(nres_);
    for (size_t i = 0; i < nres_; ++i) {
      if (auto s = prepare_into(db_, &read_[i],
                                "SELECT t, sum, count, min, max, last, sketch FROM " + table(i) +
                                    " WHERE series_id=? AND t>=? AND t<? ORDER BY t");
          !s)
        return s;
    }
    return Status::ok();
  }

  Status pin() override { return pin_.run(); }

  Status read(const std::vector<SeriesRef>& series, size_t res, int64_t from, int64_t to, size_t,
              std::vector<std::vector<StoredBucket>>* out) override {
    out->assign(series.size(), {});
    if (res >= nres_) return Status::invalid_argument("no resolution " + std::to_string(res));
    uint32_t visited = 0;
    for (size_t i = 0; i < series.size(); ++i) {
      Status s = scan(series[i], res, from, to, [&](int64_t t, const Stmt& st) -> Status {
        if (auto d = past_deadline(&visited); !d) return d;
        StoredBucket b{t, {}};
        if (auto d = decode_row(st, 1, series[i].kind, &b.agg); !d) return d;
        (*out)[i].push_back(std::move(b));
        return Status::ok();
      });
      if (!s) return s;
    }
    return Status::ok();
  }

  Status add_counter_sums(const std::vector<SeriesRef>& series, const std::vector<uint32_t>& rows,
                          size_t res, const StepGrid& grid, size_t, double* out) override {
    if (res >= nres_) return Status::invalid_argument("no resolution " + std::to_string(res));
    const size_t steps = grid.steps();
    uint32_t visited = 0;
    for (size_t i = 0; i < series.size(); ++i) {
      double* row = out + rows[i] * steps;
      Status s = scan(series[i], res, std::max(grid.from, grid.since), grid.to,
                      [&](int64_t t, const Stmt& st) -> Status {
                        if (auto d = past_deadline(&visited); !d) return d;
                        add_to_grid(grid, row, t, st.real(1));
                        return Status::ok();
                      });
      if (!s) return s;
    }
    return Status::ok();
  }

  Result<std::optional<int64_t>> earliest(size_t res) override {
    if (res >= nres_) return Status::invalid_argument("no resolution " + std::to_string(res));
    auto st = db_.prepare("SELECT MIN(t) FROM " + table(res));
    if (!st) return st.status();
    auto row = st->step();
    if (!row) return row.status();
    if (!*row || st->is_null(0)) return std::optional<int64_t>();
    return std::optional<int64_t>(st->int64(0));
  }

 private:
  template <typename Fn>
  Status scan(const SeriesRef& series, size_t res, int64_t from, int64_t to, Fn&& fn) {
    auto& st = read_[res];
    st.bind(1, series.id).bind(2, from).bind(3, to);
    while (true) {
      auto row = st.step();
      if (!row) {
        st.reset();
        return row.status();
      }
      if (!*row) break;
      if (auto s = fn(st.int64(0), st); !s) {
        st.reset();
        return s;
      }
    }
    st.reset();
    return Status::ok();
  }

  Db& db_;
  const size_t nres_;
  Stmt pin_;
  std::vector<Stmt> read_;
};

}  // namespace

std::string row_layout_schema(const std::vector<Resolution>& resolutions) {
  std::string schema;
  for (size_t r = 0; r < resolutions.size(); ++r) {
    // One row per (series, bucket); the primary key makes a time-range scan of a series one range.
    schema += "CREATE TABLE IF NOT EXISTS " + table(r) +
              "(series_id INTEGER NOT NULL, t INTEGER NOT NULL, sum REAL NOT NULL, count INTEGER "
              "NOT NULL,"
              " min REAL NOT NULL, max REAL NOT NULL, last REAL NOT NULL, sketch BLOB, lsn INTEGER "
              "NOT NULL,"
              " PRIMARY KEY(series_id, t)) WITHOUT ROWID;";
  }
  return schema;
}

Result<std::unique_ptr<PointWriter>> make_row_writer(Db& db,
                                                     const std::vector<Resolution>& resolutions) {
  auto w = std::make_unique<RowWriter>(db, resolutions.size());
  if (auto s = w->prepare(); !s) return s;
  return std::unique_ptr<PointWriter>(std::move(w));
}

Result<std::unique_ptr<PointReader>> make_row_reader(Db& db,
                                                     const std::vector<Resolution>& resolutions) {
  auto r = std::make_unique<RowReader>(db, resolutions.size());
  if (auto s = r->prepare(); !s) return s;
  return std::unique_ptr<PointReader>(std::move(r));
}

}  // namespace tally::collector
