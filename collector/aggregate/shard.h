// Shard: one worker thread that owns a slice of the series (by key hash), their open buckets at
// every resolution, and one ShardStore.
//
// Ingest hands it ShardWork; the thread merges points into open buckets, and on each tick
// finalises the buckets whose end the watermark (clock - lateness) has passed: it writes them in
// one transaction, publishes them as FINAL, and drops them from memory. A point for a bucket that
// is already final is late: it is merged into the stored bucket and published as a CORRECTION.
//
// Memory (docs/BENCHMARKS.md, bench_memory): open buckets are kept per window (one bucket start
// at one resolution) rather than per series. A window holds pages of 1024 series slots (the
// catalog's dense per-shard, per-kind SeriesInfo::slot) with a presence bitmap: a counter's open
// bucket is one double, a gauge's or distribution's one BucketAgg. Pages are allocated when a
// slot in their range is first touched and recycled when the window is finalised, which happens
// to the whole window at once when its end passes the watermark. Buckets that were already final
// when their data came (late) wait in a small map until the next flush.
//
// A shard that falls behind (its queue holds work that arrived seconds ago) does not finalise the
// windows that work may still reach: the flush's watermark is held at the oldest queued work's
// arrival minus the lateness. So a backlog is applied into open windows (a double per counter
// series and second) and written once, instead of every point of it becoming a late bucket (a map
// node, and a read-modify-write of the stored bucket) that slows the shard further.
//
// Queries read "stored (+) open" through read(), which takes the open buckets and pins the
// SQLite snapshot under one mutex, so a bucket is never seen twice or missed while it moves
// from memory to disk. Thread-safety: submit() and read() from any thread; the rest is the
// shard thread's.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "aggregate/bucket.h"
#include "aggregate/catalog.h"
#include "deadline.h"
#include "live/publisher.h"
#include "live_limits.h"
#include "self_metrics.h"
#include "storage/shard_store.h"
#include "tally/common/mutex.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

// Points carry their catalog series (which holds the shard's slot for it).
struct CounterIn {
  const SeriesInfo* series;
  int64_t time;
  double value;
};
struct GaugeIn {
  const SeriesInfo* series;
  int64_t time;
  double last, min, max, sum;
  uint64_t count;
};
struct DistIn {
  const SeriesInfo* series;
  int64_t time;
  Sketch sketch;
};

// Points for one shard from one batch (or one StatsD flush), in arrival order.
struct ShardWork {
  uint64_t lsn = 0;
  size_t bytes = 0;       // work_bytes(), set by Shard::submit()
  int64_t arrived_s = 0;  // the shard's clock at submit(): windows its points may reach stay open
  std::vector<const SeriesInfo*> new_series;
  // Series the catalog unlinked (idle-series expiry): released once none of their buckets is open.
  std::vector<const SeriesInfo*> retire;
  std::vector<CounterIn> counters;
  std::vector<GaugeIn> gauges;
  std::vector<DistIn> dists;
  size_t points() const { return counters.size() + gauges.size() + dists.size(); }
  bool empty() const { return points() == 0 && new_series.empty() && retire.empty(); }
};

// The memory a ShardWork holds while it waits in a queue: its arrays' capacity and an estimate
// of each sketch's bins. The ingest budget (ZmqIngestOptions::max_queued_bytes) counts it.
size_t work_bytes(const ShardWork& w);

struct ShardOptions {
  uint32_t index = 0;
  std::vector<Resolution> resolutions;
  int64_t lateness_s = 2;
  int64_t tick_ms = 100;
  // How often the partials of open 1 s buckets go out on the live stream (only for metrics
  // somebody subscribes to; LivePublisher::topics()). Emit to screen is the SDK's flush plus this.
  int64_t partial_every_ms = 250;
  int64_t retention_every_s = 60;
  // When set (it must outlive the shard), how long each resolution is kept is read from it (a
  // reload changes it; the steps stay those of `resolutions`) instead of from `resolutions`.
  const LiveLimits* live_limits = nullptr;
  // Every this often all open buckets are written (as partial buckets where still open), so the
  // write-ahead log before that point can be deleted.
  int64_t checkpoint_every_s = 30;
  // Tests only (the hidden --debug-apply-delay flag): the thread sleeps this long before applying
  // each work item, to play a shard that cannot keep up.
  int64_t debug_apply_delay_us = 0;
};

class Shard {
 public:
  Shard(ShardOptions opts, std::unique_ptr<ShardStore> store, const Clock& clock,
        LivePublisher* live, SelfMetrics& metrics);
  ~Shard();

  // Receives every 1 s bucket this shard finalises (FINAL) or corrects (CORRECTION), after it is
  // stored, on the shard thread (e.g. the remote-write forwarder). Set before start().
  // `active`, when given, says whether the sink takes anything now (remote-write is configured):
  // when it does not, the updates are built only for the live stream's subscribers.
  using FinalSink = std::function<void(const std::vector<wire::LiveUpdate>&)>;
  void set_final_sink(FinalSink sink, std::function<bool()> active = {}) {
    final_sink_ = std::move(sink);
    final_sink_active_ = std::move(active);
  }
  // The catalog whose unlinked series this shard releases (idle-series expiry; catalog.h). Set
  // before start(); without it `retire` work is ignored.
  void set_catalog(SeriesCatalog* catalog) { catalog_ = catalog; }

  void start();
  // Drains the queue, writes every open bucket (final or not) and stops the thread.
  void stop();
  void submit(ShardWork&& work);
  // Registers a series restored from storage at start-up.
  void restore_series(const SeriesInfo* info);
  // Start-up only, before start(): applies logged work read back from the write-ahead log,
  // skipping every point whose stored bucket already includes this LSN.
  Status replay(ShardWork& work);
  // Start-up only, before start(): fills resolution `res` (newly configured) from the stored
  // buckets of the finer resolution `from_res`, so existing data is readable at the new step.
  // Returns the number of buckets written.
  Result<uint64_t> backfill(size_t res, size_t from_res);

  // Stored (+) open buckets of each series at resolution res in [from, to): out[i] belongs to
  // series[i], in time order. *watermark receives the watermark the open buckets were taken at.
  // Gives up (Status::unavailable(kPastDeadline)) once `deadline` passes.
  Status read(const std::vector<const SeriesInfo*>& series, size_t res, int64_t from, int64_t to,
              std::vector<std::vector<StoredBucket>>* out, int64_t* watermark,
              const Deadline& deadline = {});
  // Counters only, the query fast path: adds the stored (+) open sums of series[i] over the grid's
  // steps to out[rows[i] * grid.steps() + step index] (out: rows x steps doubles), decoding chunks
  // straight into it. *watermark as for read().
  Status add_counter_sums(const std::vector<const SeriesInfo*>& series,
                          const std::vector<uint32_t>& rows, size_t res, const StepGrid& grid,
                          double* out, int64_t* watermark, const Deadline& deadline = {});

  // The next tick runs the retention sweep (a reload changed how long a resolution is kept);
  // any thread.
  void sweep_retention_soon() { sweep_soon_.store(true, std::memory_order_relaxed); }

  size_t queue_depth() const;
  // Bytes (work_bytes) submitted and not yet applied, and applied since start.
  uint64_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  // Bytes of buckets held in memory that are overdue: windows the watermark has passed but the
  // shard has not written yet, and late buckets (a shard that falls behind its watermark turns
  // every point into a late bucket). Refreshed by the shard thread after each round of work.
  uint64_t held_bytes() const { return held_bytes_.load(std::memory_order_relaxed); }
  uint64_t applied_bytes() const { return applied_bytes_.load(std::memory_order_relaxed); }
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }
  // Why storage is unhealthy ("disk full…", "storage corruption…"); empty when healthy.
  std::string health_reason() const;
  uint64_t applied_lsn() const { return applied_lsn_.load(std::memory_order_acquire); }
  // Read-your-acknowledged-writes: the router notes the newest logged work it handed over, and a
  // query waits (bounded) until the shard has applied it, so a batch acknowledged before a query
  // started is in that query's answer.
  void note_routed(uint64_t lsn) { routed_lsn_.store(lsn, std::memory_order_release); }
  uint64_t routed_lsn() const { return routed_lsn_.load(std::memory_order_acquire); }
  bool wait_applied(std::chrono::milliseconds timeout) const;
  // Every logged point with an LSN up to this one is in SQLite.
  uint64_t safe_lsn() const { return safe_lsn_.load(std::memory_order_acquire); }
  ShardStore& store() { return *store_; }

 private:
  static constexpr size_t kPageSlots = 1024;
  static constexpr size_t kKinds = 3;  // counter, gauge, distribution (Kind - 1)
  // The open buckets of kPageSlots consecutive slots of one kind in one window.
  struct Page {
    std::array<uint64_t, kPageSlots / 64> present{};
    std::array<uint64_t, kPageSlots / 64>
        dirty{};                        // changed since the last PARTIAL publication (1 s only)
    std::unique_ptr<double[]> sums;     // counters
    std::unique_ptr<BucketAgg[]> aggs;  // gauges and distributions
  };
  // Every open bucket of one resolution with one bucket start.
  struct Window {
    std::array<std::vector<std::unique_ptr<Page>>, kKinds> pages;  // per kind, by slot / kPageSlots
    // A checkpoint wrote this 1 s window while it was still open: its values are what arrived
    // since (stored (+) window is the bucket), and its present bits still name every series with
    // the bucket, so each gets its FINAL (with the merged value) when the window is finalised.
    bool checkpointed = false;
    // What the checkpoint wrote, for the series of metrics live-stream subscribers wanted then
    // (key: kind << 32 | slot): a PARTIAL after the checkpoint is this merged with what came since,
    // so a watched bucket keeps going out as it grows. Series not here send only their FINAL.
    std::unordered_map<uint64_t, BucketAgg> checkpointed_values;
  };
  // A bucket that was already final when this data arrived; merged into storage at the next flush.
  struct LateBucket {
    const SeriesInfo* info = nullptr;
    BucketAgg agg;
  };
  using LateKey = std::tuple<size_t, int64_t, uint64_t>;  // resolution, bucket start, series id

  void run();
  void apply(ShardWork& w, bool replaying = false);
  // Applies every item of work in order (the debug delay first, unless stopping) and empties it;
  // the queue's byte counts follow.
  void apply_all(std::deque<ShardWork>& work, bool stopping);
  // Makes info one of this shard's series (idempotent).
  void add_series(const SeriesInfo* info) REQUIRES(state_mu_);
  bool owns(const SeriesInfo* info) const REQUIRES_SHARED(state_mu_);
  // Adds one point to the bucket of info at every resolution (add_sum for counters' sums, add_agg
  // for every other open bucket).
  template <typename AddSum, typename AddAgg>
  void add_point(const SeriesInfo* info, int64_t time, int64_t wm, uint64_t lsn, bool replaying,
                 uint64_t* late, AddSum&& add_sum, AddAgg&& add_agg) REQUIRES(state_mu_);
  Page& page(Window& w, Kind kind, uint32_t slot);
  // Calls fn(slot, sum or nullptr, agg or nullptr) for every open bucket of kind k in w.
  template <typename Fn>
  static void for_each_bucket(const Window& w, size_t k, Fn&& fn);
  // The open bucket of info in w: sum (counters) or agg, or both nullptr when it has none.
  static std::pair<const double*, const BucketAgg*> find_bucket(const Window& w,
                                                                const SeriesInfo* info);
  void recycle(Window&& w);
  void update_held_bytes();  // shard thread
  // The open state (series_, windows_, late_) is written by the shard thread alone, under
  // state_mu_ so queries can read it under the lock; the shard thread itself reads it without the
  // lock (nothing else writes it). Called at the top of such a shard-thread reader, this tells the
  // lock analysis (thread_annotations.h): reads pass, a write still needs the lock.
  void owner_reads() const ASSERT_SHARED_CAPABILITY(state_mu_) {}
  // After a checkpoint wrote w while open: zero its values, keep its present bits, mark it.
  void keep_checkpointed(Window& w) REQUIRES(state_mu_);
  // Writes due buckets (all of them when everything is set: a checkpoint); false on a storage
  // error.
  bool flush(int64_t now_s, bool everything);
  struct FlushResult {
    uint64_t lsn = 0;
    bool wrote = false;  // anything beyond the safe LSN
    uint64_t written = 0;
    std::vector<wire::LiveUpdate> updates;
  };
  // Writes what is due in one transaction and drops it from memory; on an error the caller rolls
  // back (flush() is the one failure path). Shard thread: it reads the open state without the lock
  // (see owner_reads) and then takes the lock to drop what it wrote; the analysis cannot follow a
  // lock-free read that is followed by the lock in one function.
  Status write_due(int64_t now_s, bool everything, FlushResult* out) NO_THREAD_SAFETY_ANALYSIS;
  void set_unhealthy(const Status& s);
  void quarantine(const SeriesInfo& info, size_t res, int64_t start, const BucketAgg& agg,
                  const Status& why);
  bool replay_skips(uint64_t series_id, size_t res, int64_t point_time, uint64_t lsn);
  void publish_partials();
  // Releases the retiring series that hold no open or late bucket (after a successful flush):
  // out of this shard's slots, written as expired with the next flush.
  void release_retiring(int64_t now_s);
  bool holds_buckets(const SeriesInfo* info) const REQUIRES_SHARED(state_mu_);
  void apply_retention(int64_t now_s);
  // Encodes the storage windows the flush before it has closed, up to final_wm_
  // (ShardStore::compact).
  void compact_storage();
  // The oldest bucket time a query may see at resolution res (its retention).
  int64_t retention_horizon(size_t res) const;
  // How long resolution res is kept, now (opts_.live_limits or opts_.resolutions).
  int64_t retention_s(size_t res) const;
  int64_t watermark(int64_t now_s) const { return now_s - opts_.lateness_s; }
  // The watermark a flush finalises up to: the clock's, held back to the oldest queued work's
  // arrival (see the top of this file), never below what is already final.
  int64_t flush_watermark(int64_t now_s);

  const ShardOptions opts_;
  std::unique_ptr<ShardStore> store_;
  const Clock& clock_;
  LivePublisher* live_;
  FinalSink final_sink_;
  std::function<bool()> final_sink_active_;
  SelfMetrics& metrics_;

  mutable Mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<ShardWork> queue_ GUARDED_BY(queue_mu_);
  bool stopping_ GUARDED_BY(queue_mu_) = false;

  // Open buckets: written by the shard thread under state_mu_, read by queries under it.
  mutable Mutex state_mu_;
  std::array<std::vector<const SeriesInfo*>, kKinds> series_
      GUARDED_BY(state_mu_);  // per kind, by slot
  size_t series_count_ GUARDED_BY(state_mu_) = 0;
  std::vector<std::map<int64_t, Window>> windows_
      GUARDED_BY(state_mu_);  // per resolution, by bucket start
  std::map<LateKey, LateBucket> late_ GUARDED_BY(state_mu_);
  std::array<std::vector<std::unique_ptr<Page>>, kKinds>
      free_pages_;                                 // finalised windows' pages, for reuse
  std::vector<const SeriesInfo*> pending_series_;  // not yet in the series table
  SeriesCatalog* catalog_ = nullptr;
  std::vector<const SeriesInfo*> retiring_;  // unlinked by the catalog; shard thread only
  struct Expired {
    uint64_t id;
    int64_t last_s;
  };
  std::vector<Expired> to_mark_;  // released, not yet written as expired; shard thread only
  int64_t released_at_s_ = 0;     // when to_mark_'s releases happened

  std::atomic<bool> healthy_{true};
  mutable Mutex reason_mu_;
  std::string health_reason_ GUARDED_BY(reason_mu_);
  struct Quarantined {
    uint64_t series_id;  // its record may be freed by idle-series expiry
    size_t res;
    int64_t start;
    BucketAgg agg;
  };
  std::deque<Quarantined> quarantined_;  // shard thread only; the newest, bounded
  uint64_t quarantined_total_ = 0;
  int64_t last_quarantine_log_s_ = 0;
  int64_t last_limit_log_s_ = 0;
  std::atomic<uint64_t> applied_lsn_{0};
  std::atomic<uint64_t> queued_bytes_{0};
  std::atomic<uint64_t> applied_bytes_{0};
  std::atomic<uint64_t> held_bytes_{0};
  std::atomic<uint64_t> routed_lsn_{0};
  std::atomic<uint64_t> safe_lsn_{0};
  int64_t last_checkpoint_s_ = 0;
  // Every window whose end is at or before this has been written as final (shard thread): a point
  // for one of them is late. Starts at the watermark of the moment the shard was made.
  int64_t final_wm_ = 0;
  int64_t last_partial_ms_ = 0;
  int64_t last_retention_s_ = 0;
  std::atomic<bool> sweep_soon_{false};
  bool compact_failed_ = false;  // logged once per failure streak
  std::map<std::tuple<uint64_t, size_t, int64_t>, uint64_t> replay_lsn_cache_;  // start-up only
  std::thread thread_;
};

}  // namespace tally::collector
