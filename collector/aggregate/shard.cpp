#include "aggregate/shard.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "tally/common/wire.h"

namespace tally::collector {
namespace {

wire::LiveUpdate make_update(const SeriesInfo& info, int64_t time, const BucketAgg& agg,
                             wire::LiveUpdate::State state) {
  wire::LiveUpdate u;
  u.set_metric(info.metric);
  for (const auto& t : info.tags) {
    auto* tag = u.add_tags();
    tag->set_key(t.key);
    tag->set_value(t.value);
  }
  u.set_kind(kind_to_proto(info.kind));
  u.set_resolution_s(1);
  u.set_time(time);
  u.set_state(state);
  u.set_sum(agg.sum);
  u.set_count(agg.count);
  if (info.kind != Kind::kCounter && agg.count > 0) {
    u.set_min(agg.min);
    u.set_max(agg.max);
  }
  switch (info.kind) {
    case Kind::kCounter: u.set_value(agg.sum); break;
    case Kind::kGauge: u.set_value(agg.last); break;
    case Kind::kDistribution:
      u.set_value(static_cast<double>(agg.count));
      if (agg.sketch) sketch_to_proto(*agg.sketch, u.mutable_sketch());
      break;
  }
  return u;
}

}  // namespace

Shard::Shard(ShardOptions opts, std::unique_ptr<ShardStore> store, const Clock& clock, LivePublisher* live,
             SelfMetrics& metrics)
    : opts_(std::move(opts)), store_(std::move(store)), clock_(clock), live_(live), metrics_(metrics) {
  due_.resize(opts_.resolutions.size());
  // Where the last run left off; a store that cannot say starts from zero (replay re-checks).
  if (auto a = store_->get_meta("applied_lsn", 0); a) applied_lsn_ = static_cast<uint64_t>(*a);
  if (auto s = store_->get_meta("safe_lsn", 0); s) safe_lsn_ = static_cast<uint64_t>(*s);
}

Shard::~Shard() { stop(); }

void Shard::start() {
  // The first retention pass runs right away: a shortened retention applies on start.
  last_retention_s_ = clock_.now_s() - opts_.retention_every_s;
  last_checkpoint_s_ = clock_.now_s();
  replay_lsn_cache_.clear();
  thread_ = std::thread([this] { run(); });
}

void Shard::stop() {
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Shard::submit(ShardWork&& work) {
  {
    std::lock_guard lock(queue_mu_);
    queue_.push_back(std::move(work));
  }
  metrics_.queue_depth.fetch_add(1, std::memory_order_relaxed);
  queue_cv_.notify_one();
}

bool Shard::wait_applied(std::chrono::milliseconds timeout) const {
  const uint64_t target = routed_lsn_.load(std::memory_order_acquire);
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (applied_lsn_.load(std::memory_order_acquire) < target) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

size_t Shard::queue_depth() const {
  std::lock_guard lock(queue_mu_);
  return queue_.size();
}

void Shard::restore_series(const SeriesInfo* info) {
  std::lock_guard lock(state_mu_);
  auto& s = series_[info->id];
  s.info = info;
  s.open.resize(opts_.resolutions.size());
}

Shard::SeriesState& Shard::state(const SeriesInfo* info) {
  auto it = series_.find(info->id);
  if (it != series_.end()) return it->second;
  auto& s = series_[info->id];
  s.info = info;
  s.open.resize(opts_.resolutions.size());
  return s;
}

Shard::OpenBucket& Shard::bucket(SeriesState& s, size_t res, int64_t point_time, int64_t wm, bool* late) {
  const int64_t step = opts_.resolutions[res].step_s;
  const int64_t start = bucket_start(point_time, step);
  // Late: the watermark has passed the bucket's end. If the bucket is still in memory (not yet
  // written) the point merges there and the FINAL value includes it; otherwise a new "late"
  // bucket is merged into the stored one and published as a CORRECTION.
  const bool past = start + step <= wm;
  *late = past;
  auto& open = s.open[res];
  auto it = open.find(start);
  if (it != open.end()) return it->second;
  OpenBucket& b = open[start];
  b.late = past;
  due_[res][start + step].push_back(s.info->id);
  return b;
}

bool Shard::replay_skips(uint64_t series_id, size_t res, int64_t point_time, uint64_t lsn) {
  if (lsn <= safe_lsn_.load(std::memory_order_relaxed)) return true;
  const int64_t start = bucket_start(point_time, opts_.resolutions[res].step_s);
  auto key = std::make_tuple(series_id, res, start);
  auto it = replay_lsn_cache_.find(key);
  if (it == replay_lsn_cache_.end()) {
    auto stored = store_->stored_lsn(series_id, res, start);
    it = replay_lsn_cache_.emplace(key, stored ? *stored : 0).first;
  }
  return lsn <= it->second;
}

Result<uint64_t> Shard::backfill(size_t res, size_t from_res) {
  const int64_t step = opts_.resolutions[res].step_s;
  auto reader = store_->acquire_reader();
  if (!reader) return reader.status();
  std::vector<const SeriesInfo*> all;
  for (const auto& [id, st] : series_) all.push_back(st.info);
  uint64_t written = 0;
  Status s = store_->begin();
  for (size_t i = 0; s && i < all.size(); ++i) {
    std::vector<StoredBucket> rows;
    if (s = (*reader)->begin_snapshot(); !s) break;
    s = (*reader)->read(all[i]->id, all[i]->kind, from_res, INT64_MIN / 4, INT64_MAX / 4, &rows);
    (*reader)->end_snapshot();
    size_t a = 0;
    while (s && a < rows.size()) {
      const int64_t start = bucket_start(rows[a].time, step);
      BucketAgg acc = rows[a].agg;
      size_t b = a + 1;
      for (; b < rows.size() && bucket_start(rows[b].time, step) == start; ++b) acc.merge(rows[b].agg, all[i]->kind);
      s = store_->merge_bucket(all[i]->id, all[i]->kind, res, start, acc, applied_lsn_.load(), nullptr);
      ++written;
      a = b;
    }
  }
  store_->release_reader(std::move(*reader));
  if (s) s = store_->commit();
  if (!s) {
    store_->rollback();
    return s;
  }
  return written;
}

Status Shard::replay(ShardWork& w) {
  apply(w, true);
  return Status::ok();
}

void Shard::apply(ShardWork& w, bool replaying) {
  std::lock_guard lock(state_mu_);
  for (const auto* info : w.new_series) {
    state(info);
    pending_series_.push_back(info);
  }
  const size_t nres = opts_.resolutions.size();
  const int64_t wm = watermark(clock_.now_s());
  uint64_t late = 0;
  auto touch = [&](uint64_t sid, int64_t time, auto&& add) {
    auto it = series_.find(sid);
    if (it == series_.end()) return;  // unreachable: ingest sends definitions first
    SeriesState& st = it->second;
    for (size_t r = 0; r < nres; ++r) {
      if (replaying && replay_skips(sid, r, time, w.lsn)) continue;
      bool is_late = false;
      OpenBucket& b = bucket(st, r, time, wm, &is_late);
      add(b.agg);
      if (r == 0) {
        if (is_late) ++late;
        b.dirty = true;
        if (live_ && !st.listed) {
          st.listed = true;
          dirty_live_.push_back(sid);
        }
      }
    }
  };
  for (const auto& p : w.counters) touch(p.series_id, p.time, [&](BucketAgg& a) { a.add_counter(p.value); });
  for (const auto& p : w.gauges)
    touch(p.series_id, p.time, [&](BucketAgg& a) { a.add_gauge(p.last, p.min, p.max, p.sum, p.count); });
  for (const auto& p : w.dists) touch(p.series_id, p.time, [&](BucketAgg& a) { a.add_sketch(p.sketch); });
  if (late && !replaying) metrics_.late_points.fetch_add(late, std::memory_order_relaxed);
  if (w.lsn > applied_lsn_.load(std::memory_order_relaxed)) applied_lsn_.store(w.lsn, std::memory_order_release);
}

bool Shard::flush(int64_t now_s, bool everything) {
  const int64_t wm = watermark(now_s);
  struct Item {
    SeriesState* s;
    size_t res;
    int64_t start;
  };
  std::vector<Item> items;
  std::vector<size_t> done(due_.size(), 0);  // per resolution: leading due_ entries taken
  for (size_t r = 0; r < due_.size(); ++r) {
    const int64_t step = opts_.resolutions[r].step_s;
    for (auto it = due_[r].begin(); it != due_[r].end() && (everything || it->first <= wm); ++it, ++done[r]) {
      for (uint64_t sid : it->second) {
        auto sit = series_.find(sid);
        if (sit != series_.end() && sit->second.open[r].count(it->first - step))
          items.push_back({&sit->second, r, it->first - step});
      }
    }
  }
  if (items.empty() && pending_series_.empty()) {
    if (everything) {
      const uint64_t lsn = applied_lsn_.load(std::memory_order_relaxed);
      if (lsn > safe_lsn_.load(std::memory_order_relaxed)) {
        Status s = store_->begin();
        if (s) s = store_->set_meta("safe_lsn", static_cast<int64_t>(lsn));
        if (s) s = store_->commit();
        if (!s) {
          store_->rollback();
          return false;
        }
        safe_lsn_.store(lsn, std::memory_order_release);
      }
      last_checkpoint_s_ = now_s;
    }
    return true;
  }

  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t lsn = applied_lsn_.load(std::memory_order_relaxed);
  std::vector<wire::LiveUpdate> updates;
  const bool publish = live_ || final_sink_;
  Status s = store_->begin();
  for (size_t i = 0; s && i < pending_series_.size(); ++i) s = store_->put_series(*pending_series_[i]);
  for (size_t i = 0; s && i < items.size(); ++i) {
    const auto& it = items[i];
    OpenBucket& b = it.s->open[it.res].at(it.start);
    const bool final = it.start + opts_.resolutions[it.res].step_s <= wm;
    // A bucket that was late, or partly written by a checkpoint, is published with its merged value.
    if (it.res == 0 && publish && (b.late || (final && it.start <= last_checkpoint_s_))) {
      BucketAgg merged;
      s = store_->merge_bucket(it.s->info->id, it.s->info->kind, it.res, it.start, b.agg, lsn, &merged);
      if (s && (b.late || final)) {
        updates.push_back(make_update(*it.s->info, it.start, merged,
                                      b.late ? wire::LiveUpdate::CORRECTION : wire::LiveUpdate::FINAL));
        if (b.late) {
          updates.back().set_added_sum(b.agg.sum);
          updates.back().set_added_count(b.agg.count);
        }
      }
    } else {
      s = store_->merge_bucket(it.s->info->id, it.s->info->kind, it.res, it.start, b.agg, lsn, nullptr);
      if (s && it.res == 0 && final && publish)
        updates.push_back(make_update(*it.s->info, it.start, b.agg, wire::LiveUpdate::FINAL));
    }
  }
  if (s) s = store_->set_meta("applied_lsn", static_cast<int64_t>(lsn));
  if (s && everything) s = store_->set_meta("safe_lsn", static_cast<int64_t>(lsn));
  if (!s) {
    store_->rollback();
    metrics_.flush_errors.fetch_add(1, std::memory_order_relaxed);
    if (healthy_.exchange(false)) {
      spdlog::error("event=flush_failed shard={} error=\"{}\"", opts_.index, s.to_string());
      metrics_.storage_healthy.store(0);
    }
    return false;
  }
  {
    // Commit and drop from memory atomically with respect to readers (see read()).
    std::lock_guard lock(state_mu_);
    s = store_->commit();
    if (s) {
      for (const auto& it : items) it.s->open[it.res].erase(it.start);
      for (size_t r = 0; r < due_.size(); ++r) {
        auto end = due_[r].begin();
        std::advance(end, static_cast<long>(done[r]));
        due_[r].erase(due_[r].begin(), end);
      }
      pending_series_.clear();
    }
  }
  if (!s) {
    store_->rollback();
    metrics_.flush_errors.fetch_add(1, std::memory_order_relaxed);
    if (healthy_.exchange(false)) {
      spdlog::error("event=flush_failed shard={} error=\"{}\"", opts_.index, s.to_string());
      metrics_.storage_healthy.store(0);
    }
    return false;
  }
  if (everything) {
    safe_lsn_.store(lsn, std::memory_order_release);
    last_checkpoint_s_ = now_s;
  }
  if (!healthy_.exchange(true)) {
    spdlog::info("event=storage_recovered shard={}", opts_.index);
    metrics_.storage_healthy.store(1);
  }
  metrics_.buckets_written.fetch_add(items.size(), std::memory_order_relaxed);
  metrics_.flush_latency.record_us(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
  if (final_sink_ && !updates.empty()) final_sink_(updates);
  if (live_) live_->publish(std::move(updates));
  return true;
}

void Shard::publish_partials() {
  if (!live_ || dirty_live_.empty()) return;
  std::vector<wire::LiveUpdate> updates;
  {
    std::lock_guard lock(state_mu_);
    for (uint64_t sid : dirty_live_) {
      auto it = series_.find(sid);
      if (it == series_.end()) continue;
      it->second.listed = false;
      for (auto& [start, b] : it->second.open[0]) {
        if (!b.dirty || b.late) continue;
        b.dirty = false;
        updates.push_back(make_update(*it->second.info, start, b.agg, wire::LiveUpdate::PARTIAL));
      }
    }
    dirty_live_.clear();
  }
  live_->publish(std::move(updates));
}

void Shard::apply_retention(int64_t now_s) {
  std::vector<uint64_t> ids;
  {
    std::lock_guard lock(state_mu_);
    ids.reserve(series_.size());
    for (const auto& [id, s] : series_) ids.push_back(id);
  }
  int64_t deleted = 0;
  Status s = store_->begin();
  for (size_t i = 0; s && i < ids.size(); ++i) {
    for (size_t r = 0; s && r < opts_.resolutions.size(); ++r) {
      s = store_->delete_before(ids[i], r, now_s - opts_.resolutions[r].retention_s, &deleted);
    }
  }
  if (s) s = store_->commit();
  if (!s) {
    store_->rollback();
    spdlog::warn("event=retention_failed shard={} error=\"{}\"", opts_.index, s.to_string());
    return;
  }
  if (deleted) {
    metrics_.retention_deleted.fetch_add(static_cast<uint64_t>(deleted), std::memory_order_relaxed);
    spdlog::info("event=retention shard={} deleted_buckets={}", opts_.index, deleted);
  }
}

void Shard::compact_storage(int64_t now_s) {
  // Runs right after a successful flush with the same watermark: every window it encodes is final
  // and written, which is what makes a chunk's single LSN valid for all its buckets.
  CompactStats cs;
  const auto t0 = std::chrono::steady_clock::now();
  Status s = store_->compact(watermark(now_s), &cs);
  if (!s) {
    if (!compact_failed_) spdlog::warn("event=compaction_failed shard={} error=\"{}\"", opts_.index, s.to_string());
    compact_failed_ = true;
    return;
  }
  if (compact_failed_) spdlog::info("event=compaction_recovered shard={}", opts_.index);
  compact_failed_ = false;
  if (cs.chunks) {
    spdlog::info("event=chunks_written shard={} chunks={} segments={} hot_rows={} ms={}", opts_.index, cs.chunks,
                 cs.segments, cs.hot_rows,
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  }
}

void Shard::run() {
  std::deque<ShardWork> work;
  while (true) {
    bool stopping;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait_for(lock, std::chrono::milliseconds(opts_.tick_ms),
                         [&] { return stopping_ || !queue_.empty(); });
      work.swap(queue_);
      stopping = stopping_;
    }
    for (auto& w : work) {
      apply(w);
      metrics_.queue_depth.fetch_sub(1, std::memory_order_relaxed);
    }
    work.clear();
    const int64_t now_ms = clock_.now_ms();
    if (stopping) {
      publish_partials();
      if (!flush(now_ms / 1000, true))
        spdlog::error("event=shutdown_flush_failed shard={} (open buckets are lost unless the log replays them)",
                      opts_.index);
      return;
    }
    if (now_ms / 1000 - last_checkpoint_s_ >= opts_.checkpoint_every_s) flush(now_ms / 1000, true);
    else flush(now_ms / 1000, false);
    if (healthy_.load(std::memory_order_relaxed)) compact_storage(now_ms / 1000);
    if (now_ms - last_partial_ms_ >= 1000) {
      publish_partials();
      last_partial_ms_ = now_ms;
    }
    if (now_ms / 1000 - last_retention_s_ >= opts_.retention_every_s) {
      apply_retention(now_ms / 1000);
      last_retention_s_ = now_ms / 1000;
    }
  }
}

int64_t Shard::retention_horizon(size_t res) const {
  const int64_t keep = opts_.resolutions[res].retention_s;
  return keep > 0 ? clock_.now_s() - keep : std::numeric_limits<int64_t>::min();
}

Status Shard::read(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from, int64_t to,
                   std::vector<std::vector<StoredBucket>>* out, int64_t* wm) {
  (void)wait_applied(std::chrono::milliseconds(5000));  // see note_routed(); bounded for an overloaded shard
  auto reader = store_->acquire_reader();
  if (!reader) return reader.status();
  out->assign(series.size(), {});
  std::vector<std::vector<StoredBucket>> open(series.size());
  size_t shard_series = 0;
  {
    std::lock_guard lock(state_mu_);
    if (auto s = (*reader)->begin_snapshot(); !s) return s;
    *wm = watermark(clock_.now_s());
    // Buckets past the resolution's retention are not returned, though storage drops them a
    // whole segment or chunk at a time.
    from = std::max(from, retention_horizon(res));
    shard_series = series_.size();
    for (size_t i = 0; i < series.size(); ++i) {
      auto it = series_.find(series[i]->id);
      if (it == series_.end()) continue;
      const auto& m = it->second.open[res];
      for (auto b = m.lower_bound(from); b != m.end() && b->first < to; ++b)
        open[i].push_back({b->first, b->second.agg});
    }
  }
  std::vector<SeriesRef> refs;
  refs.reserve(series.size());
  for (const auto* info : series) refs.push_back({info->id, info->kind});
  Status s = (*reader)->read(refs, res, from, to, shard_series, out);
  (*reader)->end_snapshot();
  store_->release_reader(std::move(*reader));
  if (!s) return s;
  // stored (+) open, both in time order.
  for (size_t i = 0; i < series.size(); ++i) {
    if (open[i].empty()) continue;
    auto& stored = (*out)[i];
    std::vector<StoredBucket> merged;
    merged.reserve(stored.size() + open[i].size());
    size_t a = 0, b = 0;
    while (a < stored.size() || b < open[i].size()) {
      if (b == open[i].size() || (a < stored.size() && stored[a].time < open[i][b].time)) {
        merged.push_back(std::move(stored[a++]));
      } else if (a == stored.size() || open[i][b].time < stored[a].time) {
        merged.push_back(std::move(open[i][b++]));
      } else {
        stored[a].agg.merge(open[i][b++].agg, series[i]->kind);
        merged.push_back(std::move(stored[a++]));
      }
    }
    stored.swap(merged);
  }
  return Status::ok();
}

Status Shard::add_counter_sums(const std::vector<const SeriesInfo*>& series, const std::vector<uint32_t>& rows,
                               size_t res, const StepGrid& grid, double* out, int64_t* wm) {
  (void)wait_applied(std::chrono::milliseconds(5000));  // see note_routed(); bounded for an overloaded shard
  auto reader = store_->acquire_reader();
  if (!reader) return reader.status();
  const size_t steps = grid.steps();
  size_t shard_series = 0;
  StepGrid g = grid;
  {
    // Open buckets and the snapshot under one lock, as in read(); sums need no merging: stored
    // and open parts of a bucket simply add.
    std::lock_guard lock(state_mu_);
    if (auto s = (*reader)->begin_snapshot(); !s) return s;
    *wm = watermark(clock_.now_s());
    g.since = std::max(g.since, retention_horizon(res));  // as in read()
    shard_series = series_.size();
    for (size_t i = 0; i < series.size(); ++i) {
      auto it = series_.find(series[i]->id);
      if (it == series_.end()) continue;
      const auto& m = it->second.open[res];
      double* row = out + rows[i] * steps;
      for (auto b = m.lower_bound(std::max(g.from, g.since)); b != m.end() && b->first < g.to; ++b)
        row[(b->first - g.from) / g.step] += b->second.agg.sum;
    }
  }
  std::vector<SeriesRef> refs;
  refs.reserve(series.size());
  for (const auto* info : series) refs.push_back({info->id, info->kind});
  Status s = (*reader)->add_counter_sums(refs, rows, res, g, shard_series, out);
  (*reader)->end_snapshot();
  store_->release_reader(std::move(*reader));
  return s;
}

}  // namespace tally::collector
