#include "client_core.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "series_hash.h"
#include "tally/common/wire.h"

namespace tally::detail {
namespace {

std::atomic<uint64_t> g_next_client_id{1};

uint64_t random_producer_id() {
  std::random_device rd;
  std::mt19937_64 gen(
      (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  uint64_t id = 0;
  while (id == 0) id = gen();
  return id;
}

// The ThreadStates a thread holds, one per client it has recorded into. On thread exit they are
// marked retired so the flush thread samples them once more and lets them go.
struct ThreadRegistry {
  std::vector<std::shared_ptr<ThreadState>> states;
  ~ThreadRegistry() {
    for (auto& s : states) s->retired.store(true, std::memory_order_release);
  }
};

}  // namespace

thread_local uint64_t ClientCore::t_client_id_ = 0;
thread_local ThreadState* ClientCore::t_state_ = nullptr;

void BinStore::grow(int32_t key) {
  // Grow by at least 64 bins in the needed direction so a drifting distribution settles fast.
  constexpr int32_t kSlack = 64;
  if (bins_.empty()) {
    offset_ = key - kSlack;
    bins_.assign(2 * kSlack, 0);
    return;
  }
  int32_t end = offset_ + static_cast<int32_t>(bins_.size());
  if (key < offset_) {
    int32_t add = std::max(offset_ - key, kSlack);
    bins_.insert(bins_.begin(), static_cast<size_t>(add), 0);
    offset_ -= add;
    if (lo_ != SIZE_MAX) {
      lo_ += static_cast<size_t>(add);
      hi_ += static_cast<size_t>(add);
    }
  } else {
    int32_t add = std::max(key - end + 1, kSlack);
    bins_.resize(bins_.size() + static_cast<size_t>(add), 0);
  }
}

void LookupTable::insert(uint64_t hash, Slot* slot) {
  if ((used_ + 1) * 2 > entries_.size()) {
    std::vector<Entry> old = std::move(entries_);
    entries_.assign(std::max<size_t>(16, old.size() * 2), Entry{});
    used_ = 0;
    for (const Entry& e : old)
      if (e.slot) insert(e.hash, e.slot);
  }
  size_t mask = entries_.size() - 1;
  size_t i = hash & mask;
  while (entries_[i].slot) i = (i + 1) & mask;
  entries_[i] = Entry{hash, slot};
  ++used_;
}

ClientCore::ClientCore(ClientOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &SystemClock::instance()),
      id_(g_next_client_id.fetch_add(1)),
      producer_id_(options_.producer_id ? options_.producer_id : random_producer_id()) {
  if (::pipe2(wake_fds_, O_NONBLOCK | O_CLOEXEC) != 0) wake_fds_[0] = wake_fds_[1] = -1;
  sender_ =
      std::make_unique<Sender>(options_, producer_id_, [this](uint32_t ref) -> const SeriesInfo* {
        MutexLock lk(registry_mu_);
        return ref < series_.size() ? series_[ref].get() : nullptr;
      });
  for (auto& e : sender_->take_errors()) last_error_ = e;
  published_ = sender_->counters();
  last_sample_ms_ = clock_ms();
  int64_t interval = std::max<int64_t>(1, options_.flush_interval.count());
  next_flush_ms_ = bucket_start(last_sample_ms_, interval) + interval;
  thread_ = std::thread([this] { run(); });
}

ClientCore::~ClientCore() {
  {
    MutexLock lk(mu_);
    stopping_ = true;
    close_deadline_ = std::chrono::steady_clock::now() + options_.close_timeout;
  }
  wake();
  thread_.join();
  MutexLock lk(threads_mu_);
  for (auto& ts : threads_) ts->client_alive.store(false, std::memory_order_release);
  sender_.reset();
  for (int fd : wake_fds_)
    if (fd >= 0) ::close(fd);
}

void ClientCore::wake() {
  if (wake_fds_[1] < 0) return;
  char b = 1;
  [[maybe_unused]] ssize_t n =
      ::write(wake_fds_[1], &b, 1);  // full pipe: a wake-up is pending anyway
}

// ---------------------------------------------------------------- recording

ThreadState* ClientCore::local_slow() {
  static thread_local ThreadRegistry registry;
  auto& states = registry.states;
  std::erase_if(states,
                [](const auto& s) { return !s->client_alive.load(std::memory_order_acquire); });
  for (auto& s : states) {
    if (s->client_id == id_) {
      t_client_id_ = id_;
      t_state_ = s.get();
      return s.get();
    }
  }
  auto ts = std::make_shared<ThreadState>(id_);
  {
    MutexLock lk(threads_mu_);
    threads_.push_back(ts);
  }
  states.push_back(ts);
  t_client_id_ = id_;
  t_state_ = ts.get();
  return ts.get();
}

Slot* ClientCore::make_slot(ThreadState* ts, uint32_t ref) {
  const SeriesInfo* s = nullptr;
  {
    MutexLock lk(registry_mu_);
    if (ref < series_.size()) s = series_[ref].get();
  }
  if (!s) return nullptr;
  std::unique_ptr<Slot> slot;
  switch (s->kind) {
    case Kind::kCounter:
      slot = std::make_unique<CounterSlot>(s);
      break;
    case Kind::kGauge:
      slot = std::make_unique<GaugeSlot>(s);
      break;
    case Kind::kDistribution:
      slot = std::make_unique<DistributionSlot>(s);
      break;
  }
  Slot* raw = slot.get();
  {
    MutexLock lk(ts->mu);
    ts->slots.push_back(std::move(slot));
  }
  if (ts->by_ref.size() <= ref)
    ts->by_ref.resize(std::max<size_t>(ref + 1, ts->by_ref.size() * 2), nullptr);
  ts->by_ref[ref] = raw;
  return raw;
}

Result<const SeriesInfo*> ClientCore::resolve(Kind kind, std::string_view metric,
                                              const TagSpan& tags) {
  if (Status st = Client::validate(metric, tags); !st) {
    return Status::invalid_argument(std::string(kind_name(kind)) + " '" + std::string(metric) +
                                    "': " + st.message());
  }
  Tags canon = tags.to_tags();
  canonicalize(canon);
  std::string key = series_key(metric, canon);
  MutexLock lk(registry_mu_);
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    if (it->second->kind != kind) {
      return Status::invalid_argument("metric '" + std::string(metric) + "' is a " +
                                      kind_name(it->second->kind) + ", not a " + kind_name(kind));
    }
    return static_cast<const SeriesInfo*>(it->second);
  }
  if (auto it = metric_kinds_.find(std::string(metric));
      it != metric_kinds_.end() && it->second != kind) {
    return Status::invalid_argument("metric '" + std::string(metric) + "' is a " +
                                    kind_name(it->second) + ", not a " + kind_name(kind));
  }
  if (series_.size() >= options_.max_series) {
    return Status::invalid_argument("series limit of " + std::to_string(options_.max_series) +
                                    " reached; " + kind_name(kind) + " '" + std::string(metric) +
                                    "' {" + tags_to_string(canon) + "} dropped");
  }
  auto info = std::make_unique<SeriesInfo>();
  info->ref = static_cast<uint32_t>(series_.size());
  info->kind = kind;
  info->metric = std::string(metric);
  info->tags = std::move(canon);
  SeriesInfo* raw = info.get();
  series_.push_back(std::move(info));
  by_key_.emplace(std::move(key), raw);
  metric_kinds_.emplace(raw->metric, kind);
  return static_cast<const SeriesInfo*>(raw);
}

Slot* ClientCore::lookup(Kind kind, std::string_view metric, const TagSpan& tags) {
  ThreadState* ts = local();
  uint64_t h = lookup_hash(metric, tags);
  Slot* s = ts->lookup.find(h, metric, tags);
  if (s && s->series->kind == kind) [[likely]]
    return s;
  return lookup_slow(ts, h, s, kind, metric, tags);
}

Slot* ClientCore::lookup_slow(ThreadState* ts, uint64_t h, Slot* s, Kind kind,
                              std::string_view metric, const TagSpan& tags) {
  if (s) {
    invalid_values_.fetch_add(1, std::memory_order_relaxed);
    set_error("metric '" + std::string(metric) + "' is a " + kind_name(s->series->kind) +
              ", not a " + kind_name(kind));
    return nullptr;
  }
  auto r = resolve(kind, metric, tags);
  if (!r) {
    invalid_values_.fetch_add(1, std::memory_order_relaxed);
    set_error(r.status().message());
    return nullptr;
  }
  s = slot_for(ts, (*r)->ref);
  if (s) ts->lookup.insert(h, s);
  return s;
}

void ClientCore::note_invalid(std::string_view why) {
  set_error(std::string(why));
}

void ClientCore::note_invalid_ref() {
  invalid_values_.fetch_add(1, std::memory_order_relaxed);
}

void ClientCore::note_invalid_value(double v) {
  invalid_values_.fetch_add(1, std::memory_order_relaxed);
  // One message is enough; a stream of NaNs must not turn into a stream of locks.
  if (!nonfinite_noted_.exchange(true, std::memory_order_relaxed))
    set_error("non-finite value " + std::to_string(v) +
              " dropped (NaN and infinities are not recorded)");
}

void ClientCore::set_error(std::string msg) {
  MutexLock lk(mu_);
  last_error_ = std::move(msg);
}

// ---------------------------------------------------------------- control

bool ClientCore::flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  uint64_t gen = 0;
  {
    MutexLock lk(mu_);
    gen = ++flush_requested_;
  }
  wake();
  MutexLock lk(mu_);
  while (!(flush_served_ >= gen && published_.batches_pending == 0))
    if (lk.wait_until(cv_, deadline) == std::cv_status::timeout)
      return flush_served_ >= gen && published_.batches_pending == 0;
  return true;
}

ClientStats ClientCore::stats() const {
  ClientStats s;
  {
    MutexLock lk(mu_);
    s = published_;
  }
  {
    MutexLock lk(registry_mu_);
    s.series = series_.size();
  }
  s.invalid_values = invalid_values_.load(std::memory_order_relaxed);
  return s;
}

std::string ClientCore::last_error() const {
  MutexLock lk(mu_);
  return last_error_;
}

// ---------------------------------------------------------------- flush thread

void ClientCore::run() {
  bool final_batch_built = false;
  const int64_t idle_cap = options_.clock ? kMaxIdleWaitInjectedMs : kMaxIdleWaitMs;
  const int64_t interval = std::max<int64_t>(1, options_.flush_interval.count());
  for (;;) {
    uint64_t requested;
    bool stopping;
    std::chrono::steady_clock::time_point deadline;
    {
      MutexLock lk(mu_);
      requested = flush_requested_;
      stopping = stopping_;
      deadline = close_deadline_;
    }
    int64_t now = clock_ms();
    try {
      bool forced = requested > served_local_ || (stopping && !final_batch_built);
      // Sample at every second boundary, so each second's deltas land in that second's bucket.
      if (forced || bucket_start(now, kBucketMs) != bucket_start(last_sample_ms_, kBucketMs))
        sample(now);
      if (forced || now >= next_flush_ms_) {
        build_batch(now);
        next_flush_ms_ = bucket_start(now, interval) + interval;
      }
      served_local_ = requested;
      if (stopping) final_batch_built = true;

      bool done =
          stopping && (sender_->pending() == 0 || std::chrono::steady_clock::now() >= deadline);
      if (!done) {
        int64_t target = std::min(bucket_start(now, kBucketMs) + kBucketMs, next_flush_ms_);
        if (!sender_->blocked()) target = std::min(target, sender_->next_due_ms());
        int64_t wait = std::clamp<int64_t>(target - now, 0, idle_cap);
        if (stopping) {
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - std::chrono::steady_clock::now());
          wait = std::clamp<int64_t>(left.count(), 0, wait);
        }
        sender_->pump(now, wait, wake_fds_[0]);
        char buf[64];
        while (wake_fds_[0] >= 0 && ::read(wake_fds_[0], buf, sizeof buf) > 0) {}
      }
      publish();
      if (done) return;
    } catch (const zmq::error_t& e) {
      // The thread boundary: count, report, and carry on after a pause rather than spin.
      {
        MutexLock lk(mu_);
        ++transport_exceptions_;
        last_error_ = std::string("flush thread: ZeroMQ error: ") + e.what();
      }
      publish();
      if (stopping) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void ClientCore::publish() {
  auto errors = sender_->take_errors();
  {
    MutexLock lk(mu_);
    published_ = sender_->counters();
    published_.batches_pending = sender_->pending();
    published_.pending_bytes = sender_->pending_bytes();
    published_.batches_in_flight = sender_->in_flight();
    published_.transport_errors += transport_exceptions_;
    if (!errors.empty()) last_error_ = errors.back();
    flush_served_ = served_local_;
  }
  cv_.notify_all();
}

void ClientCore::sample(int64_t now_ms) {
  // The deltas since the last sample belong to the second in which that sample was taken: at
  // a boundary sample that is the second that just ended; after a forced mid-second sample,
  // the current one.
  const int64_t bucket = bucket_start(last_sample_ms_, kBucketMs) / kBucketMs;
  last_sample_ms_ = now_ms;
  std::vector<std::shared_ptr<ThreadState>> states;
  {
    MutexLock lk(threads_mu_);
    states = threads_;
  }
  for (const auto& ts : states) {
    bool retired = ts->retired.load(std::memory_order_acquire);
    {
      MutexLock lk(ts->mu);
      for (const auto& slot : ts->slots) sample_slot(*slot, bucket);
    }
    if (retired) {
      MutexLock lk(threads_mu_);
      std::erase(threads_, ts);
    }
  }
}

void ClientCore::sample_slot(Slot& slot, int64_t bucket) {
  BucketKey key{slot.series->ref, bucket};
  switch (slot.series->kind) {
    case Kind::kCounter: {
      auto& c = static_cast<CounterSlot&>(slot);
      double total = c.total.load(std::memory_order_relaxed);
      if (total != c.sampled) {
        counters_[key] += total - c.sampled;
        c.sampled = total;
      }
      return;
    }
    case Kind::kGauge: {
      auto& g = static_cast<GaugeSlot&>(slot);
      GaugeAgg a;
      {
        std::lock_guard lk(g.lock);
        if (g.agg.count == 0) return;
        a = g.agg;
        g.agg = GaugeAgg{};
      }
      gauges_[key].merge(a);
      return;
    }
    case Kind::kDistribution: {
      auto& d = static_cast<DistributionSlot&>(slot);
      uint64_t count, zero;
      double sum, min, max;
      pos_scratch_.clear();
      neg_scratch_.clear();
      {
        std::lock_guard lk(d.lock);
        if (d.count == 0) return;
        count = d.count;
        zero = d.zero_count;
        sum = d.sum;
        min = d.min;
        max = d.max;
        d.pos.drain(pos_scratch_);
        d.neg.drain(neg_scratch_);
        d.count = d.zero_count = 0;
        d.sum = d.min = d.max = 0;
      }
      auto sk = Sketch::from_parts(count, sum, min, max, zero, pos_scratch_, neg_scratch_);
      if (!sk) {
        invalid_values_.fetch_add(count, std::memory_order_relaxed);
        set_error("distribution '" + slot.series->metric + "': " + sk.status().message());
        return;
      }
      distributions_[key].merge(*sk);
      return;
    }
  }
}

void ClientCore::build_batch(int64_t now_ms) {
  if (counters_.empty() && gauges_.empty() && distributions_.empty()) return;
  // The points go out in batches of at most max_batch_bytes, definitions included (a first flush
  // of 100 k new series is megabytes), cut between points.
  const size_t budget = std::max<size_t>(1024, options_.max_batch_bytes) - 64;  // 64: header
  wire::Batch batch;
  std::vector<uint32_t> refs;
  size_t points = 0, bytes = 0;
  uint32_t last_ref = kInvalidRef;  // points come sorted by ref: a ref's def is counted once
  auto cut = [&] {
    if (points == 0) return;
    std::sort(refs.begin(), refs.end());
    refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
    sender_->enqueue(std::move(batch), std::move(refs), points, now_ms);
    batch = wire::Batch();
    refs = {};
    points = bytes = 0;
    last_ref = kInvalidRef;
  };
  // Makes room for a point of `point_bytes` (its columns' share) of ref, cutting first if the
  // batch would pass the budget; the ref's definition counts the first time the batch sees it.
  auto room = [&](uint32_t ref, size_t point_bytes) {
    size_t cost = point_bytes + (ref != last_ref ? sender_->def_bytes(ref) : 0);
    if (points > 0 && bytes + cost > budget) {
      cut();
      cost = point_bytes + sender_->def_bytes(ref);
    }
    bytes += cost;
    last_ref = ref;
    refs.push_back(ref);
    ++points;
  };
  auto by_ref_time = [](const auto& a, const auto& b) {
    return a.first.ref != b.first.ref ? a.first.ref < b.first.ref : a.first.time < b.first.time;
  };

  // Packed columns: a ref and a time as varints (at most 5 and 10 bytes), doubles of 8.
  std::vector<std::pair<BucketKey, double>> cs(counters_.begin(), counters_.end());
  std::sort(cs.begin(), cs.end(), by_ref_time);
  for (const auto& [k, v] : cs) {
    if (v == 0) continue;  // increments that cancelled out
    room(k.ref, 5 + 10 + 8);
    auto* cc = batch.mutable_counters();
    cc->add_refs(k.ref);
    cc->add_times(k.time);
    cc->add_values(v);
  }

  std::vector<std::pair<BucketKey, GaugeAgg>> gs(gauges_.begin(), gauges_.end());
  std::sort(gs.begin(), gs.end(), by_ref_time);
  last_ref = kInvalidRef;
  for (const auto& [k, g] : gs) {
    room(k.ref, 5 + 10 + 4 * 8 + 10);
    auto* gc = batch.mutable_gauges();
    gc->add_refs(k.ref);
    gc->add_times(k.time);
    gc->add_last(g.last);
    gc->add_min(g.min);
    gc->add_max(g.max);
    gc->add_sum(g.sum);
    gc->add_count(g.count);
  }

  std::vector<std::pair<BucketKey, const Sketch*>> ds;
  ds.reserve(distributions_.size());
  for (const auto& [k, s] : distributions_) ds.emplace_back(k, &s);
  std::sort(ds.begin(), ds.end(), by_ref_time);
  last_ref = kInvalidRef;
  wire::DistributionPoint p;
  for (const auto& [k, s] : ds) {
    p.Clear();
    p.set_ref(k.ref);
    p.set_time(k.time);
    sketch_to_proto(*s, p.mutable_sketch());
    room(k.ref, p.ByteSizeLong() + 4);
    *batch.add_distributions() = p;
  }

  counters_.clear();
  gauges_.clear();
  distributions_.clear();
  cut();
}

}  // namespace tally::detail
