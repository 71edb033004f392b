// ChunkLayout: a resolution's points in three tiers with disjoint time ranges (chunk_format.h):
//
//   chunk_<step> [.., chunk_until)         key (t / (step * chunk_slots(step))) << 32 | series
//                                          -> blob
//   seg_<step>   [chunk_until, seg_until)  key (t / (step * kSegmentSlots)) << 32 | series
//                                          -> blob
//   hot_<step>   [seg_until, ..)           (t, series id >> kHotGroupBits) -> that time's buckets
//
// meta('seg_until.<step>') and meta('chunk_until.<step>') hold the two boundaries; compaction moves
// them forward in the same transaction that moves the data, so a reader's snapshot always sees
// every bucket exactly once. Writes go to the tier that holds their time: new buckets to hot
// rows (gathered per row during the transaction and written at commit, as appends since time
// leads the key), late ones into their segment or chunk (decode, merge, re-encode). Compaction
// streams: one cursor per slot of the window, merged by series id, so memory holds one series
// (or one hot-row group) at a time and the new blobs append in key order.
//
// This header holds what the three parts share: tier and table names, blob keys, statement
// helpers. chunk_writer.cpp writes and compacts, chunk_reader.cpp reads, chunk_migration.cpp
// converts a file of plain rows. Private to storage/.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "storage/chunk_codec.h"
#include "storage/chunk_format.h"
#include "storage/point_layout.h"

namespace tally::collector::chunk_layout {

namespace cf = chunk_format;

enum Tier { kSeg = 0, kChunk = 1 };
constexpr const char* kTierTable[2] = {"seg_", "chunk_"};
// Buckets per blob of a tier at a resolution.
inline uint32_t tier_slots(Tier t, const Resolution& r) {
  return t == kSeg ? cf::kSegmentSlots : cf::chunk_slots(r.step_s);
}

// Tables and boundaries are named by the resolution's step in seconds (hot_1, chunk_10, ...), not
// its place in the retention list, so a changed list never reads one step's data as another's.
inline std::string hot_table(const Resolution& r) {
  return "hot_" + std::to_string(r.step_s);
}
inline std::string tier_table(Tier t, const Resolution& r) {
  return kTierTable[t] + std::to_string(r.step_s);
}
inline std::string until_key(Tier t, const Resolution& r) {
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

inline Status prepare_into(Db& db, Stmt* out, const std::string& sql) {
  auto st = db.prepare(sql);
  if (!st) return st.status();
  *out = std::move(*st);
  return Status::ok();
}

inline uint64_t hot_group(uint64_t series_id) {
  return series_id >> cf::kHotGroupBits;
}

// Merges `later` into the entry for its series (inserting it), keeping entries sorted by id.
inline Status merge_entry(std::vector<HotEntry>* entries, HotEntry&& later, BucketAgg** merged) {
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
inline BucketAgg& merge_slot(std::vector<ChunkSlot>* slots, uint32_t index, const BucketAgg& agg,
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

inline Status prepare_tier(Db& db, Tier t, const Resolution& r, TierStmts* s) {
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

}  // namespace tally::collector::chunk_layout
