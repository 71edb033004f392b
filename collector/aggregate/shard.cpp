#include "aggregate/shard.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "tally/common/wire.h"
#include "thread_guard.h"

namespace tally::collector {
namespace {

wire::LiveUpdate make_update(const SeriesInfo& info, int64_t time, const BucketAgg& agg,
                             wire::LiveUpdate::State state) {
  wire::LiveUpdate u;
  u.set_metric(std::string(info.metric()));
  for (const auto& t : info.tags()) {
    auto* tag = u.add_tags();
    tag->set_key(std::string(t.key));
    tag->set_value(std::string(t.value));
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
    case Kind::kCounter:
      u.set_value(agg.sum);
      break;
    case Kind::kGauge:
      u.set_value(agg.last);
      break;
    case Kind::kDistribution:
      u.set_value(static_cast<double>(agg.count));
      if (agg.sketch) sketch_to_proto(*agg.sketch, u.mutable_sketch());
      break;
  }
  return u;
}

size_t kind_index(Kind k) {
  return static_cast<size_t>(static_cast<int>(k) - 1);
}

// LiveTopics::wants() series after series: consecutive series mostly share their metric (the
// catalog interns metric names, so equal names are one string).
class WantedMetrics {
 public:
  explicit WantedMetrics(const LiveTopics& topics) : topics_(topics) {}
  bool operator()(std::string_view metric) {
    if (metric.data() != last_.data() || metric.size() != last_.size()) {
      last_ = metric;
      wanted_ = topics_.wants(metric);
    }
    return wanted_;
  }

 private:
  const LiveTopics& topics_;
  std::string_view last_;
  bool wanted_ = false;
};

BucketAgg counter_agg(double sum) {
  BucketAgg a;
  a.sum = sum;
  return a;
}

}  // namespace

Shard::Shard(ShardOptions opts, std::unique_ptr<ShardStore> store, const Clock& clock,
             LivePublisher* live, SelfMetrics& metrics)
    : opts_(std::move(opts)),
      store_(std::move(store)),
      clock_(clock),
      live_(live),
      metrics_(metrics) {
  windows_.resize(opts_.resolutions.size());
  final_wm_ = watermark(clock_.now_s());
  // Where the last run left off; a store that cannot say starts from zero (replay re-checks).
  if (auto a = store_->get_meta("applied_lsn", 0); a) applied_lsn_ = static_cast<uint64_t>(*a);
  if (auto s = store_->get_meta("safe_lsn", 0); s) safe_lsn_ = static_cast<uint64_t>(*s);
}

Shard::~Shard() {
  stop();
}

void Shard::start() {
  // The first retention pass runs right away: a shortened retention applies on start.
  last_retention_s_ = clock_.now_s() - opts_.retention_every_s;
  last_checkpoint_s_ = clock_.now_s();
  replay_lsn_cache_.clear();
  thread_ = std::thread(
      [this] { guarded("shard-" + std::to_string(opts_.index), metrics_, [this] { run(); }); });
}

void Shard::stop() {
  {
    MutexLock lock(queue_mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t work_bytes(const ShardWork& w) {
  // A sketch's bins live on the heap; ~32 8-byte bins is typical of one second of latencies.
  constexpr size_t kSketchBinsEstimate = 256;
  return sizeof(ShardWork) +
         (w.new_series.capacity() + w.retire.capacity()) * sizeof(const SeriesInfo*) +
         w.counters.capacity() * sizeof(CounterIn) + w.gauges.capacity() * sizeof(GaugeIn) +
         w.dists.capacity() * (sizeof(DistIn) + kSketchBinsEstimate);
}

void Shard::submit(ShardWork&& work) {
  work.bytes = work_bytes(work);
  work.arrived_s = clock_.now_s();
  queued_bytes_.fetch_add(work.bytes, std::memory_order_relaxed);
  {
    MutexLock lock(queue_mu_);
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
  MutexLock lock(queue_mu_);
  return queue_.size();
}

void Shard::restore_series(const SeriesInfo* info) {
  MutexLock lock(state_mu_);
  add_series(info);
}

void Shard::add_series(const SeriesInfo* info) {
  auto& v = series_[kind_index(info->kind)];
  if (v.size() <= info->slot) v.resize(info->slot + 1, nullptr);
  if (!v[info->slot]) {
    v[info->slot] = info;
    ++series_count_;
  }
}

bool Shard::owns(const SeriesInfo* info) const {
  const auto& v = series_[kind_index(info->kind)];
  return info->slot < v.size() && v[info->slot] == info;
}

Shard::Page& Shard::page(Window& w, Kind kind, uint32_t slot) {
  const size_t k = kind_index(kind);
  auto& pages = w.pages[k];
  const size_t at = slot / kPageSlots;
  if (pages.size() <= at) pages.resize(at + 1);
  if (!pages[at]) {
    if (!free_pages_[k].empty()) {
      pages[at] = std::move(free_pages_[k].back());
      free_pages_[k].pop_back();
    } else {
      pages[at] = std::make_unique<Page>();
      if (kind == Kind::kCounter)
        pages[at]->sums = std::make_unique<double[]>(kPageSlots);
      else
        pages[at]->aggs = std::make_unique<BucketAgg[]>(kPageSlots);
    }
  }
  return *pages[at];
}

template <typename Fn>
void Shard::for_each_bucket(const Window& w, size_t k, Fn&& fn) {
  const auto& pages = w.pages[k];
  for (size_t p = 0; p < pages.size(); ++p) {
    if (!pages[p]) continue;
    const Page& pg = *pages[p];
    for (size_t word = 0; word < pg.present.size(); ++word) {
      for (uint64_t bits = pg.present[word]; bits; bits &= bits - 1) {
        const size_t i = word * 64 + static_cast<size_t>(__builtin_ctzll(bits));
        fn(static_cast<uint32_t>(p * kPageSlots + i), pg.sums ? &pg.sums[i] : nullptr,
           pg.aggs ? &pg.aggs[i] : nullptr);
      }
    }
  }
}

std::pair<const double*, const BucketAgg*> Shard::find_bucket(const Window& w,
                                                              const SeriesInfo* info) {
  const auto& pages = w.pages[kind_index(info->kind)];
  const size_t at = info->slot / kPageSlots, i = info->slot % kPageSlots;
  if (at >= pages.size() || !pages[at] || !(pages[at]->present[i / 64] >> (i % 64) & 1))
    return {nullptr, nullptr};
  const Page& pg = *pages[at];
  return {pg.sums ? &pg.sums[i] : nullptr, pg.aggs ? &pg.aggs[i] : nullptr};
}

void Shard::update_held_bytes() {
  // A std::map node: the key and value plus about 32 bytes of links and colour.
  constexpr size_t kLateNode = sizeof(LateKey) + sizeof(LateBucket) + 32;
  const size_t page_bytes[kKinds] = {sizeof(Page) + kPageSlots * sizeof(double),
                                     sizeof(Page) + kPageSlots * sizeof(BucketAgg),
                                     sizeof(Page) + kPageSlots * sizeof(BucketAgg)};
  // Only what is overdue counts: windows the watermark has passed that are not yet written, and
  // late buckets. Open windows are the steady state and are bounded by the series count.
  owner_reads();
  const int64_t wm = watermark(clock_.now_s());
  uint64_t b = late_.size() * kLateNode;
  for (size_t r = 0; r < windows_.size(); ++r)
    for (const auto& [start, w] : windows_[r]) {
      if (start + opts_.resolutions[r].step_s > wm) break;  // by start: the rest is open
      for (size_t k = 0; k < kKinds; ++k)
        for (const auto& pg : w.pages[k])
          if (pg) b += page_bytes[k];
    }
  held_bytes_.store(b, std::memory_order_relaxed);
}

void Shard::recycle(Window&& w) {
  for (size_t k = 0; k < kKinds; ++k) {
    for (auto& pg : w.pages[k]) {
      if (!pg) continue;
      if (pg->aggs) {
        for (size_t word = 0; word < pg->present.size(); ++word)
          for (uint64_t bits = pg->present[word]; bits; bits &= bits - 1)
            pg->aggs[word * 64 + static_cast<size_t>(__builtin_ctzll(bits))] = BucketAgg();
      }
      pg->present.fill(0);
      pg->dirty.fill(0);
      free_pages_[k].push_back(std::move(pg));
    }
  }
}

template <typename AddSum, typename AddAgg>
void Shard::add_point(const SeriesInfo* info, int64_t time, int64_t wm, uint64_t lsn,
                      bool replaying, uint64_t* late, AddSum&& add_sum, AddAgg&& add_agg) {
  const size_t slot = info->slot % kPageSlots, word = slot / 64;
  const uint64_t bit = uint64_t{1} << (slot % 64);
  for (size_t r = 0; r < windows_.size(); ++r) {
    if (replaying && replay_skips(info->id, r, time, lsn)) continue;
    const int64_t step = opts_.resolutions[r].step_s;
    const int64_t start = bucket_start(time, step);
    // Late: the bucket was written as final. If its window is still in memory (a checkpoint
    // wrote it while open) the point merges there and the FINAL value includes it; otherwise it
    // goes to a late bucket that is merged into the stored one and published as a CORRECTION.
    const bool past = start + step <= wm;
    if (past && r == 0) ++*late;
    auto& wins = windows_[r];
    auto wit = wins.find(start);
    if (wit == wins.end()) {
      if (past) {
        auto [lit, added] = late_.try_emplace(LateKey{r, start, info->id});
        if (added) lit->second.info = info;
        add_agg(lit->second.agg);
        continue;
      }
      wit = wins.try_emplace(start).first;
    }
    Page& pg = page(wit->second, info->kind, info->slot);
    const bool fresh = !(pg.present[word] & bit);
    if (fresh) pg.present[word] |= bit;
    if (pg.sums) {
      if (fresh) pg.sums[slot] = 0;
      add_sum(pg.sums[slot]);
    } else {
      add_agg(pg.aggs[slot]);
    }
    if (r == 0) pg.dirty[word] |= bit;
  }
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
  owner_reads();  // start-up, before the shard thread runs
  const int64_t step = opts_.resolutions[res].step_s;
  auto reader = store_->acquire_reader();
  if (!reader) return reader.status();
  std::vector<const SeriesInfo*> all;
  for (const auto& v : series_)
    for (const auto* info : v)
      if (info) all.push_back(info);
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
      for (; b < rows.size() && bucket_start(rows[b].time, step) == start; ++b)
        acc.merge(rows[b].agg, all[i]->kind);
      s = store_->merge_bucket(all[i]->id, all[i]->kind, res, start, acc, applied_lsn_.load(),
                               nullptr);
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
  // Replayed records are in memory only until the next checkpoint: the log must keep them.
  if (w.lsn > routed_lsn_.load(std::memory_order_relaxed)) note_routed(w.lsn);
  return Status::ok();
}

void Shard::apply(ShardWork& w, bool replaying) {
  MutexLock lock(state_mu_);
  for (const auto* info : w.new_series) {
    add_series(info);
    pending_series_.push_back(info);
  }
  if (catalog_) retiring_.insert(retiring_.end(), w.retire.begin(), w.retire.end());
  const int64_t wm = final_wm_;
  uint64_t late = 0;
  // What each merge did (bucket.h): a clamped sum or a refused value is counted, once per point
  // per resolution it reached.
  uint64_t clamped = 0, refused_count = 0, refused_value = 0;
  auto note = [&](BucketAgg::Added how, bool count_overflow_possible) {
    if (how == BucketAgg::Added::kClamped)
      ++clamped;
    else if (how == BucketAgg::Added::kRefused)
      ++(count_overflow_possible ? refused_count : refused_value);
  };
  // A point of a series this shard does not know yet but that is its own is taken, and the series
  // with it: the path that created the series may hand it over later (an SDK batch can use a
  // series a StatsD interval created and has not logged and routed yet). A point of another
  // shard's series is dropped (unreachable).
  auto adopt = [&](const SeriesInfo* info) {
    state_mu_.assert_held();  // apply() holds it; the analysis looks at a lambda on its own
    if (owns(info)) return true;
    if (info->shard != opts_.index) return false;
    add_series(info);
    pending_series_.push_back(info);  // put_series is idempotent
    return true;
  };
  for (const auto& p : w.counters) {
    if (!adopt(p.series)) continue;
    add_point(
        p.series, p.time, wm, w.lsn, replaying, &late,
        [&](double& sum) {
          BucketAgg::Added how =
              std::isfinite(p.value) ? BucketAgg::Added::kExact : BucketAgg::Added::kRefused;
          if (how == BucketAgg::Added::kExact) sum = BucketAgg::saturating_add(sum, p.value, &how);
          note(how, false);
        },
        [&](BucketAgg& a) { note(a.add_counter(p.value), false); });
  }
  for (const auto& p : w.gauges) {
    if (!adopt(p.series)) continue;
    const bool finite = std::isfinite(p.last) && std::isfinite(p.min) && std::isfinite(p.max) &&
                        std::isfinite(p.sum);
    add_point(
        p.series, p.time, wm, w.lsn, replaying, &late, [](double&) {},
        [&](BucketAgg& a) { note(a.add_gauge(p.last, p.min, p.max, p.sum, p.count), finite); });
  }
  for (const auto& p : w.dists) {
    if (!adopt(p.series)) continue;
    add_point(
        p.series, p.time, wm, w.lsn, replaying, &late, [](double&) {},
        [&](BucketAgg& a) { note(a.add_sketch(p.sketch), true); });
  }
  if (clamped) metrics_.hit(Limit::kBucketSum, clamped);
  if (refused_count) metrics_.hit(Limit::kBucketCount, refused_count);
  if (refused_value) metrics_.hit(Limit::kBucketValue, refused_value);
  if (clamped + refused_count + refused_value && clock_.now_s() != last_limit_log_s_) {
    last_limit_log_s_ = clock_.now_s();  // at most one line a second per shard
    spdlog::warn(
        "event=bucket_limit shard={} clamped_sums={} refused_count_overflow={} "
        "refused_non_finite={}",
        opts_.index, clamped, refused_count, refused_value);
  }
  if (late && !replaying) metrics_.late_points.fetch_add(late, std::memory_order_relaxed);
  if (w.lsn > applied_lsn_.load(std::memory_order_relaxed))
    applied_lsn_.store(w.lsn, std::memory_order_release);
}

bool Shard::flush(int64_t now_s, bool everything) {
  const auto t0 = std::chrono::steady_clock::now();
  FlushResult out;
  Status s = write_due(now_s, everything, &out);
  if (!s) {
    // The one failure path: nothing of this flush is in storage and nothing left memory, so the
    // next flush writes it all again.
    store_->rollback();
    metrics_.flush_errors.fetch_add(1, std::memory_order_relaxed);
    set_unhealthy(s);
    return false;
  }
  if (everything) {
    safe_lsn_.store(out.lsn, std::memory_order_release);
    last_checkpoint_s_ = now_s;
  }
  if (!to_mark_.empty()) {
    // Written as expired and committed: the catalog may now let them leave memory.
    std::vector<uint64_t> ids;
    ids.reserve(to_mark_.size());
    for (const auto& e : to_mark_) ids.push_back(e.id);
    catalog_->mark_durable(ids);
    metrics_.series_expired.fetch_add(ids.size(), std::memory_order_relaxed);
    std::vector<Expired>().swap(to_mark_);
  }
  if (!healthy_.exchange(true)) {
    spdlog::info("event=storage_recovered shard={}", opts_.index);
    metrics_.storage_healthy.store(1);
  }
  if (!out.wrote) return true;
  metrics_.buckets_written.fetch_add(out.written, std::memory_order_relaxed);
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  metrics_.flush_latency.record_us(static_cast<uint64_t>(us));
  // Work waits while the shard writes: a slow flush is emit-to-queryable latency (and a reason
  // the ingest budget may refuse batches), so name it.
  if (us >= 1000000)
    spdlog::info("event=slow_flush shard={} ms={} buckets={} checkpoint={}", opts_.index, us / 1000,
                 out.written, everything);
  if (final_sink_ && !out.updates.empty()) final_sink_(out.updates);
  if (live_) live_->publish(std::move(out.updates));
  return true;
}

void Shard::set_unhealthy(const Status& s) {
  // Say what failed: a full disk, an unwritable one, and data that does not decode are
  // different problems for whoever reads /healthz.
  const std::string shard = "shard " + std::to_string(opts_.index);
  std::string reason = "storage is not accepting writes: ";
  switch (s.code()) {
    case StatusCode::kUnavailable:
      reason += "disk full (" + shard;
      break;
    case StatusCode::kIoError:
      reason += "I/O error, disk unwritable (" + shard;
      break;
    case StatusCode::kCorruption:
      reason += "corruption, not a full disk (" + shard;
      break;
    default:
      reason += "error (" + shard;
      break;
  }
  reason += ": " + s.to_string() + "); batches are not acknowledged";
  {
    MutexLock lock(reason_mu_);
    health_reason_ = std::move(reason);
  }
  if (healthy_.exchange(false)) {
    spdlog::error("event=flush_failed shard={} error=\"{}\"", opts_.index, s.to_string());
    metrics_.storage_healthy.store(0);
  }
}

std::string Shard::health_reason() const {
  MutexLock lock(reason_mu_);
  return healthy() ? std::string() : health_reason_;
}

void Shard::quarantine(const SeriesInfo& info, size_t res, int64_t start, const BucketAgg& agg,
                       const Status& why) {
  // Kept aside in memory (the newest kMaxQuarantined) and in the log line, which holds every
  // value needed to put it back by hand; counted; logged at most once a second per shard.
  constexpr size_t kMaxQuarantined = 1024;
  metrics_.buckets_quarantined.fetch_add(1, std::memory_order_relaxed);
  ++quarantined_total_;
  if (quarantined_.size() >= kMaxQuarantined) quarantined_.pop_front();
  quarantined_.push_back({info.id, res, start, agg});
  const int64_t now = clock_.now_s();
  if (now == last_quarantine_log_s_) return;
  last_quarantine_log_s_ = now;
  spdlog::error(
      "event=bucket_quarantined shard={} series={} metric={} resolution={} time={} sum={} "
      "count={} quarantined_total={} error=\"{}\"",
      opts_.index, info.id, info.metric(), res, start, agg.sum, agg.count, quarantined_total_,
      why.to_string());
}

int64_t Shard::flush_watermark(int64_t now_s) {
  int64_t wm = watermark(now_s);
  {
    MutexLock lock(queue_mu_);
    if (!queue_.empty()) wm = std::min(wm, watermark(queue_.front().arrived_s));
  }
  return std::max(wm, final_wm_);
}

Status Shard::write_due(int64_t now_s, bool everything, FlushResult* out) {
  const int64_t wm = flush_watermark(now_s);
  out->lsn = applied_lsn_.load(std::memory_order_relaxed);
  // Due: every window whose end the watermark has passed (all of them for a checkpoint) and every
  // late bucket. The shard thread alone changes windows_ and late_, so they stay as they are until
  // the commit below.
  std::vector<std::pair<size_t, int64_t>> due;  // resolution, window start
  for (size_t r = 0; r < windows_.size(); ++r) {
    const int64_t step = opts_.resolutions[r].step_s;
    for (const auto& [start, w] : windows_[r]) {
      if (!everything && start + step > wm) break;
      due.emplace_back(r, start);
    }
  }
  out->wrote = !(due.empty() && late_.empty() && pending_series_.empty() && to_mark_.empty());
  if (!out->wrote) {
    if (!everything || out->lsn <= safe_lsn_.load(std::memory_order_relaxed)) {
      final_wm_ = wm;  // nothing was open up to wm
      return Status::ok();
    }
    Status s = store_->begin();
    if (s) s = store_->set_meta("safe_lsn", static_cast<int64_t>(out->lsn));
    if (s) s = store_->commit();
    if (s) final_wm_ = wm;
    return s;
  }

  // FINAL and CORRECTION updates are built for every series when a sink takes them all
  // (remote-write), otherwise only for the metrics live-stream subscribers want: at 500 k series
  // building them all cost more CPU than the flush itself and churned the heap by 100+ MB a second.
  const auto topics = live_ ? live_->topics() : nullptr;
  std::optional<WantedMetrics> wanted;
  if (topics && !topics->empty()) wanted.emplace(*topics);
  const bool sink = final_sink_ && (!final_sink_active_ || final_sink_active_());
  auto publish_of = [&](const SeriesInfo& info) {
    return sink || (wanted && (*wanted)(info.metric()));
  };
  Status s = store_->begin();
  // Expired series first: a series that came back since is in pending_series_ (put_series leaves
  // the mark; the catalog knows it is live).
  for (size_t i = 0; s && i < to_mark_.size(); ++i)
    s = store_->mark_expired(to_mark_[i].id, released_at_s_, to_mark_[i].last_s);
  for (size_t i = 0; s && i < pending_series_.size(); ++i)
    s = store_->put_series(pending_series_[i]->def());
  auto write = [&](const SeriesInfo& info, size_t res, int64_t start, const BucketAgg& agg,
                   bool late) {
    const bool final = start + opts_.resolutions[res].step_s <= wm;
    const bool publish = res == 0 && publish_of(info);
    ++out->written;
    // A bucket that was late, or partly written by a checkpoint, is published with its merged
    // value.
    const bool need_merged =
        res == 0 && publish && (late || (final && start <= last_checkpoint_s_));
    BucketAgg merged;
    Status m = store_->merge_bucket(info.id, info.kind, res, start, agg, out->lsn,
                                    need_merged ? &merged : nullptr);
    if (m.code() == StatusCode::kCorruption || m.code() == StatusCode::kInvalidArgument) {
      // This bucket, or what it merges into, does not encode or decode: one bucket's problem,
      // not the shard's. Nothing of it was written; the flush goes on.
      quarantine(info, res, start, agg, m);
      return;
    }
    s = m;
    if (!s) return;
    if (need_merged) {
      out->updates.push_back(make_update(
          info, start, merged, late ? wire::LiveUpdate::CORRECTION : wire::LiveUpdate::FINAL));
      if (late) {
        out->updates.back().set_added_sum(agg.sum);
        out->updates.back().set_added_count(agg.count);
      }
    } else if (res == 0 && final && publish) {
      out->updates.push_back(make_update(info, start, agg, wire::LiveUpdate::FINAL));
    }
  };
  for (const auto& due_window : due) {
    // Plain names: clang 14 (the fuzz build) cannot capture structured bindings in a lambda.
    const size_t res = due_window.first;
    const int64_t start = due_window.second;
    const Window& w = windows_[res].at(start);
    for (size_t k = 0; s && k < kKinds; ++k) {
      for_each_bucket(w, k, [&](uint32_t slot, const double* sum, const BucketAgg* agg) {
        owner_reads();  // as write_due: the shard thread reading its own state
        if (!s) return;
        if (sum)
          write(*series_[k][slot], res, start, counter_agg(*sum), false);
        else
          write(*series_[k][slot], res, start, *agg, false);
      });
    }
    if (!s) break;
  }
  for (auto it = late_.begin(); s && it != late_.end(); ++it)
    write(*it->second.info, std::get<0>(it->first), std::get<1>(it->first), it->second.agg, true);
  if (s) s = store_->set_meta("applied_lsn", static_cast<int64_t>(out->lsn));
  if (s && everything) s = store_->set_meta("safe_lsn", static_cast<int64_t>(out->lsn));
  if (!s) return s;

  // Commit and drop from memory atomically with respect to readers (see read()).
  MutexLock lock(state_mu_);
  if (s = store_->commit(); !s) return s;
  for (const auto& [res, start] : due) {
    auto it = windows_[res].find(start);
    if (res == 0 && start + opts_.resolutions[0].step_s > wm) {
      keep_checkpointed(it->second);  // still open: it owes its series a FINAL
      continue;
    }
    recycle(std::move(it->second));
    windows_[res].erase(it);
  }
  late_.clear();
  final_wm_ = wm;
  // A burst of new series (start-up, a deploy) leaves no large buffer behind.
  if (pending_series_.capacity() > 4096)
    std::vector<const SeriesInfo*>().swap(pending_series_);
  else
    pending_series_.clear();
  // Keep at most as many spare pages as are in use: enough for the next windows.
  for (size_t k = 0; k < kKinds; ++k) {
    size_t in_use = 0;
    for (const auto& wins : windows_)
      for (const auto& [start, w] : wins)
        for (const auto& pg : w.pages[k]) in_use += pg != nullptr;
    if (free_pages_[k].size() > in_use) free_pages_[k].resize(in_use);
  }
  return Status::ok();
}

void Shard::keep_checkpointed(Window& w) {
  w.checkpointed = true;
  const auto topics = live_ ? live_->topics() : nullptr;
  const bool keep = topics && !topics->empty();
  std::optional<WantedMetrics> wanted;
  if (keep) wanted.emplace(*topics);
  for (size_t k = 0; k < kKinds; ++k) {
    const Kind kind = static_cast<Kind>(k + 1);
    for (size_t p = 0; p < w.pages[k].size(); ++p) {
      Page* pg = w.pages[k][p].get();
      if (!pg) continue;
      // Dirty bits stay: a watched series' next PARTIAL is its kept value merged with what comes.
      for (size_t word = 0; word < pg->present.size(); ++word) {
        for (uint64_t bits = pg->present[word]; bits; bits &= bits - 1) {
          const size_t i = word * 64 + static_cast<size_t>(__builtin_ctzll(bits));
          const size_t slot = p * kPageSlots + i;
          if (keep && (*wanted)(series_[k][slot]->metric())) {
            // Checkpointed again while still open: what both checkpoints wrote.
            BucketAgg now = pg->sums ? counter_agg(pg->sums[i]) : std::move(pg->aggs[i]);
            const uint64_t key = (static_cast<uint64_t>(k) << 32) | slot;
            auto [it, fresh] = w.checkpointed_values.try_emplace(key, std::move(now));
            if (!fresh) (void)it->second.merge(now, kind);
          }
          if (pg->sums)
            pg->sums[i] = 0;
          else
            pg->aggs[i] = BucketAgg();
        }
      }
    }
  }
}

void Shard::publish_partials() {
  if (!live_) return;
  // Only the metrics somebody watches: the others' partials are not even built.
  const auto topics = live_->topics();
  WantedMetrics wanted(*topics);
  std::vector<wire::LiveUpdate> updates;
  {
    MutexLock lock(state_mu_);
    for (auto& [start, w] : windows_[0]) {
      if (topics->empty()) {
        for (auto& pages : w.pages)
          for (auto& pg : pages)
            if (pg) pg->dirty.fill(0);
        continue;
      }
      for (size_t k = 0; k < kKinds; ++k) {
        const Kind kind = static_cast<Kind>(k + 1);
        for (size_t p = 0; p < w.pages[k].size(); ++p) {
          Page* pg = w.pages[k][p].get();
          if (!pg) continue;
          for (size_t word = 0; word < pg->dirty.size(); ++word) {
            for (uint64_t bits = pg->dirty[word]; bits; bits &= bits - 1) {
              const size_t i = word * 64 + static_cast<size_t>(__builtin_ctzll(bits));
              const SeriesInfo& info = *series_[k][p * kPageSlots + i];
              if (!wanted(info.metric())) continue;
              if (w.checkpointed) {
                // The window holds only what arrived since the checkpoint: the bucket is what the
                // checkpoint wrote merged with it. A series whose written value was not kept
                // (nobody watched it then) gets its FINAL, merged with storage, instead.
                const uint64_t key = (static_cast<uint64_t>(k) << 32) | (p * kPageSlots + i);
                auto it = w.checkpointed_values.find(key);
                if (it == w.checkpointed_values.end()) continue;
                BucketAgg bucket = it->second;
                (void)bucket.merge(pg->sums ? counter_agg(pg->sums[i]) : pg->aggs[i], kind);
                updates.push_back(make_update(info, start, bucket, wire::LiveUpdate::PARTIAL));
                continue;
              }
              if (pg->sums)
                updates.push_back(
                    make_update(info, start, counter_agg(pg->sums[i]), wire::LiveUpdate::PARTIAL));
              else
                updates.push_back(make_update(info, start, pg->aggs[i], wire::LiveUpdate::PARTIAL));
            }
            pg->dirty[word] = 0;
          }
        }
      }
    }
  }
  if (!updates.empty()) live_->publish(std::move(updates));
}

bool Shard::holds_buckets(const SeriesInfo* info) const {
  for (const auto& wins : windows_)
    for (const auto& [start, w] : wins) {
      auto [sum, agg] = find_bucket(w, info);
      if (sum || agg) return true;
    }
  return false;
}

void Shard::release_retiring(int64_t now_s) {
  // A flush just committed everything due; what is still open waits for a later one (a
  // checkpoint writes every open window, so at most checkpoint_every_s).
  const bool late = [this] {
    owner_reads();
    return !late_.empty();
  }();
  if (late || !pending_series_.empty()) return;
  MutexLock lock(state_mu_);
  size_t kept = 0;
  for (const SeriesInfo* info : retiring_) {
    const bool owned = owns(info);  // false: its definition never reached this shard
    if (owned && holds_buckets(info)) {
      retiring_[kept++] = info;
      continue;
    }
    if (!catalog_->try_release(info)) continue;  // it came back: it stays
    if (owned) {
      series_[kind_index(info->kind)][info->slot] = nullptr;
      --series_count_;
    }
    if (to_mark_.empty()) released_at_s_ = now_s;
    to_mark_.push_back({info->id, SeriesCatalog::last_point_s(info)});
  }
  retiring_.resize(kept);
  if (retiring_.capacity() > 4096 && retiring_.size() < retiring_.capacity() / 4)
    retiring_.shrink_to_fit();
}

void Shard::apply_retention(int64_t now_s) {
  // Every stored series at once, the expired ones (no longer in memory) too.
  // Each resolution's retention is read live once per sweep (a reload may shorten it).
  int64_t deleted = 0;
  Status s = store_->begin();
  for (size_t r = 0; s && r < opts_.resolutions.size(); ++r)
    s = store_->delete_all_before(r, now_s - retention_s(r), &deleted);
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

void Shard::compact_storage() {
  // Runs right after a successful flush with the same watermark: every window it encodes is final
  // and written, which is what makes a chunk's single LSN valid for all its buckets.
  CompactStats cs;
  const auto t0 = std::chrono::steady_clock::now();
  // Encoding a minute (or an hour) of buckets for every series takes seconds at a million series:
  // meanwhile the work that arrives is applied in memory (apply touches no storage), so it is
  // queryable at once and the queue does not fill. Its points land in open windows or, for
  // buckets already final, in late_, written by the next flush like any late point.
  std::deque<ShardWork> arrived;
  Status s = store_->compact(final_wm_, &cs, [&] {
    {
      MutexLock lock(queue_mu_);
      if (stopping_) return;  // run() drains the queue before the last flush
      arrived.swap(queue_);
    }
    apply_all(arrived, false);
  });
  if (!s) {
    if (!compact_failed_)
      spdlog::warn("event=compaction_failed shard={} error=\"{}\"", opts_.index, s.to_string());
    compact_failed_ = true;
    return;
  }
  if (compact_failed_) spdlog::info("event=compaction_recovered shard={}", opts_.index);
  compact_failed_ = false;
  if (cs.chunks) {
    spdlog::info(
        "event=chunks_written shard={} chunks={} segments={} hot_rows={} ms={}", opts_.index,
        cs.chunks, cs.segments, cs.hot_rows,
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  }
}

void Shard::apply_all(std::deque<ShardWork>& work, bool stopping) {
  for (auto& w : work) {
    if (opts_.debug_apply_delay_us > 0 && !stopping)
      std::this_thread::sleep_for(std::chrono::microseconds(opts_.debug_apply_delay_us));
    apply(w);
    metrics_.queue_depth.fetch_sub(1, std::memory_order_relaxed);
    const size_t bytes = std::exchange(w.bytes, 0);
    w = ShardWork{};  // free it now: the budget counts it as gone
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    applied_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  work.clear();
}

void Shard::run() {
  std::deque<ShardWork> work;
  while (true) {
    bool stopping;
    {
      MutexLock lock(queue_mu_);
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.tick_ms);
      while (!stopping_ && queue_.empty())
        if (lock.wait_until(queue_cv_, until) == std::cv_status::timeout) break;
      work.swap(queue_);
      stopping = stopping_;
    }
    apply_all(work, stopping);
    update_held_bytes();
    const int64_t now_ms = clock_.now_ms();
    if (stopping) {
      publish_partials();
      if (!flush(now_ms / 1000, true))
        spdlog::error(
            "event=shutdown_flush_failed shard={} (open buckets are lost unless the log replays "
            "them)",
            opts_.index);
      return;
    }
    const bool flushed = now_ms / 1000 - last_checkpoint_s_ >= opts_.checkpoint_every_s
                             ? flush(now_ms / 1000, true)
                             : flush(now_ms / 1000, false);
    if (flushed && !retiring_.empty()) release_retiring(now_ms / 1000);
    if (healthy_.load(std::memory_order_relaxed)) compact_storage();
    update_held_bytes();
    if (now_ms - last_partial_ms_ >= opts_.partial_every_ms) {
      publish_partials();
      last_partial_ms_ = now_ms;
    }
    const bool sweep_soon = sweep_soon_.exchange(false, std::memory_order_relaxed);
    if (sweep_soon || now_ms / 1000 - last_retention_s_ >= opts_.retention_every_s) {
      apply_retention(now_ms / 1000);
      last_retention_s_ = now_ms / 1000;
    }
  }
}

int64_t Shard::retention_s(size_t res) const {
  if (!opts_.live_limits) return opts_.resolutions[res].retention_s;
  return opts_.live_limits->get()->resolutions[res].retention_s;
}

int64_t Shard::retention_horizon(size_t res) const {
  const int64_t keep = retention_s(res);
  return keep > 0 ? clock_.now_s() - keep : std::numeric_limits<int64_t>::min();
}

Status Shard::read(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from,
                   int64_t to, std::vector<std::vector<StoredBucket>>* out, int64_t* wm,
                   const Deadline& deadline) {
  (void)wait_applied(
      std::chrono::milliseconds(5000));  // see note_routed(); bounded for an overloaded shard
  auto reader = store_->acquire_reader();
  if (!reader) return reader.status();
  out->assign(series.size(), {});
  std::vector<std::vector<StoredBucket>> open(series.size());
  size_t shard_series = 0;
  {
    MutexLock lock(state_mu_);
    if (auto s = (*reader)->begin_snapshot(); !s) return s;
    *wm = watermark(clock_.now_s());
    // Buckets past the resolution's retention are not returned, though storage drops them a
    // whole segment or chunk at a time.
    from = std::max(from, retention_horizon(res));
    shard_series = series_count_;
    const auto& wins = windows_[res];
    for (auto w = wins.lower_bound(from); w != wins.end() && w->first < to; ++w) {
      for (size_t i = 0; i < series.size(); ++i) {
        if (!owns(series[i])) continue;
        auto [sum, agg] = find_bucket(w->second, series[i]);
        if (sum)
          open[i].push_back({w->first, counter_agg(*sum)});
        else if (agg)
          open[i].push_back({w->first, *agg});
      }
    }
    // Late buckets: rare and few; a window and a late bucket never share a start.
    auto lo = late_.lower_bound(LateKey{res, from, 0});
    auto hi = late_.lower_bound(LateKey{res, to, 0});
    if (lo != hi) {
      std::unordered_map<uint64_t, size_t> index;
      for (size_t i = 0; i < series.size(); ++i) index.emplace(series[i]->id, i);
      for (auto it = lo; it != hi; ++it) {
        auto at = index.find(std::get<2>(it->first));
        if (at != index.end()) open[at->second].push_back({std::get<1>(it->first), it->second.agg});
      }
      for (size_t i = 0; i < open.size(); ++i) {
        auto& o = open[i];
        std::stable_sort(o.begin(), o.end(), [](const StoredBucket& a, const StoredBucket& b) {
          return a.time < b.time;
        });
        size_t n = 0;
        for (size_t j = 0; j < o.size(); ++j) {
          if (n && o[n - 1].time == o[j].time)
            o[n - 1].agg.merge(o[j].agg, series[i]->kind);
          else if (n++ != j)
            o[n - 1] = std::move(o[j]);
        }
        o.resize(n);
      }
    }
  }
  std::vector<SeriesRef> refs;
  refs.reserve(series.size());
  for (const auto* info : series) refs.push_back({info->id, info->kind});
  (*reader)->set_deadline(&deadline);
  Status s = (*reader)->read(refs, res, from, to, shard_series, out);
  (*reader)->set_deadline(nullptr);
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

Status Shard::add_counter_sums(const std::vector<const SeriesInfo*>& series,
                               const std::vector<uint32_t>& rows, size_t res, const StepGrid& grid,
                               double* out, int64_t* wm, const Deadline& deadline) {
  (void)wait_applied(
      std::chrono::milliseconds(5000));  // see note_routed(); bounded for an overloaded shard
  auto reader = store_->acquire_reader();
  if (!reader) return reader.status();
  const size_t steps = grid.steps();
  size_t shard_series = 0;
  StepGrid g = grid;
  {
    // Open buckets and the snapshot under one lock, as in read(); sums need no merging: stored
    // and open parts of a bucket simply add.
    MutexLock lock(state_mu_);
    if (auto s = (*reader)->begin_snapshot(); !s) return s;
    *wm = watermark(clock_.now_s());
    g.since = std::max(g.since, retention_horizon(res));  // as in read()
    shard_series = series_count_;
    const auto& wins = windows_[res];
    for (auto w = wins.lower_bound(std::max(g.from, g.since)); w != wins.end() && w->first < g.to;
         ++w) {
      const size_t step = static_cast<size_t>((w->first - g.from) / g.step);
      for (size_t i = 0; i < series.size(); ++i) {
        if (!owns(series[i])) continue;
        auto [sum, agg] = find_bucket(w->second, series[i]);
        if (sum)
          out[rows[i] * steps + step] += *sum;
        else if (agg)
          out[rows[i] * steps + step] += agg->sum;
      }
    }
    auto lo = late_.lower_bound(LateKey{res, std::max(g.from, g.since), 0});
    auto hi = late_.lower_bound(LateKey{res, g.to, 0});
    if (lo != hi) {
      std::unordered_map<uint64_t, size_t> index;
      for (size_t i = 0; i < series.size(); ++i) index.emplace(series[i]->id, i);
      for (auto it = lo; it != hi; ++it) {
        auto at = index.find(std::get<2>(it->first));
        if (at == index.end()) continue;
        out[rows[at->second] * steps +
            static_cast<size_t>((std::get<1>(it->first) - g.from) / g.step)] += it->second.agg.sum;
      }
    }
  }
  std::vector<SeriesRef> refs;
  refs.reserve(series.size());
  for (const auto* info : series) refs.push_back({info->id, info->kind});
  (*reader)->set_deadline(&deadline);
  Status s = (*reader)->add_counter_sums(refs, rows, res, g, shard_series, out);
  (*reader)->set_deadline(nullptr);
  (*reader)->end_snapshot();
  store_->release_reader(std::move(*reader));
  return s;
}

}  // namespace tally::collector
