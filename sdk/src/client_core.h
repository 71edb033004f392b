// ClientCore: what a tally::Client is made of. The series registry (metric + tags -> ref),
// the per-thread slots, and the flush thread that samples the slots into 1 s buckets and
// hands batches to the Sender.
//
// Thread-safety: record paths run on any thread and touch only that thread's ThreadState;
// registry_mu_ guards the series registry (slow path: first use of a series by a thread);
// threads_mu_ guards the list of ThreadStates; mu_ guards what client threads and the flush
// thread exchange (flush requests, stop, published stats). Everything under "flush thread
// only" is touched by the flush thread alone.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "sender.h"
#include "tally/client.h"
#include "tally/common/mutex.h"
#include "thread_state.h"

namespace tally::detail {

class ClientCore {
 public:
  explicit ClientCore(ClientOptions options);
  ~ClientCore();  // stops the flush thread after a last delivery attempt

  // ---- recording (any thread)
  ThreadState* local() {
    if (t_client_id_ == id_) [[likely]]
      return t_state_;
    return local_slow();
  }
  Slot* slot_for(ThreadState* ts, uint32_t ref) {
    if (ref < ts->by_ref.size()) [[likely]] {
      if (Slot* s = ts->by_ref[ref]) [[likely]]
        return s;
    }
    return make_slot(ts, ref);
  }
  // Resolves metric + tags to a series of `kind` (validating, creating it on first use).
  Result<const SeriesInfo*> resolve(Kind kind, std::string_view metric, const TagSpan& tags);
  // Direct call path: the per-thread lookup table, then resolve() on a miss. nullptr if
  // invalid (already counted).
  Slot* lookup(Kind kind, std::string_view metric, const TagSpan& tags);
  void note_invalid(std::string_view why);
  void note_invalid_ref();
  void note_invalid_value(double v);

  // ---- control (any thread)
  bool flush(std::chrono::milliseconds timeout);
  ClientStats stats() const;
  std::string last_error() const;
  uint64_t producer_id() const { return producer_id_; }

 private:
  struct BucketKey {
    uint32_t ref;
    int64_t time;
    bool operator==(const BucketKey&) const = default;
  };
  struct BucketKeyHash {
    size_t operator()(const BucketKey& k) const {
      return std::hash<uint64_t>()((static_cast<uint64_t>(k.time) << 32) ^ k.ref);
    }
  };

  ThreadState* local_slow();
  Slot* make_slot(ThreadState* ts, uint32_t ref);
  [[gnu::noinline]] Slot* lookup_slow(ThreadState* ts, uint64_t hash, Slot* found, Kind kind,
                                      std::string_view metric, const TagSpan& tags);
  void set_error(std::string msg);
  void wake();

  // ---- flush thread
  void run();
  void publish();
  void sample(int64_t now_ms);
  void sample_slot(Slot& slot, int64_t bucket);
  void build_batch(int64_t now_ms);
  int64_t clock_ms() const { return clock_->now_ms(); }

  const ClientOptions options_;
  const Clock* clock_;
  const uint64_t id_;  // unique per process lifetime, keys the thread-local cache
  const uint64_t producer_id_;

  // The calling thread's state for the client it last used: one compare on the hot path.
  // initial-exec: a plain %fs-relative load even inside the shared library.
  static thread_local uint64_t t_client_id_ __attribute__((tls_model("initial-exec")));
  static thread_local ThreadState* t_state_ __attribute__((tls_model("initial-exec")));

  // Series registry.
  mutable Mutex registry_mu_;
  std::unordered_map<std::string, SeriesInfo*> by_key_ GUARDED_BY(registry_mu_);
  std::unordered_map<std::string, Kind> metric_kinds_ GUARDED_BY(registry_mu_);
  std::vector<std::unique_ptr<SeriesInfo>> series_ GUARDED_BY(registry_mu_);  // index = ref

  Mutex threads_mu_;
  std::vector<std::shared_ptr<ThreadState>> threads_ GUARDED_BY(threads_mu_);

  std::atomic<uint64_t> invalid_values_{0};
  std::atomic<bool> nonfinite_noted_{false};
  int wake_fds_[2] = {-1, -1};  // a pipe: client threads write a byte to wake the flush thread

  // Exchanged between client threads and the flush thread.
  mutable Mutex mu_;
  std::condition_variable cv_;
  uint64_t flush_requested_ GUARDED_BY(mu_) = 0;
  uint64_t flush_served_ GUARDED_BY(mu_) = 0;  // requests whose data is in a batch
  bool stopping_ GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point close_deadline_ GUARDED_BY(mu_);
  ClientStats published_ GUARDED_BY(mu_);  // the sender's counters, refreshed per loop
  std::string last_error_ GUARDED_BY(mu_);
  uint64_t transport_exceptions_ GUARDED_BY(mu_) = 0;

  // Flush thread only.
  uint64_t served_local_ = 0;
  int64_t last_sample_ms_ = 0;
  int64_t next_flush_ms_ = 0;
  std::unordered_map<BucketKey, double, BucketKeyHash> counters_;
  std::unordered_map<BucketKey, GaugeAgg, BucketKeyHash> gauges_;
  std::unordered_map<BucketKey, Sketch, BucketKeyHash> distributions_;
  std::vector<Sketch::KeyCount> pos_scratch_, neg_scratch_;
  std::unique_ptr<Sender> sender_;

  std::thread thread_;
};

}  // namespace tally::detail
