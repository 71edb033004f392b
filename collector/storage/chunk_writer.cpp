// ChunkLayout's writer (chunk_layout.h draws the layout): merges buckets into the tier that holds
// their time, and compaction moves hot rows into segments and segments into chunks.
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

class ChunkWriter final : public PointWriter {
  struct RowKey {
    size_t res;
    int64_t t;
    uint64_t grp;
    bool operator<(const RowKey& o) const {
      return std::tie(res, t, grp) < std::tie(o.res, o.t, o.grp);
    }
    bool operator==(const RowKey&) const = default;
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

  Status compact(int64_t watermark, CompactStats* stats,
                 const std::function<void()>& between) override {
    for (size_t r = 0; r < res_.size(); ++r) {
      // Hot rows -> segments, for every segment window that has ended; and, at 10 s and coarser,
      // the open window's final buckets once there are kPartialSegmentBuckets of them
      // (chunk_format.h).
      int64_t seg_target = bucket_start(watermark, window(kSeg, r));
      if (window(kSeg, r) >= cf::kPartialSegmentMinWindowS) {
        const int64_t final_end = bucket_start(watermark, res_[r].step_s);
        if (final_end - std::max(seg_target, until_[kSeg][r]) >=
            int64_t{cf::kPartialSegmentBuckets} * res_[r].step_s)
          seg_target = final_end;
      }
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
          const int64_t w = bucket_start(first, window(kSeg, r));
          if (auto s = transaction([&] {
                return compact_hot(r, w, std::min(w + window(kSeg, r), seg_target), stats, between);
              });
              !s)
            return s;
        }
        if (until_[kSeg][r] < seg_target) {
          if (auto s = transaction([&] { return set_until(kSeg, r, seg_target); }); !s) return s;
        }
      }
      // Segments -> chunks, for every chunk window below the segment boundary, and the open
      // window's segments so far once there are kPartialChunkSegments of them (chunk_format.h).
      // Only whole segments move: the last one may be partial (above).
      int64_t chunk_target = bucket_start(until_[kSeg][r], window(kChunk, r));
      const int64_t whole = bucket_start(until_[kSeg][r], window(kSeg, r));
      if (whole - std::max(chunk_target, until_[kChunk][r]) >=
          int64_t{cf::partial_chunk_segments(tier_slots(kChunk, res_[r]) / cf::kSegmentSlots)} *
              window(kSeg, r))
        chunk_target = whole;
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
          const int64_t c = bucket_start(start, window(kChunk, r));
          if (auto s = transaction([&] {
                return compact_segments(r, c, std::min(c + window(kChunk, r), chunk_target), stats,
                                        between);
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
    // A flush merges bucket after bucket of one window, in series order: mostly the row of the
    // call before. Rows go to SQLite (inside the transaction) once kMaxPendingRows have gathered,
    // so a checkpoint of a million series does not hold all its rows in memory at once; a row
    // merged again after that is loaded back and merged like any stored row.
    const RowKey key{r, time, hot_group(series_id)};
    if (!last_row_ || !(last_key_ == key)) {
      if (pending_.size() >= kMaxPendingRows && !pending_.contains(key)) {
        if (auto s = write_pending(); !s) return s;
      }
      last_row_ = &pending_[key];
      last_key_ = key;
    }
    PendingRow& row = *last_row_;
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
  Status before_commit() override { return write_pending(); }
  void after_rollback() override {
    pending_.clear();
    last_row_ = nullptr;
  }

 private:
  // Writes the gathered rows (stored (+) gathered) into the open transaction.
  Status write_pending() {
    Status s;
    for (auto& [key, row] : pending_) {
      if (!row.loaded) s = load_pending(key.res, key.t, key.grp, &row);
      if (s) s = store_hot(key.res, key.t, key.grp, row.entries, row.lsn);
      if (!s) break;
    }
    pending_.clear();
    last_row_ = nullptr;
    return s;
  }

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
  // Calls between() every kYieldEvery series of an encoding pass.
  static constexpr uint32_t kYieldEvery = 4096;

  Status compact_hot(size_t r, int64_t w, int64_t end, CompactStats* stats,
                     const std::function<void()>& between) {
    auto& p = per_res_[r];
    const int64_t step = res_[r].step_s;
    const uint32_t n = cf::kSegmentSlots;
    // Buckets of [w, end) only: the rest of an open window stays hot (kPartialSegmentBuckets).
    const auto used = static_cast<uint32_t>(std::clamp<int64_t>((end - w + step - 1) / step, 0, n));
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
    for (uint32_t k = 0; s && k < used; ++k) {
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
    uint32_t groups = 0;
    while (s) {
      uint64_t grp = std::numeric_limits<uint64_t>::max();
      for (uint32_t k = 0; k < n; ++k)
        if (live[k]) grp = std::min(grp, static_cast<uint64_t>(p.hot_cursors[k].int64(0)));
      if (grp == std::numeric_limits<uint64_t>::max()) break;
      if (between && ++groups % (kYieldEvery >> cf::kHotGroupBits) == 0) between();
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
    p.hot_delete_range.bind(1, w).bind(2, w + int64_t{used} * step);
    if (auto st = p.hot_delete_range.run(); !st) return st;
    return until_[kSeg][r] < end ? set_until(kSeg, r, end) : Status::ok();
  }

  // Moves the segments of [c, end) into the chunks of window c (end is the window's end, or less
  // for the open window: kPartialChunkSegments), merged with what those chunks hold already.
  Status compact_segments(size_t r, int64_t c, int64_t end, CompactStats* stats,
                          const std::function<void()>& between) {
    auto& p = per_res_[r];
    const uint32_t n = tier_slots(kChunk, res_[r]) / cf::kSegmentSlots;
    const auto used = static_cast<uint32_t>(
        std::clamp<int64_t>((end - c + window(kSeg, r) - 1) / window(kSeg, r), 0, n));
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
    for (uint32_t k = 0; s && k < used; ++k) {
      p.seg_cursors[k]
          .bind(1, blob_key(first_index + k, 0))
          .bind(2, blob_key(first_index + k + 1, 0));
      s = advance(k);
    }
    const bool fresh = c >= until_[kChunk][r];
    std::vector<ChunkSlot> slots, seg;
    uint32_t done = 0;
    while (s) {
      uint64_t sid = std::numeric_limits<uint64_t>::max();
      for (uint32_t k = 0; k < n; ++k)
        if (live[k]) sid = std::min(sid, key_series(p.seg_cursors[k].int64(0)));
      if (sid == std::numeric_limits<uint64_t>::max()) break;
      if (between && ++done % kYieldEvery == 0) between();
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
    del.bind(1, blob_key(first_index, 0)).bind(2, blob_key(first_index + used, 0));
    if (auto st = del.run(); !st) return st;
    return until_[kChunk][r] < end ? set_until(kChunk, r, end) : Status::ok();
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
  static constexpr size_t kMaxPendingRows = 512;  // about 9 MiB of counter rows
  std::map<RowKey, PendingRow> pending_;          // hot rows of the open transaction, in key order
  PendingRow* last_row_ = nullptr;                // in pending_: the row merge_hot used last
  RowKey last_key_{};
  Stmt begin_, commit_, rollback_, get_meta_, set_meta_;
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

}  // namespace tally::collector
