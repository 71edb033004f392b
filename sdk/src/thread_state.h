// Per-thread recording state: one slot per series a thread has touched.
//
// A slot is written only by its owner thread; the flush thread samples it once per second.
// Counter slots hold a cumulative total (relaxed load + store by the owner, no read-modify-
// write); the sampler remembers what it last saw and sends the difference. Gauge and
// distribution slots hold the current interval's aggregate behind a spinlock that only the
// owner and, once per sample, the sampler ever take. ThreadStates are owned jointly by the
// client and the thread (shared_ptr), so a thread's slots are still flushed after it exits.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "series_hash.h"
#include "tally/client.h"
#include "tally/common/mutex.h"
#include "tally/common/series_key.h"
#include "tally/common/sketch.h"
#include "wire_format.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tally::detail {

class SpinLock {
 public:
  void lock() {
    while (flag_.exchange(true, std::memory_order_acquire)) {
      while (flag_.load(std::memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
        _mm_pause();
#endif
      }
    }
  }
  void unlock() {
    flag_.store(false, std::memory_order_release);
  }

 private:
  std::atomic<bool> flag_{false};
};

// Immutable once created; owned by the client's registry, shared read-only by all threads.
struct SeriesInfo {
  uint32_t ref = kInvalidRef;
  Kind kind = Kind::kCounter;
  std::string metric;
  Tags tags;  // canonical (sorted by key)
};

struct Slot {
  explicit Slot(const SeriesInfo* s) : series(s) {}
  virtual ~Slot() = default;
  const SeriesInfo* series;
};

struct CounterSlot final : Slot {
  using Slot::Slot;
  void add(double v) {
    total.store(total.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }
  std::atomic<double> total{0};
  double sampled = 0;  // flush thread only
};

struct GaugeAgg {
  uint64_t count = 0;
  double last = 0, min = 0, max = 0, sum = 0;
  int64_t last_order =
      0;  // when `last` was set (TSC or steady clock), to pick the latest across threads

  void add(double v, int64_t order) {
    if (count == 0) {
      min = max = v;
    } else {
      min = v < min ? v : min;
      max = v > max ? v : max;
    }
    ++count;
    sum += v;
    if (order >= last_order) {
      last = v;
      last_order = order;
    }
  }
  void merge(const GaugeAgg& o) {
    if (o.count == 0) return;
    if (count == 0) {
      *this = o;
      return;
    }
    min = o.min < min ? o.min : min;
    max = o.max > max ? o.max : max;
    count += o.count;
    sum += o.sum;
    if (o.last_order >= last_order) {
      last = o.last;
      last_order = o.last_order;
    }
  }
};

struct GaugeSlot final : Slot {
  using Slot::Slot;
  SpinLock lock;
  GaugeAgg agg;  // guarded by lock
};

// Dense sketch bins that are zeroed, never freed, by the sampler: after the first seconds a
// distribution slot records without allocating.
class BinStore {
 public:
  void add(int32_t key) {
    if (key < offset_ || key >= offset_ + static_cast<int32_t>(bins_.size())) grow(key);
    size_t i = static_cast<size_t>(key - offset_);
    ++bins_[i];
    lo_ = i < lo_ ? i : lo_;
    hi_ = i + 1 > hi_ ? i + 1 : hi_;
  }
  // Appends non-empty bins to out and zeroes them.
  void drain(std::vector<Sketch::KeyCount>& out) {
    for (size_t i = lo_; i < hi_; ++i) {
      if (bins_[i]) {
        out.push_back({offset_ + static_cast<int32_t>(i), bins_[i]});
        bins_[i] = 0;
      }
    }
    lo_ = SIZE_MAX;
    hi_ = 0;
  }

 private:
  void grow(int32_t key);
  int32_t offset_ = 0;
  std::vector<uint64_t> bins_;
  size_t lo_ = SIZE_MAX, hi_ = 0;  // range of possibly non-empty bins
};

struct DistributionSlot final : Slot {
  using Slot::Slot;
  SpinLock lock;
  // guarded by lock:
  uint64_t count = 0, zero_count = 0;
  double sum = 0, min = 0, max = 0;
  BinStore pos, neg;

  void observe(double v) {
    // The logarithm is the expensive part; take it before the lock.
    int32_t key = 0;
    int sign = 0;
    if (v >= kMinIndexable) {
      key = Sketch::key_of(v);
      sign = 1;
    } else if (v <= -kMinIndexable) {
      key = Sketch::key_of(-v);
      sign = -1;
    }
    std::lock_guard<SpinLock> g(lock);
    if (count == 0) {
      min = max = v;
    } else {
      min = v < min ? v : min;
      max = v > max ? v : max;
    }
    ++count;
    sum += v;
    if (sign > 0)
      pos.add(key);
    else if (sign < 0)
      neg.add(key);
    else
      ++zero_count;
  }
};

// Open-addressing table from hash(metric, tags) to the series and this thread's slot, for the
// direct calls. Owner thread only.
class LookupTable {
 public:
  struct Entry {
    uint64_t hash = 0;
    Slot* slot = nullptr;  // nullptr = empty
  };
  Slot* find(uint64_t hash, std::string_view metric, const TagSpan& tags) const {
    if (entries_.empty()) return nullptr;
    size_t mask = entries_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Entry& e = entries_[i];
      if (!e.slot) return nullptr;
      if (e.hash == hash && same_series(*e.slot->series, metric, tags)) return e.slot;
    }
  }
  void insert(uint64_t hash, Slot* slot);

  static bool same_series(const SeriesInfo& s, std::string_view metric, const TagSpan& tags) {
    const size_t n = tags.size();
    if (s.tags.size() != n || !same_bytes(s.metric, metric)) return false;
    for (size_t i = 0; i < n; ++i) {
      TagView t = tags[i];
      // Callers usually pass tags in one fixed order; try the same position first.
      const Tag* match = nullptr;
      if (same_bytes(s.tags[i].key, t.key)) {
        match = &s.tags[i];
      } else {
        for (const Tag& st : s.tags) {
          if (same_bytes(st.key, t.key)) {
            match = &st;
            break;
          }
        }
      }
      if (!match || !same_bytes(match->value, t.value)) return false;
    }
    return true;
  }

 private:
  std::vector<Entry> entries_;
  size_t used_ = 0;
};

struct ThreadState {
  explicit ThreadState(uint64_t client) : client_id(client) {}
  const uint64_t client_id;

  // Owner thread only.
  std::vector<Slot*> by_ref;
  LookupTable lookup;

  // Shared with the flush thread.
  Mutex mu;
  std::vector<std::unique_ptr<Slot>> slots GUARDED_BY(mu);  // appended by the owner
  std::atomic<bool> retired{false};      // the thread exited: sample once more, then free
  std::atomic<bool> client_alive{true};  // the client was destroyed: the thread may prune
};

}  // namespace tally::detail
