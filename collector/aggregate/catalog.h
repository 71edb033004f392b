// SeriesCatalog: every series the collector holds in memory, by id, by canonical-key hash and by
// metric.
//
// Series are created by the ingest paths (ZeroMQ batches, StatsD); a series' shard is its key
// hash modulo the shard count. The catalog answers the query planner's "which series of metric M
// match these filters" in memory, and rebuilds itself at start from the shards' series tables.
//
// Memory (docs/BENCHMARKS.md, bench_memory): a series is a 40-byte SeriesInfo record (plus 5
// bytes beside it: when it last had a point and its state); metric names, tag keys and tag values
// are interned once each, reference-counted, and a series' tags are (key id, value id) pairs in
// one flat array. Records, strings and tag pairs live in blocks that never move; a block whose
// every entry is freed is returned to the allocator.
//
// Idle-series expiry (docs/ARCHITECTURE.md, "Idle series"): a series with no point for the
// expiry leaves memory in steps, each on the thread that owns what it changes:
//   1. unlink_idle() (the ingest thread's sweep): LIVE -> UNLINKED. It stops counting against the
//      cardinality limits and a lookup no longer returns it; the sweep then forgets the producers'
//      refs to it and hands it to its shard behind every point already routed to it.
//   2. try_release() (its shard, once none of its buckets is open): UNLINKED -> RELEASED; the
//      shard writes it as expired in its series table and, once that is committed,
//      mark_durable().
//   3. reclaim() (the sweep): a durable RELEASED series -> DETACHED (out of every index), and a
//      DETACHED one whose detach no reader can have seen -> freed (strings, tag pairs, slot,
//      record).
// At any step before it is freed, a point with the same key brings the very record back (LIVE);
// after it, the key is looked up in storage (set_stored_lookup) and comes back with its old id, so
// its history joins.
//
// Thread-safety: all methods are thread-safe (one shared_mutex). SeriesInfo's accessors take no
// lock: what they read was written before the record was published under the mutex and does not
// change until the record is freed. A reader that keeps SeriesInfo pointers beyond one call (a
// query) holds a Pin for as long as it uses them: reclaim() frees a record only after every Pin
// taken before it left the indexes is gone (an epoch scheme: two reader counters).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tally/common/mutex.h"
#include "tally/common/series_key.h"
#include "tally/common/status.h"

namespace tally::collector {

class SeriesCatalog;

// A series as storage keeps it (load at start-up, restore()) and as put_series writes it.
struct SeriesDef {
  uint64_t id = 0;
  uint64_t hash = 0;  // series_hash(canonical key)
  uint32_t shard = 0;
  Kind kind = Kind::kCounter;
  std::string metric;
  Tags tags;  // canonical
};

// One tag of a catalog series, viewing interned strings.
struct TagRef {
  std::string_view key;
  std::string_view value;
  operator Tag() const { return {std::string(key), std::string(value)}; }
};

// A catalog series' canonical tags: a small range of TagRef.
class TagsView {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = TagRef;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = TagRef;
    iterator() = default;
    iterator(const SeriesCatalog* c, const uint32_t* p) : c_(c), p_(p) {}
    TagRef operator*() const;
    iterator& operator++() {
      p_ += 2;
      return *this;
    }
    iterator operator++(int) {
      auto t = *this;
      p_ += 2;
      return t;
    }
    bool operator==(const iterator& o) const { return p_ == o.p_; }

   private:
    const SeriesCatalog* c_ = nullptr;
    const uint32_t* p_ = nullptr;  // (key id, value id) pairs
  };
  TagsView(const SeriesCatalog* c, const uint32_t* pairs, size_t n) : c_(c), pairs_(pairs), n_(n) {}
  iterator begin() const { return {c_, pairs_}; }
  iterator end() const { return {c_, pairs_ + 2 * n_}; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  TagRef operator[](size_t i) const { return *iterator(c_, pairs_ + 2 * i); }
  Tags materialize() const { return Tags(begin(), end()); }
  bool operator==(const Tags& t) const;

 private:
  const SeriesCatalog* c_;
  const uint32_t* pairs_;
  size_t n_;
};

// A series the catalog owns. 40 bytes; only the catalog creates them.
struct SeriesInfo {
  uint64_t id = 0;    // global, assigned by the catalog, stored in the shard's series table
  uint64_t hash = 0;  // series_hash(canonical key)
  uint32_t shard = 0;
  Kind kind = Kind::kCounter;
  uint32_t slot =
      0;  // dense index among the series of the same shard and kind (the shard's arrays)

  std::string_view metric() const;
  TagsView tags() const;
  SeriesDef def() const;  // a copy with owned strings (storage, tests)

 private:
  friend class SeriesCatalog;
  const SeriesCatalog* owner() const;
  uint32_t metric_ = 0;   // string id
  uint32_t tags_at_ = 0;  // index of the first (key, value) pair
  uint32_t ntags_ = 0;
};

struct MetricSummary {
  std::string name;
  Kind kind;
  size_t series;  // live series (a metric whose series all expired is listed with 0)
};

// Bounds on creating a series (CardinalityGuard): a new series is refused once its metric holds
// max_per_metric series or the catalog max_total. 0 = no bound.
struct CreateBounds {
  size_t max_per_metric = 0;
  size_t max_total = 0;
};
enum class CreateRefusal { kNone, kPerMetric, kTotal };

// What GET /api/cardinality shows of the catalog, computed in one pass.
struct CatalogCardinality {
  struct TagKey {
    std::string key;
    size_t values;  // distinct values over every series
    size_t series;  // series carrying the key
  };
  size_t series = 0;
  size_t metrics = 0;
  std::vector<MetricSummary> top_metrics;  // by series, largest first
  std::vector<TagKey> top_tag_keys;        // by distinct values, largest first
};

class SeriesCatalog {
 public:
  explicit SeriesCatalog(uint32_t shard_count);
  ~SeriesCatalog();
  SeriesCatalog(const SeriesCatalog&) = delete;
  SeriesCatalog& operator=(const SeriesCatalog&) = delete;

  uint32_t shard_count() const { return shard_count_; }
  uint32_t shard_of(uint64_t hash) const { return static_cast<uint32_t>(hash % shard_count_); }

  // Keeps every SeriesInfo this catalog handed out valid while it lives (see the file comment).
  class Pin {
   public:
    Pin() = default;
    Pin(Pin&& o) noexcept : c_(o.c_), idx_(o.idx_) { o.c_ = nullptr; }
    Pin& operator=(Pin&& o) noexcept;
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin() { release(); }

   private:
    friend class SeriesCatalog;
    Pin(const SeriesCatalog* c, uint32_t idx) : c_(c), idx_(idx) {}
    void release();
    const SeriesCatalog* c_ = nullptr;
    uint32_t idx_ = 0;
  };
  Pin pin() const;

  // The existing series for metric+tags (tags canonical), or a new one; invalid_argument when the
  // metric already exists with another kind. *created tells whether the shard must learn it: a
  // new series, or one that had expired and comes back (same id).
  Result<const SeriesInfo*> get_or_create(std::string_view metric, const Tags& tags, Kind kind,
                                          bool* created);
  // As above, but a series that is not live yet is created only within `bounds` (checked under
  // the write lock, so concurrent callers cannot pass them together); beyond them the answer is
  // nullptr and *refused says which bound.
  Result<const SeriesInfo*> get_or_create(std::string_view metric, const Tags& tags, Kind kind,
                                          const CreateBounds& bounds, bool* created,
                                          CreateRefusal* refused);
  // Looks a live series up without creating it (and notes a point for it); kind mismatch is an
  // error as above.
  Result<const SeriesInfo*> find(std::string_view metric, const Tags& tags, Kind kind) const;
  // Checks that get_or_create would succeed, without creating anything.
  Status check(std::string_view metric, Kind kind) const;

  // Restores a series loaded from storage (start-up, or a query's own catalog of stored series);
  // a known id is left as it is.
  [[nodiscard]] Status restore(const SeriesDef& def);
  // Start-up: `metric` has series that expired and are in storage only; ids up to max_id are
  // taken in storage.
  void restore_stored_metric(std::string_view metric, Kind kind);
  void reserve_ids(uint64_t max_id);
  // The id of the expired series metric+tags in storage (its shard's series table), if any. Set
  // before the ingest threads run; called without the catalog's lock.
  using StoredLookup = std::function<std::optional<uint64_t>(
      uint32_t shard, std::string_view metric, const Tags& tags, Kind kind)>;
  void set_stored_lookup(StoredLookup f) { stored_lookup_ = std::move(f); }
  // True when some series of `metric` expired and may be in storage only (a query reads them).
  bool has_stored(std::string_view metric) const;

  // A series in memory by id (live or on its way out), or nullptr.
  const SeriesInfo* by_id(uint64_t id) const;
  // Every series of the metric in memory, live or on its way out (a reader holds a Pin).
  std::vector<const SeriesInfo*> series_of(std::string_view metric) const;
  std::vector<MetricSummary> metrics() const;
  std::optional<Kind> kind_of(std::string_view metric) const;
  size_t size() const;  // live series
  // The `top` largest metrics and tag keys (one pass over every live series, under the read
  // lock).
  CatalogCardinality cardinality(size_t top) const;
  // Distinct interned strings (metric names, tag keys and values); for tests and benchmarks.
  size_t interned_strings() const;
  // What the catalog holds in memory, by part (/metrics, tally_catalog_bytes): the bytes of its
  // blocks and the capacity of its indexes and lists, so a part that keeps growing shows.
  struct Memory {
    size_t records = 0;    // record blocks
    size_t strings = 0;    // interned string bytes blocks, their offset and count blocks
    size_t tag_pairs = 0;  // tag pair blocks
    size_t indexes = 0;    // the hash index, the per-metric id lists, the free slot lists
    size_t expiry = 0;     // the released, detached and durable id sets
    size_t metrics = 0;    // metric names known (also those whose series all expired)
  };
  Memory memory() const;

  // --- expiry (see the file comment) ---
  // Notes a point for s at now_s (any thread; no lock).
  static void touch(const SeriesInfo* s, int64_t now_s);
  static int64_t last_point_s(const SeriesInfo* s);
  bool is_live(const SeriesInfo* s) const;
  // Step 1, the sweep: every live series whose last point is before before_s is unlinked.
  std::vector<const SeriesInfo*> unlink_idle(int64_t before_s);
  // Step 2, the series' shard: false when it came back meanwhile (it stays).
  bool try_release(const SeriesInfo* s);
  void mark_durable(const std::vector<uint64_t>& ids);
  // Step 3, the sweep; returns how many records were freed. take_durable(): the ids made durable
  // since the last call (the sweep deletes the producers' saved refs to them).
  size_t reclaim();
  std::vector<uint64_t> take_durable();
  // Records in memory that are not live (on their way out), and series that came back after
  // being unlinked (since start); for tests and /metrics.
  size_t expiring() const;
  uint64_t revived() const;

 private:
  friend struct SeriesInfo;
  friend class TagsView;

  enum State : uint8_t { kFree = 0, kLive = 1, kUnlinked = 2, kReleased = 3, kDetached = 4 };

  template <typename T, size_t kPerBlock>
  class Blocks;
  template <typename T, size_t kPerBlock>
  class Arena;
  class StringPool;
  // Open addressing over uint32 values (0 = empty); hashing and equality come from the caller.
  class FlatIndex;
  struct MetricEntry {
    Kind kind;
    std::vector<uint32_t> ids;  // every record in memory (any state but detached)
    size_t live = 0;
    bool stored = false;  // some series expired: storage may hold series memory does not
  };

  std::string_view string_at(uint32_t id) const;
  // The record of metric+tags in the hash index (any state), under mu_.
  SeriesInfo* lookup(uint64_t hash, std::string_view metric, const Tags& tags) const
      REQUIRES_SHARED(mu_);
  Result<const SeriesInfo*> insert(uint64_t id, uint64_t hash, std::string_view metric,
                                   const Tags& tags, Kind kind) REQUIRES(mu_);
  SeriesInfo* record(uint64_t id) const;  // any state but free
  static State state_of(const SeriesInfo* r);
  static void set_state(const SeriesInfo* r, State s);
  void relink(SeriesInfo* r) REQUIRES(mu_);  // back to live
  void free_record(SeriesInfo* r) REQUIRES(mu_);

  const uint32_t shard_count_;
  mutable SharedMutex mu_;
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  size_t size_ GUARDED_BY(mu_) = 0;
  std::unique_ptr<StringPool> strings_;                // writes GUARDED_BY(mu_)
  std::unique_ptr<Arena<uint32_t, 65536>> tag_pairs_;  // writes GUARDED_BY(mu_)
  void** record_blocks_ = nullptr;                     // GUARDED_BY(mu_) (see record())
  std::unique_ptr<FlatIndex> by_hash_ PT_GUARDED_BY(mu_);
  std::map<std::string, MetricEntry, std::less<>> by_metric_ GUARDED_BY(mu_);
  std::vector<std::array<uint32_t, 3>> next_slot_ GUARDED_BY(mu_);  // per shard, per kind
  std::vector<std::array<std::vector<uint32_t>, 3>> free_slots_ GUARDED_BY(mu_);
  StoredLookup stored_lookup_;
  bool any_stored_ GUARDED_BY(mu_) = false;
  uint64_t detaches_ GUARDED_BY(mu_) = 0;  // bumped when a record leaves
  size_t expiring_ GUARDED_BY(mu_) = 0;
  uint64_t revived_ GUARDED_BY(mu_) = 0;
  std::unordered_set<uint32_t> durable_ GUARDED_BY(mu_);             // RELEASED and durable
  std::unordered_map<uint32_t, uint64_t> detached_ GUARDED_BY(mu_);  // id -> epoch
  std::vector<uint64_t> durable_ids_ GUARDED_BY(mu_);                // since take_durable()
  mutable std::atomic<uint64_t> epoch_{2};
  mutable std::array<std::atomic<uint64_t>, 2> readers_{};
};

}  // namespace tally::collector
