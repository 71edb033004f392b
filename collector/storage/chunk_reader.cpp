// ChunkLayout's reader (chunk_layout.h draws the layout): reads a snapshot's hot rows, segments and
// chunks of a set of series, as buckets or straight into a grid of counter sums.
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
    uint32_t visited = 0;
    auto on_blob = [&](Tier t, size_t i, int64_t start, int64_t lo, int64_t hi,
                       std::string_view blob) -> Status {
      if (auto s = past_deadline(&visited); !s) return s;
      if (auto s = decode_chunk(blob, series[i].kind, tier_slots(t, res_[r]), &slots); !s) return s;
      auto& dst = (*out)[i];
      for (auto& sl : slots) {
        const int64_t time = start + sl.index * res_[r].step_s;
        if (time >= lo && time < hi) dst.push_back({time, std::move(sl.agg)});
      }
      return Status::ok();
    };
    auto on_row = [&](size_t i, int64_t time, HotEntry& e) -> Status {
      if (auto s = past_deadline(&visited); !s) return s;
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
    uint32_t visited = 0;
    auto on_blob = [&](Tier t, size_t i, int64_t start, int64_t lo, int64_t hi,
                       std::string_view blob) -> Status {
      if (auto s = past_deadline(&visited); !s) return s;
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
      if (auto s = past_deadline(&visited); !s) return s;
      add_to_grid(grid, out + rows[i] * steps, time, e.agg.sum);
      return Status::ok();
    };
    return visit(series, r, std::max(grid.from, grid.since), grid.to, shard_series, on_blob,
                 on_row);
  }

  Result<std::optional<int64_t>> earliest(size_t r) override {
    if (r >= res_.size()) return Status::invalid_argument("no resolution " + std::to_string(r));
    if (auto s = prepare_res(r); !s) return s;
    auto& p = per_res_[r];
    std::optional<int64_t> first;
    auto take = [&](int64_t t) { first = first ? std::min(*first, t) : t; };
    bool found = false;
    int64_t v = 0;
    auto get = [&](const Stmt& st) {
      v = st.int64(0);
      return Status::ok();
    };
    if (auto s = one_row(p.hot_first, &found, get); !s) return s;
    if (found) take(v);
    for (Tier t : {kSeg, kChunk}) {
      if (auto s = one_row(p.tier[t].first, &found, get); !s) return s;
      if (found) take(key_index(v) * window(t, r));
    }
    return first;
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

Result<std::unique_ptr<PointReader>> make_chunk_reader(Db& db,
                                                       const std::vector<Resolution>& resolutions) {
  auto r = std::make_unique<ChunkReader>(db, resolutions);
  if (auto s = r->prepare(); !s) return s;
  return std::unique_ptr<PointReader>(std::move(r));
}

}  // namespace tally::collector
