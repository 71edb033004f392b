// ChunkLayout: a resolution's points in three tiers with disjoint time ranges (chunk_format.h):
//
//   chunk_<step>  [.., chunk_until)          key (t / (step * chunk_slots(step))) << 32 | series ->
//   blob seg_<step>    [chunk_until, seg_until)   key (t / (step * kSegmentSlots)) << 32 | series
//   -> blob hot_<step>    [seg_until, ..)            (t, series id >> kHotGroupBits) -> that time's
//   buckets
//
// meta('seg_until.<step>') and meta('chunk_until.<step>') hold the two boundaries; compaction moves
// them forward in the same transaction that moves the data, so a reader's snapshot always sees
// every bucket exactly once. Writes go to the tier that holds their time: new buckets to hot
// rows (gathered per row during the transaction and written at commit, as appends since time
// leads the key), late ones into their segment or chunk (decode, merge, re-encode). Compaction
// streams: one cursor per slot of the window, merged by series id, so memory holds one series
// (or one hot-row group) at a time and the new blobs append in key order.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "storage/chunk_codec.h"
#include "storage/chunk_format.h"
#include "storage/point_layout.h"
#include "tally/common/wire.h"

namespace tally::collector {
namespace {

namespace cf = chunk_format;

constexpr double kInf = std::numeric_limits<double>::infinity();

enum Tier { kSeg = 0, kChunk = 1 };
constexpr const char* kTierTable[2] = {"seg_", "chunk_"};
// Buckets per blob of a tier at a resolution.
inline uint32_t tier_slots(Tier t, const Resolution& r) {
  return t == kSeg ? cf::kSegmentSlots : cf::chunk_slots(r.step_s);
}

// Tables and boundaries are named by the resolution's step in seconds (hot_1, chunk_10, ...), not
// its place in the retention list, so a changed list never reads one step's data as another's.
std::string hot_table(const Resolution& r) {
  return "hot_" + std::to_string(r.step_s);
}
std::string tier_table(Tier t, const Resolution& r) {
  return kTierTable[t] + std::to_string(r.step_s);
}
std::string until_key(Tier t, const Resolution& r) {
  return (t == kSeg ? "seg_until." : "chunk_until.") + std::to_string(r.step_s);
}

inline int64_t blob_key(int64_t index, uint64_t series_id) {
  return static_cast<int64_t>((static_cast<uint64_t>(index) << cf::kKeySeriesBits) | series_id);
}
inline uint64_t key_series(int64_t key) {
  return static_cast<uint64_t>(key) & cf::kMaxChunkSeriesId;
}
inline int64_t key_index(int64_t key) {
  return key >> cf::kKeySeriesBits;
}

Status prepare_into(Db& db, Stmt* out, const std::string& sql) {
  auto st = db.prepare(sql);
  if (!st) return st.status();
  *out = std::move(*st);
  return Status::ok();
}

inline uint64_t hot_group(uint64_t series_id) {
  return series_id >> cf::kHotGroupBits;
}

// Merges `later` into the entry for its series (inserting it), keeping entries sorted by id.
Status merge_entry(std::vector<HotEntry>* entries, HotEntry&& later, BucketAgg** merged) {
  auto it = std::lower_bound(entries->begin(), entries->end(), later.series_id,
                             [](const HotEntry& e, uint64_t id) { return e.series_id < id; });
  if (it != entries->end() && it->series_id == later.series_id) {
    if (it->kind != later.kind)
      return Status::corruption("series " + std::to_string(later.series_id) +
                                " stored as another kind");
    it->agg.merge(later.agg, later.kind);
  } else {
    it = entries->insert(it, std::move(later));
  }
  if (merged) *merged = &it->agg;
  return Status::ok();
}

// Merges `agg` into the slot at `index` of a decoded chunk (slots sorted by index).
BucketAgg& merge_slot(std::vector<ChunkSlot>* slots, uint32_t index, const BucketAgg& agg,
                      Kind kind) {
  auto it = std::lower_bound(slots->begin(), slots->end(), index,
                             [](const ChunkSlot& s, uint32_t i) { return s.index < i; });
  if (it != slots->end() && it->index == index) {
    it->agg.merge(agg, kind);
    return it->agg;
  }
  it = slots->insert(it, ChunkSlot{index, agg});
  return it->agg;
}

// Both the writer and the reader prepare these per resolution.
struct TierStmts {
  Stmt get;    // SELECT lsn, data WHERE key=?
  Stmt first;  // the smallest key
  Stmt scan;   // key, lsn, data for key in [?, ?)
};

Status prepare_tier(Db& db, Tier t, const Resolution& r, TierStmts* s) {
  const std::string tb = tier_table(t, r);
  if (auto st = prepare_into(db, &s->get, "SELECT lsn, data FROM " + tb + " WHERE key=?"); !st)
    return st;
  if (auto st = prepare_into(db, &s->first, "SELECT key FROM " + tb + " ORDER BY key LIMIT 1"); !st)
    return st;
  return prepare_into(db, &s->scan,
                      "SELECT key, lsn, data FROM " + tb + " WHERE key>=? AND key<? ORDER BY key");
}

// Runs a one-row query; *found tells whether there was a row, fn(stmt) reads it.
template <typename Fn>
Status one_row(Stmt& st, bool* found, Fn&& fn) {
  auto row = st.step();
  if (!row) {
    st.reset();
    return row.status();
  }
  *found = *row;
  Status s = *row ? fn(st) : Status::ok();
  st.reset();
  return s;
}

class ChunkWriter final : public PointWriter {
  struct RowKey {
    size_t res;
    int64_t t;
    uint64_t grp;
    bool operator<(const RowKey& o) const {
      return std::tie(res, t, grp) < std::tie(o.res, o.t, o.grp);
    }
  };
  struct PendingRow {
    bool loaded = false;  // entries include the stored row
    uint64_t lsn = 0;
    std::vector<HotEntry> entries;  // sorted by series id
  };

 public:
  ChunkWriter(Db& db, std::vector<Resolution> res) : db_(db), res_(std::move(res)) {}

  Status prepare() {
    const size_t n = res_.size();
    per_res_.resize(n);
    until_[kSeg].assign(n, 0);
    until_[kChunk].assign(n, 0);
    if (auto s = prepare_into(db_, &begin_, "BEGIN IMMEDIATE"); !s) return s;
    if (auto s = prepare_into(db_, &commit_, "COMMIT"); !s) return s;
    if (auto s = prepare_into(db_, &rollback_, "ROLLBACK"); !s) return s;
    if (auto s = prepare_into(db_, &get_meta_, "SELECT value FROM meta WHERE key=?"); !s) return s;
    if (auto s = prepare_into(db_, &set_meta_,
                              "INSERT INTO meta(key, value) VALUES(?,?)"
                              " ON CONFLICT(key) DO UPDATE SET value=excluded.value");
        !s)
      return s;
    for (size_t r = 0; r < n; ++r) {
      auto& p = per_res_[r];
      const std::string hot = hot_table(res_[r]);
      if (auto s =
              prepare_into(db_, &p.hot_put,
                           "INSERT OR REPLACE INTO " + hot + "(t, grp, lsn, data) VALUES(?,?,?,?)");
          !s)
        return s;
      if (auto s = prepare_into(db_, &p.hot_get,
                                "SELECT lsn, data FROM " + hot + " WHERE t=? AND grp=?");
          !s)
        return s;
      if (auto s = prepare_into(db_, &p.hot_del, "DELETE FROM " + hot + " WHERE t=? AND grp=?"); !s)
        return s;
      if (auto s = prepare_into(db_, &p.hot_first, "SELECT t FROM " + hot + " ORDER BY t LIMIT 1");
          !s)
        return s;
      if (auto s =
              prepare_into(db_, &p.hot_delete_range, "DELETE FROM " + hot + " WHERE t>=? AND t<?");
          !s)
        return s;
      if (auto s = prepare_into(db_, &p.hot_older, "SELECT t FROM " + hot + " WHERE t<? AND grp=?");
          !s)
        return s;
      for (Tier t : {kSeg, kChunk}) {
        auto& ts = p.tier[t];
        const std::string tb = tier_table(t, res_[r]);
        if (auto s = prepare_tier(db_, t, res_[r], &ts.q); !s) return s;
        if (auto s = prepare_into(
                db_, &ts.put, "INSERT OR REPLACE INTO " + tb + "(key, lsn, data) VALUES(?,?,?)");
            !s)
          return s;
        if (auto s = prepare_into(db_, &ts.del, "DELETE FROM " + tb + " WHERE key=?"); !s) return s;
        if (auto s =
                prepare_into(db_, &ts.del_range, "DELETE FROM " + tb + " WHERE key>=? AND key<?");
            !s)
          return s;
        if (auto s = prepare_into(db_, &ts.del_below, "DELETE FROM " + tb + " WHERE key<?"); !s)
          return s;
        auto v = meta(until_key(t, res_[r]));
        if (!v) return v.status();
        until_[t][r] = *v;
      }
    }
    return Status::ok();
  }

  Status merge(uint64_t series_id, Kind kind, size_t r, int64_t time, const BucketAgg& agg,
               uint64_t lsn, BucketAgg* merged_out) override {
    if (time < 0) return Status::invalid_argument("bucket time before 1970");
    if (series_id > cf::kMaxChunkSeriesId)
      return Status::invalid_argument("series id beyond the chunk key range");
    if (time >= until_[kSeg][r]) return merge_hot(series_id, kind, r, time, agg, lsn, merged_out);
    const Tier t = time >= until_[kChunk][r] ? kSeg : kChunk;
    return merge_blob(t, series_id, kind, r, time, agg, lsn, merged_out);
  }

  Status delete_before(uint64_t series_id, size_t r, int64_t before, int64_t* deleted) override {
    auto& p = per_res_[r];
    // Hot rows hold other series too: take this one out of each row older than `before`.
    std::vector<int64_t> times;
    p.hot_older.bind(1, before).bind(2, hot_group(series_id));
    while (true) {
      auto row = p.hot_older.step();
      if (!row) {
        p.hot_older.reset();
        return row.status();
      }
      if (!*row) break;
      times.push_back(p.hot_older.int64(0));
    }
    p.hot_older.reset();
    for (int64_t t : times) {
      std::vector<HotEntry> entries;
      uint64_t lsn = 0;
      if (auto s = load_hot(r, t, hot_group(series_id), &entries, &lsn, nullptr); !s) return s;
      auto it = std::lower_bound(entries.begin(), entries.end(), series_id,
                                 [](const HotEntry& e, uint64_t id) { return e.series_id < id; });
      if (it == entries.end() || it->series_id != series_id) continue;
      entries.erase(it);
      if (auto s = store_hot(r, t, hot_group(series_id), entries, lsn); !s) return s;
      if (deleted) ++*deleted;
    }
    for (Tier t : {kSeg, kChunk}) {
      auto& ts = p.tier[t];
      bool found = false;
      int64_t first = 0;
      if (auto s = one_row(ts.q.first, &found,
                           [&](const Stmt& st) {
                             first = st.int64(0);
                             return Status::ok();
                           });
          !s)
        return s;
      if (!found) continue;
      // Whole windows only: the ones that end at or before `before`.
      const int64_t limit = bucket_start(before, window(t, r)) / window(t, r);
      for (int64_t i = key_index(first); i < limit; ++i) {
        ts.del.bind(1, blob_key(i, series_id));
        if (auto s = ts.del.run(); !s) return s;
        count_changes(deleted);
      }
    }
    return Status::ok();
  }

  Status delete_all_before(size_t r, int64_t before, int64_t* deleted) override {
    auto& p = per_res_[r];
    p.hot_delete_range.bind(1, std::numeric_limits<int64_t>::min()).bind(2, before);
    if (auto s = p.hot_delete_range.run(); !s) return s;
    count_changes(deleted);
    for (Tier t : {kSeg, kChunk}) {
      const int64_t limit = bucket_start(before, window(t, r)) / window(t, r);
      if (limit <= 0) continue;
      auto& del = p.tier[t].del_below;
      del.bind(1, blob_key(limit, 0));
      if (auto s = del.run(); !s) return s;
      count_changes(deleted);
    }
    return Status::ok();
  }

  Result<uint64_t> stored_lsn(uint64_t series_id, size_t r, int64_t time) override {
    time = bucket_start(time, res_[r].step_s);
    if (time < 0 || series_id > cf::kMaxChunkSeriesId) return uint64_t{0};
    bool found = false;
    uint64_t lsn = 0;
    // A row or blob answers for a bucket it holds; for one it lacks, 0 is always safe: nothing of
    // that bucket is stored, so nothing can be counted twice.
    if (time >= until_[kSeg][r]) {
      auto& st = per_res_[r].hot_get;
      st.bind(1, time).bind(2, hot_group(series_id));
      HotEntry e;
      bool has = false;
      if (auto s = one_row(st, &found,
                           [&](const Stmt& row) {
                             lsn = static_cast<uint64_t>(row.int64(0));
                             return find_in_hot_row(row.blob(1), series_id, &e, &has);
                           });
          !s)
        return s;
      return has ? lsn : 0;
    }
    const Tier t = time >= until_[kChunk][r] ? kSeg : kChunk;
    const int64_t w = window(t, r);
    auto& st = per_res_[r].tier[t].q.get;
    st.bind(1, blob_key(bucket_start(time, w) / w, series_id));
    std::vector<ChunkSlot> slots;
    Kind kind = Kind::kCounter;
    if (auto s = one_row(st, &found,
                         [&](const Stmt& row) -> Status {
                           lsn = static_cast<uint64_t>(row.int64(0));
                           auto k = chunk_kind(row.blob(1));
                           if (!k) return k.status();
                           kind = *k;
                           return decode_chunk(row.blob(1), kind, tier_slots(t, res_[r]), &slots);
                         });
        !s)
      return s;
    const auto index = static_cast<uint32_t>((time - bucket_start(time, w)) / res_[r].step_s);
    const bool has = std::any_of(slots.begin(), slots.end(),
                                 [&](const ChunkSlot& c) { return c.index == index; });
    return found && has ? lsn : 0;
  }

  Status compact(int64_t watermark, CompactStats* stats) override {
    for (size_t r = 0; r < res_.size(); ++r) {
      // Hot rows -> segments, for every segment window that has ended.
      const int64_t seg_target = bucket_start(watermark, window(kSeg, r));
      if (seg_target > until_[kSeg][r]) {
        while (true) {
          bool found = false;
          int64_t first = 0;
          if (auto s = one_row(per_res_[r].hot_first, &found,
                               [&](const Stmt& st) {
                                 first = st.int64(0);
                                 return Status::ok();
                               });
              !s)
            return s;
          if (!found || first >= seg_target) break;
          if (auto s = transaction(
                  [&] { return compact_hot(r, bucket_start(first, window(kSeg, r)), stats); });
              !s)
            return s;
        }
        if (until_[kSeg][r] < seg_target) {
          if (auto s = transaction([&] { return set_until(kSeg, r, seg_target); }); !s) return s;
        }
      }
      // Segments -> chunks, for every chunk window below the segment boundary.
      const int64_t chunk_target = bucket_start(until_[kSeg][r], window(kChunk, r));
      if (chunk_target > until_[kChunk][r]) {
        while (true) {
          bool found = false;
          int64_t first = 0;
          if (auto s = one_row(per_res_[r].tier[kSeg].q.first, &found,
                               [&](const Stmt& st) {
                                 first = st.int64(0);
                                 return Status::ok();
                               });
              !s)
            return s;
          const int64_t start = key_index(first) * window(kSeg, r);
          if (!found || start >= chunk_target) break;
          if (auto s = transaction([&] {
                return compact_segments(r, bucket_start(start, window(kChunk, r)), stats);
              });
              !s)
            return s;
        }
        if (until_[kChunk][r] < chunk_target) {
          if (auto s = transaction([&] { return set_until(kChunk, r, chunk_target); }); !s)
            return s;
        }
      }
    }
    return Status::ok();
  }

 private:
  struct TierWriter {
    TierStmts q;
    Stmt put, del, del_range, del_below;
  };
  struct PerRes {
    Stmt hot_put, hot_get, hot_del, hot_first, hot_delete_range, hot_older;
    TierWriter tier[2];
    std::vector<Stmt> hot_cursors;  // compaction: one per slot of a segment
    std::vector<Stmt> seg_cursors;  // compaction: one per segment of a chunk
  };

  int64_t window(Tier t, size_t r) const { return res_[r].step_s * tier_slots(t, res_[r]); }

  void count_changes(int64_t* deleted) {
    if (deleted) *deleted += sqlite3_changes(db_.raw());
  }

  Result<int64_t> meta(const std::string& key) {
    get_meta_.bind(1, std::string_view(key));
    bool found = false;
    int64_t v = 0;
    if (auto s = one_row(get_meta_, &found,
                         [&](const Stmt& st) {
                           v = st.int64(0);
                           return Status::ok();
                         });
        !s)
      return s;
    return v;
  }

  // Writes the boundary; the cached value follows only once the transaction commits.
  Status set_until(Tier t, size_t r, int64_t v) {
    set_meta_.bind(1, std::string_view(until_key(t, res_[r]))).bind(2, v);
    if (auto s = set_meta_.run(); !s) return s;
    pending_until_.push_back({t, r, v});
    return Status::ok();
  }

  template <typename Fn>
  Status transaction(Fn&& fn) {
    pending_until_.clear();
    if (auto s = begin_.run(); !s) return s;
    Status s = fn();
    if (s) s = commit_.run();
    if (!s) {
      (void)rollback_.run();
      pending_until_.clear();
      return s;
    }
    for (const auto& p : pending_until_)
      until_[p.tier][p.res] = std::max(until_[p.tier][p.res], p.value);
    pending_until_.clear();
    return Status::ok();
  }

  // A bucket into its hot row. Rows gather in pending_ and are written by before_commit(), so a
  // flush writes each row once; merged_out needs the stored row now, so that loads it first.
  Status merge_hot(uint64_t series_id, Kind kind, size_t r, int64_t time, const BucketAgg& agg,
                   uint64_t lsn, BucketAgg* merged_out) {
    PendingRow& row = pending_[RowKey{r, time, hot_group(series_id)}];
    if (merged_out && !row.loaded) {
      if (auto s = load_pending(r, time, hot_group(series_id), &row); !s) return s;
    }
    BucketAgg* merged = nullptr;
    if (auto s = merge_entry(&row.entries, HotEntry{series_id, kind, agg}, &merged); !s) return s;
    row.lsn = std::max(row.lsn, lsn);
    if (merged_out) *merged_out = *merged;
    return Status::ok();
  }

  // Reads a stored hot row; *found (if given) tells whether there was one.
  Status load_hot(size_t r, int64_t t, uint64_t grp, std::vector<HotEntry>* entries, uint64_t* lsn,
                  bool* found) {
    auto& st = per_res_[r].hot_get;
    st.bind(1, t).bind(2, grp);
    bool f = false;
    if (auto s = one_row(st, &f,
                         [&](const Stmt& row) {
                           *lsn = static_cast<uint64_t>(row.int64(0));
                           return decode_hot_row(row.blob(1), entries);
                         });
        !s)
      return s;
    if (found) *found = f;
    return Status::ok();
  }

  Status store_hot(size_t r, int64_t t, uint64_t grp, const std::vector<HotEntry>& entries,
                   uint64_t lsn) {
    auto& p = per_res_[r];
    if (entries.empty()) {
      p.hot_del.bind(1, t).bind(2, grp);
      return p.hot_del.run();
    }
    const std::string data = encode_hot_row(entries);
    p.hot_put.bind(1, t).bind(2, grp).bind(3, lsn).bind_blob(4, data.data(), data.size());
    return p.hot_put.run();
  }

  // stored (+) what the transaction gathered so far, in that order.
  Status load_pending(size_t r, int64_t t, uint64_t grp, PendingRow* row) {
    std::vector<HotEntry> stored;
    uint64_t lsn = 0;
    if (auto s = load_hot(r, t, grp, &stored, &lsn, nullptr); !s) return s;
    for (auto& e : row->entries)
      if (auto s = merge_entry(&stored, std::move(e), nullptr); !s) return s;
    row->entries.swap(stored);
    row->lsn = std::max(row->lsn, lsn);
    row->loaded = true;
    return Status::ok();
  }

 public:
  Status before_commit() override {
    Status s;
    for (auto& [key, row] : pending_) {
      if (!row.loaded) s = load_pending(key.res, key.t, key.grp, &row);
      if (s) s = store_hot(key.res, key.t, key.grp, row.entries, row.lsn);
      if (!s) break;
    }
    pending_.clear();
    return s;
  }
  void after_rollback() override { pending_.clear(); }

 private:
  // A bucket into its encoded segment or chunk: decode, merge, re-encode (late points only).
  Status merge_blob(Tier t, uint64_t series_id, Kind kind, size_t r, int64_t time,
                    const BucketAgg& agg, uint64_t lsn, BucketAgg* merged_out) {
    auto& ts = per_res_[r].tier[t];
    const int64_t w = window(t, r);
    const int64_t start = bucket_start(time, w);
    const int64_t key = blob_key(start / w, series_id);
    std::vector<ChunkSlot> slots;
    uint64_t stored_lsn = 0;
    bool found = false;
    ts.q.get.bind(1, key);
    if (auto s = one_row(ts.q.get, &found,
                         [&](const Stmt& st) {
                           stored_lsn = static_cast<uint64_t>(st.int64(0));
                           return decode_chunk(st.blob(1), kind, tier_slots(t, res_[r]), &slots);
                         });
        !s)
      return s;
    const auto index = static_cast<uint32_t>((time - start) / res_[r].step_s);
    BucketAgg& merged = merge_slot(&slots, index, agg, kind);
    if (merged_out) *merged_out = merged;
    return put_blob(ts, key, std::max(stored_lsn, lsn),
                    encode_chunk(kind, tier_slots(t, res_[r]), slots));
  }

  Status put_blob(TierWriter& ts, int64_t key, uint64_t lsn, const std::string& blob) {
    ts.put.bind(1, key).bind(2, lsn).bind_blob(3, blob.data(), blob.size());
    return ts.put.run();
  }

  // Merges `slots` with what the tier already holds for `key` (only after unusual histories,
  // e.g. hot rows converted from plain rows below a boundary).
  Status merge_existing(size_t r, Tier t, int64_t key, Kind kind, std::vector<ChunkSlot>* slots,
                        uint64_t* lsn) {
    TierWriter& ts = per_res_[r].tier[t];
    bool found = false;
    std::vector<ChunkSlot> stored;
    ts.q.get.bind(1, key);
    if (auto s = one_row(ts.q.get, &found,
                         [&](const Stmt& st) {
                           *lsn = std::max(*lsn, static_cast<uint64_t>(st.int64(0)));
                           return decode_chunk(st.blob(1), kind, tier_slots(t, res_[r]), &stored);
                         });
        !s)
      return s;
    if (!found) return Status::ok();
    for (auto& sl : *slots) merge_slot(&stored, sl.index, sl.agg, kind);
    slots->swap(stored);
    return Status::ok();
  }

  // Where encoded buckets of window [w, ...) of tier t go: the tier itself, or the chunks when the
  // chunk boundary has already passed it.
  Tier target_tier(Tier t, size_t r, int64_t w) const {
    return t == kSeg && w < until_[kChunk][r] ? kChunk : t;
  }

  // Moves the hot rows of segment window [w, w + window) into segments: one cursor per slot, each
  // walking its rows in group order; a group's rows (one per slot at most) become its series'
  // segments, in id order.
  Status compact_hot(size_t r, int64_t w, CompactStats* stats) {
    auto& p = per_res_[r];
    const int64_t step = res_[r].step_s;
    const uint32_t n = cf::kSegmentSlots;
    if (p.hot_cursors.empty()) {
      p.hot_cursors.resize(n);
      for (auto& c : p.hot_cursors) {
        if (auto s = prepare_into(
                db_, &c,
                "SELECT grp, lsn, data FROM " + hot_table(res_[r]) + " WHERE t=? ORDER BY grp");
            !s)
          return s;
      }
    }
    std::vector<bool> live(n);
    auto advance = [&](uint32_t k) -> Status {
      auto row = p.hot_cursors[k].step();
      if (!row) return row.status();
      live[k] = *row;
      return Status::ok();
    };
    Status s;
    for (uint32_t k = 0; s && k < n; ++k) {
      p.hot_cursors[k].bind(1, w + k * step);
      s = advance(k);
    }
    // Encoded windows below a boundary merge with what is there (see merge_existing).
    const Tier t = target_tier(kSeg, r, w);
    const bool fresh = w >= until_[kSeg][r];
    struct Series {
      Kind kind = Kind::kCounter;
      uint64_t lsn = 0;
      std::vector<ChunkSlot> slots;
    };
    std::map<uint64_t, Series> group;
    std::vector<HotEntry> entries;
    while (s) {
      uint64_t grp = std::numeric_limits<uint64_t>::max();
      for (uint32_t k = 0; k < n; ++k)
        if (live[k]) grp = std::min(grp, static_cast<uint64_t>(p.hot_cursors[k].int64(0)));
      if (grp == std::numeric_limits<uint64_t>::max()) break;
      group.clear();
      for (uint32_t k = 0; s && k < n; ++k) {
        auto& c = p.hot_cursors[k];
        if (!live[k] || static_cast<uint64_t>(c.int64(0)) != grp) continue;
        const auto lsn = static_cast<uint64_t>(c.int64(1));
        s = decode_hot_row(c.blob(2), &entries);
        for (size_t e = 0; s && e < entries.size(); ++e) {
          Series& ser = group[entries[e].series_id];
          if (!ser.slots.empty() && ser.kind != entries[e].kind) {
            s = Status::corruption("series " + std::to_string(entries[e].series_id) +
                                   " has hot rows of two kinds");
            break;
          }
          ser.kind = entries[e].kind;
          ser.lsn = std::max(ser.lsn, lsn);
          ser.slots.push_back({k, std::move(entries[e].agg)});
        }
        if (s) s = advance(k);
        if (stats) stats->hot_rows += entries.size();
      }
      for (auto it = group.begin(); s && it != group.end(); ++it) {
        const uint64_t sid = it->first;
        Series& ser = it->second;
        if (sid > cf::kMaxChunkSeriesId) {
          s = Status::corruption("series id beyond the chunk key range");
          break;
        }
        if (t == kChunk) {
          // The chunk boundary is past this window already: merge bucket by bucket.
          for (size_t i = 0; s && i < ser.slots.size(); ++i)
            s = merge_blob(kChunk, sid, ser.kind, r, w + ser.slots[i].index * step,
                           ser.slots[i].agg, ser.lsn, nullptr);
          continue;
        }
        const int64_t key = blob_key(w / window(kSeg, r), sid);
        if (!fresh) s = merge_existing(r, kSeg, key, ser.kind, &ser.slots, &ser.lsn);
        if (s) s = put_blob(p.tier[kSeg], key, ser.lsn, encode_chunk(ser.kind, n, ser.slots));
        if (stats) ++stats->segments;
      }
    }
    for (auto& c : p.hot_cursors) c.reset();
    if (!s) return s;
    p.hot_delete_range.bind(1, w).bind(2, w + window(kSeg, r));
    if (auto st = p.hot_delete_range.run(); !st) return st;
    return until_[kSeg][r] < w + window(kSeg, r) ? set_until(kSeg, r, w + window(kSeg, r))
                                                 : Status::ok();
  }

  // Moves the segments of chunk window [c, c + window) into chunks.
  Status compact_segments(size_t r, int64_t c, CompactStats* stats) {
    auto& p = per_res_[r];
    const uint32_t n = tier_slots(kChunk, res_[r]) / cf::kSegmentSlots;
    if (p.seg_cursors.empty()) {
      p.seg_cursors.resize(n);
      for (auto& cur : p.seg_cursors) {
        if (auto s = prepare_into(db_, &cur,
                                  "SELECT key, lsn, data FROM " + tier_table(kSeg, res_[r]) +
                                      " WHERE key>=? AND key<? ORDER BY key");
            !s)
          return s;
      }
    }
    const int64_t first_index = c / window(kSeg, r);
    std::vector<bool> live(n);
    auto advance = [&](uint32_t k) -> Status {
      auto row = p.seg_cursors[k].step();
      if (!row) return row.status();
      live[k] = *row;
      return Status::ok();
    };
    Status s;
    for (uint32_t k = 0; s && k < n; ++k) {
      p.seg_cursors[k]
          .bind(1, blob_key(first_index + k, 0))
          .bind(2, blob_key(first_index + k + 1, 0));
      s = advance(k);
    }
    const bool fresh = c >= until_[kChunk][r];
    std::vector<ChunkSlot> slots, seg;
    while (s) {
      uint64_t sid = std::numeric_limits<uint64_t>::max();
      for (uint32_t k = 0; k < n; ++k)
        if (live[k]) sid = std::min(sid, key_series(p.seg_cursors[k].int64(0)));
      if (sid == std::numeric_limits<uint64_t>::max()) break;
      slots.clear();
      uint64_t lsn = 0;
      Kind kind = Kind::kCounter;
      for (uint32_t k = 0; s && k < n; ++k) {
        auto& cur = p.seg_cursors[k];
        if (!live[k] || key_series(cur.int64(0)) != sid) continue;
        auto blob = cur.blob(2);
        auto kd = chunk_kind(blob);
        if (!kd) {
          s = kd.status();
          break;
        }
        if (!slots.empty() && *kd != kind) {
          s = Status::corruption("series " + std::to_string(sid) + " has segments of two kinds");
          break;
        }
        kind = *kd;
        lsn = std::max(lsn, static_cast<uint64_t>(cur.int64(1)));
        s = decode_chunk(blob, kind, cf::kSegmentSlots, &seg);
        for (auto& sl : seg) slots.push_back({k * cf::kSegmentSlots + sl.index, std::move(sl.agg)});
        if (s) s = advance(k);
      }
      if (!s) break;
      const int64_t key = blob_key(c / window(kChunk, r), sid);
      if (!fresh) s = merge_existing(r, kChunk, key, kind, &slots, &lsn);
      if (s)
        s = put_blob(p.tier[kChunk], key, lsn,
                     encode_chunk(kind, tier_slots(kChunk, res_[r]), slots));
      if (stats) ++stats->chunks;
    }
    for (auto& cur : p.seg_cursors) cur.reset();
    if (!s) return s;
    auto& del = p.tier[kSeg].del_range;
    del.bind(1, blob_key(first_index, 0)).bind(2, blob_key(first_index + n, 0));
    if (auto st = del.run(); !st) return st;
    return until_[kChunk][r] < c + window(kChunk, r) ? set_until(kChunk, r, c + window(kChunk, r))
                                                     : Status::ok();
  }

  struct PendingUntil {
    Tier tier;
    size_t res;
    int64_t value;
  };

  Db& db_;
  const std::vector<Resolution> res_;
  std::vector<PerRes> per_res_;
  std::vector<int64_t> until_[2];  // committed boundaries, per tier and resolution
  std::vector<PendingUntil> pending_until_;
  std::map<RowKey, PendingRow> pending_;  // hot rows of the open transaction, in key order
  Stmt begin_, commit_, rollback_, get_meta_, set_meta_;
};

// Adds n consecutive slot sums, the first at time t0, into a grid row; per_step slots make a step.
void add_run(double* row, const StepGrid& grid, int64_t t0, int64_t step, int64_t per_step,
             const double* v, uint32_t n) {
  const int64_t k = (t0 - grid.from) / step;  // slots from the grid's start
  size_t idx = static_cast<size_t>(k / per_step);
  int64_t rem = k % per_step;
  uint32_t j = 0;
  if (per_step == 1) {
    for (; j < n; ++j) row[idx++] += v[j];
    return;
  }
  for (; j < n && rem != 0; ++j) {  // the rest of a step the run starts inside
    row[idx] += v[j];
    if (++rem == per_step) {
      rem = 0;
      ++idx;
    }
  }
  for (; j + per_step <= n; j += static_cast<uint32_t>(per_step)) {  // whole steps
    double sum = 0;
    for (int64_t q = 0; q < per_step; ++q) sum += v[j + q];
    row[idx++] += sum;
  }
  for (; j < n; ++j) row[idx] += v[j];
}

class ChunkReader final : public PointReader {
 public:
  ChunkReader(Db& db, std::vector<Resolution> res) : db_(db), res_(std::move(res)) {}

  Status prepare() {
    const size_t n = res_.size();
    per_res_.resize(n);
    until_[kSeg].assign(n, 0);
    until_[kChunk].assign(n, 0);
    if (auto s = prepare_into(db_, &pin_, "SELECT key, value FROM meta"); !s) return s;
    for (size_t r = 0; r < n; ++r)
      for (Tier t : {kSeg, kChunk}) until_keys_[t].push_back(until_key(t, res_[r]));
    return Status::ok();
  }

  // A resolution's statements, prepared when first read: a query reads one resolution, and a new
  // connection (a query without a warm page cache) should not pay for all of them.
  Status prepare_res(size_t r) {
    auto& p = per_res_[r];
    if (p.prepared) return Status::ok();
    {
      const std::string hot = hot_table(res_[r]);
      if (auto s =
              prepare_into(db_, &p.hot_get, "SELECT data FROM " + hot + " WHERE t=? AND grp=?");
          !s)
        return s;
      if (auto s =
              prepare_into(db_, &p.hot_scan,
                           "SELECT t, data FROM " + hot + " WHERE t>=? AND t<? ORDER BY t, grp");
          !s)
        return s;
      if (auto s = prepare_into(db_, &p.hot_first, "SELECT t FROM " + hot + " ORDER BY t LIMIT 1");
          !s)
        return s;
      if (auto s =
              prepare_into(db_, &p.hot_last, "SELECT t FROM " + hot + " ORDER BY t DESC LIMIT 1");
          !s)
        return s;
      for (Tier t : {kSeg, kChunk})
        if (auto s = prepare_tier(db_, t, res_[r], &p.tier[t]); !s) return s;
    }
    p.prepared = true;
    return Status::ok();
  }

  Status pin() override {
    for (auto& v : until_) std::fill(v.begin(), v.end(), 0);
    while (true) {
      auto row = pin_.step();
      if (!row) {
        pin_.reset();
        return row.status();
      }
      if (!*row) break;
      const std::string_view key = pin_.text(0);
      for (size_t r = 0; r < res_.size(); ++r)
        for (Tier t : {kSeg, kChunk})
          if (key == until_keys_[t][r]) until_[t][r] = pin_.int64(1);
    }
    pin_.reset();
    return Status::ok();
  }

  Status read(const std::vector<SeriesRef>& series, size_t r, int64_t from, int64_t to,
              size_t shard_series, std::vector<std::vector<StoredBucket>>* out) override {
    out->assign(series.size(), {});
    if (r >= res_.size()) return Status::invalid_argument("no resolution " + std::to_string(r));
    std::vector<ChunkSlot> slots;
    auto on_blob = [&](Tier t, size_t i, int64_t start, int64_t lo, int64_t hi,
                       std::string_view blob) -> Status {
      if (auto s = decode_chunk(blob, series[i].kind, tier_slots(t, res_[r]), &slots); !s) return s;
      auto& dst = (*out)[i];
      for (auto& sl : slots) {
        const int64_t time = start + sl.index * res_[r].step_s;
        if (time >= lo && time < hi) dst.push_back({time, std::move(sl.agg)});
      }
      return Status::ok();
    };
    auto on_row = [&](size_t i, int64_t time, HotEntry& e) -> Status {
      (*out)[i].push_back({time, std::move(e.agg)});
      return Status::ok();
    };
    return visit(series, r, from, to, shard_series, on_blob, on_row);
  }

  Status add_counter_sums(const std::vector<SeriesRef>& series, const std::vector<uint32_t>& rows,
                          size_t r, const StepGrid& grid, size_t shard_series,
                          double* out) override {
    if (r >= res_.size()) return Status::invalid_argument("no resolution " + std::to_string(r));
    const int64_t step = res_[r].step_s;
    if (grid.step % step != 0 || grid.from % step != 0)
      return Status::invalid_argument("the grid step must be a multiple of the resolution");
    const size_t steps = grid.steps();
    const int64_t per_step = grid.step / step;
    thread_local std::vector<SlotRun> runs;
    thread_local std::vector<double> values;
    auto on_blob = [&](Tier t, size_t i, int64_t start, int64_t lo, int64_t hi,
                       std::string_view blob) -> Status {
      const uint32_t nslots = tier_slots(t, res_[r]);
      if (auto s = decode_counter_runs(blob, nslots, &runs, &values); !s) return s;
      // Slots [jlo, jhi) fall in [lo, hi); each grid step takes per_step consecutive slots.
      const auto jlo = static_cast<uint32_t>(std::max<int64_t>(0, (lo - start + step - 1) / step));
      const auto jhi =
          static_cast<uint32_t>(std::min<int64_t>(nslots, (hi - start + step - 1) / step));
      double* row = out + rows[i] * steps;
      for (const SlotRun& run : runs) {
        const uint32_t b = std::max(run.begin, jlo), e = std::min(run.end, jhi);
        if (b >= e) continue;
        add_run(row, grid, start + int64_t{b} * step, step, per_step,
                values.data() + run.first + (b - run.begin), e - b);
      }
      return Status::ok();
    };
    auto on_row = [&](size_t i, int64_t time, HotEntry& e) -> Status {
      add_to_grid(grid, out + rows[i] * steps, time, e.agg.sum);
      return Status::ok();
    };
    return visit(series, r, std::max(grid.from, grid.since), grid.to, shard_series, on_blob,
                 on_row);
  }

 private:
  struct PerRes {
    bool prepared = false;
    Stmt hot_get, hot_scan, hot_first, hot_last;
    TierStmts tier[2];
  };

  int64_t window(Tier t, size_t r) const { return res_[r].step_s * tier_slots(t, res_[r]); }

  // Point lookups for a few series, one scan per window (or of the hot range) for many: a scan
  // reads every series' row of the window, so it pays when the query wants a good share of them.
  static bool few(size_t n, size_t shard_series) {
    return shard_series == 0 || n * 8 <= shard_series;
  }

  // Calls on_blob for each segment and chunk and on_row for each hot row holding buckets of the
  // series in [from, to), tier by tier in time order, so each series' calls come in time order.
  template <typename OnBlob, typename OnRow>
  Status visit(const std::vector<SeriesRef>& series, size_t r, int64_t from, int64_t to,
               size_t shard_series, OnBlob&& on_blob, OnRow&& on_row) {
    from = std::max<int64_t>(from, 0);
    if (to <= from || series.empty()) return Status::ok();
    if (auto s = prepare_res(r); !s) return s;
    const bool lookups = few(series.size(), shard_series);
    std::unordered_map<uint64_t, size_t> index;
    if (!lookups) {
      index.reserve(series.size() * 2);
      for (size_t i = 0; i < series.size(); ++i) index.emplace(series[i].id, i);
    }
    const int64_t cu = until_[kChunk][r], su = until_[kSeg][r];
    if (auto s = visit_tier(kChunk, series, r, from, std::min(to, cu), lookups, index, on_blob); !s)
      return s;
    if (auto s = visit_tier(kSeg, series, r, std::max(from, cu), std::min(to, su), lookups, index,
                            on_blob);
        !s)
      return s;
    return visit_hot(series, r, std::max(from, su), to, lookups, index, on_row);
  }

  template <typename OnBlob>
  Status visit_tier(Tier t, const std::vector<SeriesRef>& series, size_t r, int64_t lo, int64_t hi,
                    bool lookups, const std::unordered_map<uint64_t, size_t>& index,
                    OnBlob&& on_blob) {
    if (lo >= hi) return Status::ok();
    auto& ts = per_res_[r].tier[t];
    // Start at the oldest stored window rather than walk empty ones.
    bool found = false;
    int64_t first = 0;
    if (auto s = one_row(ts.first, &found,
                         [&](const Stmt& st) {
                           first = st.int64(0);
                           return Status::ok();
                         });
        !s)
      return s;
    if (!found) return Status::ok();
    const int64_t w = window(t, r);
    for (int64_t c = std::max(bucket_start(lo, w), key_index(first) * w); c < hi; c += w) {
      const int64_t wi = c / w;
      if (lookups) {
        for (size_t i = 0; i < series.size(); ++i) {
          if (series[i].id > cf::kMaxChunkSeriesId) continue;
          ts.get.bind(1, blob_key(wi, series[i].id));
          if (auto s =
                  one_row(ts.get, &found,
                          [&](const Stmt& st) { return on_blob(t, i, c, lo, hi, st.blob(1)); });
              !s)
            return s;
        }
        continue;
      }
      ts.scan.bind(1, blob_key(wi, 0)).bind(2, blob_key(wi + 1, 0));
      while (true) {
        auto row = ts.scan.step();
        if (!row) {
          ts.scan.reset();
          return row.status();
        }
        if (!*row) break;
        auto it = index.find(key_series(ts.scan.int64(0)));
        if (it == index.end()) continue;
        if (auto s = on_blob(t, it->second, c, lo, hi, ts.scan.blob(2)); !s) {
          ts.scan.reset();
          return s;
        }
      }
      ts.scan.reset();
    }
    return Status::ok();
  }

  template <typename OnRow>
  Status visit_hot(const std::vector<SeriesRef>& series, size_t r, int64_t lo, int64_t hi,
                   bool lookups, const std::unordered_map<uint64_t, size_t>& index,
                   OnRow&& on_row) {
    if (lo >= hi) return Status::ok();
    auto& p = per_res_[r];
    auto deliver = [&](size_t i, int64_t t, HotEntry& e) -> Status {
      if (e.kind != series[i].kind)
        return Status::corruption("series " + std::to_string(series[i].id) +
                                  " has hot rows of another kind");
      return on_row(i, t, e);
    };
    if (!lookups) {
      std::vector<HotEntry> entries;
      p.hot_scan.bind(1, lo).bind(2, hi);
      while (true) {
        auto row = p.hot_scan.step();
        if (!row) {
          p.hot_scan.reset();
          return row.status();
        }
        if (!*row) break;
        const int64_t t = p.hot_scan.int64(0);
        Status s = decode_hot_row(p.hot_scan.blob(1), &entries);
        for (size_t k = 0; s && k < entries.size(); ++k) {
          auto it = index.find(entries[k].series_id);
          if (it != index.end()) s = deliver(it->second, t, entries[k]);
        }
        if (!s) {
          p.hot_scan.reset();
          return s;
        }
      }
      p.hot_scan.reset();
      return Status::ok();
    }
    // Look up only between the first and the last hot bucket.
    bool found = false;
    auto get_t = [](int64_t* v) {
      return [v](const Stmt& st) {
        *v = st.int64(0);
        return Status::ok();
      };
    };
    int64_t first = 0, last = 0;
    if (auto s = one_row(p.hot_first, &found, get_t(&first)); !s || !found) return s;
    if (auto s = one_row(p.hot_last, &found, get_t(&last)); !s || !found) return s;
    const int64_t step = res_[r].step_s;
    lo = std::max(lo, first);
    hi = std::min(hi, last + step);
    HotEntry e;
    for (int64_t t = bucket_start(lo, step); t < hi; t += step) {
      if (t < lo) continue;
      for (size_t i = 0; i < series.size(); ++i) {
        bool has = false;
        p.hot_get.bind(1, t).bind(2, hot_group(series[i].id));
        if (auto s = one_row(p.hot_get, &found,
                             [&](const Stmt& st) {
                               return find_in_hot_row(st.blob(0), series[i].id, &e, &has);
                             });
            !s)
          return s;
        if (has) {
          if (auto s = deliver(i, t, e); !s) return s;
        }
      }
    }
    return Status::ok();
  }

  Db& db_;
  const std::vector<Resolution> res_;
  std::vector<PerRes> per_res_;
  std::vector<int64_t> until_[2];  // as of the pinned snapshot
  std::vector<std::string> until_keys_[2];
  Stmt pin_;
};

}  // namespace

std::string chunk_layout_schema(const std::vector<Resolution>& resolutions) {
  std::string schema;
  for (size_t r = 0; r < resolutions.size(); ++r) {
    // Hot rows: time leads the key so each flush appends.
    schema += "CREATE TABLE IF NOT EXISTS " + hot_table(resolutions[r]) +
              "(t INTEGER NOT NULL, grp INTEGER NOT NULL, lsn INTEGER NOT NULL, data BLOB NOT NULL,"
              " PRIMARY KEY(t, grp)) WITHOUT ROWID;";
    // Encoded blobs: a rowid table packs 0.1-4 KiB rows into pages better than a WITHOUT ROWID one.
    for (Tier t : {kSeg, kChunk})
      schema += "CREATE TABLE IF NOT EXISTS " + tier_table(t, resolutions[r]) +
                "(key INTEGER PRIMARY KEY, lsn INTEGER NOT NULL, data BLOB NOT NULL);";
  }
  return schema;
}

Result<std::unique_ptr<PointWriter>> make_chunk_writer(Db& db,
                                                       const std::vector<Resolution>& resolutions) {
  auto w = std::make_unique<ChunkWriter>(db, resolutions);
  if (auto s = w->prepare(); !s) return s;
  return std::unique_ptr<PointWriter>(std::move(w));
}

Result<std::unique_ptr<PointReader>> make_chunk_reader(Db& db,
                                                       const std::vector<Resolution>& resolutions) {
  auto r = std::make_unique<ChunkReader>(db, resolutions);
  if (auto s = r->prepare(); !s) return s;
  return std::unique_ptr<PointReader>(std::move(r));
}

Status drop_chunk_layout_step(Db& db, int64_t step_s) {
  const Resolution r{step_s, 0};
  std::string sql = "BEGIN IMMEDIATE;DROP TABLE IF EXISTS " + hot_table(r) + ";";
  for (Tier t : {kSeg, kChunk})
    sql += "DROP TABLE IF EXISTS " + tier_table(t, r) + ";DELETE FROM meta WHERE key='" +
           until_key(t, r) + "';";
  sql += "COMMIT;";
  if (auto s = db.exec(sql); !s) {
    (void)db.exec("ROLLBACK");
    return s;
  }
  return Status::ok();
}

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
