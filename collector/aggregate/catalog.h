// SeriesCatalog: every series the collector knows, by id, by canonical-key hash and by metric.
//
// Series are created by the ingest paths (ZeroMQ batches, StatsD) and never change; a series'
// shard is its key hash modulo the shard count. The catalog answers the query planner's
// "which series of metric M match these filters" in memory, and rebuilds itself at start from
// the shards' series tables.
//
// Memory (docs/BENCHMARKS.md, bench_memory): a series is a 40-byte SeriesInfo record; metric
// names, tag keys and tag values are interned once each in an append-only pool, and a series'
// tags are (key id, value id) pairs in one flat array. Records, strings and tag pairs live in
// blocks that never move, so a SeriesInfo pointer and what its metric() / tags() return stay
// valid for the catalog's lifetime (series are never freed while the process runs).
//
// Thread-safety: all methods are thread-safe (one shared_mutex). SeriesInfo's accessors take no
// lock: what they read was written before the record was published under the mutex and never
// changes after.
#pragma once

#include <array>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
  size_t series;
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

  // The existing series for metric+tags (tags canonical), or a new one; invalid_argument when the
  // metric already exists with another kind. *created tells whether it is new.
  Result<const SeriesInfo*> get_or_create(std::string_view metric, const Tags& tags, Kind kind,
                                          bool* created);
  // As above, but a series that does not exist yet is created only within `bounds` (checked
  // under the write lock, so concurrent callers cannot pass them together); beyond them the
  // answer is nullptr and *refused says which bound.
  Result<const SeriesInfo*> get_or_create(std::string_view metric, const Tags& tags, Kind kind,
                                          const CreateBounds& bounds, bool* created,
                                          CreateRefusal* refused);
  // Looks a series up without creating it; kind mismatch is an error as above.
  Result<const SeriesInfo*> find(std::string_view metric, const Tags& tags, Kind kind) const;
  // Checks that get_or_create would succeed, without creating anything.
  Status check(std::string_view metric, Kind kind) const;

  // Restores a series loaded from storage (start-up); a known id is left as it is.
  [[nodiscard]] Status restore(const SeriesDef& def);

  const SeriesInfo* by_id(uint64_t id) const;
  std::vector<const SeriesInfo*> series_of(std::string_view metric) const;
  std::vector<MetricSummary> metrics() const;
  std::optional<Kind> kind_of(std::string_view metric) const;
  size_t size() const;
  // The `top` largest metrics and tag keys (one pass over every series, under the read lock).
  CatalogCardinality cardinality(size_t top) const;
  // Distinct interned strings (metric names, tag keys and values); for tests and benchmarks.
  size_t interned_strings() const;

 private:
  friend struct SeriesInfo;
  friend class TagsView;

  // Append-only storage in fixed blocks reached through a directory allocated once (calloc'd:
  // untouched directory pages cost nothing), so nothing ever moves and readers need no lock.
  template <typename T, size_t kPerBlock>
  class Blocks;
  class StringPool;
  // Open addressing over uint32 values (0 = empty); hashing and equality come from the caller.
  class FlatIndex;

  std::string_view string_at(uint32_t id) const;
  const SeriesInfo* lookup(uint64_t hash, std::string_view metric, const Tags& tags) const
      REQUIRES_SHARED(mu_);
  Result<const SeriesInfo*> insert(uint64_t id, uint64_t hash, std::string_view metric,
                                   const Tags& tags, Kind kind) REQUIRES(mu_);
  const SeriesInfo* record(uint64_t id) const;

  const uint32_t shard_count_;
  mutable SharedMutex mu_;
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  size_t size_ GUARDED_BY(mu_) = 0;
  std::unique_ptr<StringPool> strings_;                 // writes GUARDED_BY(mu_)
  std::unique_ptr<Blocks<uint32_t, 65536>> tag_pairs_;  // writes GUARDED_BY(mu_)
  uint64_t tag_pairs_used_ GUARDED_BY(mu_) = 0;
  void** record_blocks_ = nullptr;  // GUARDED_BY(mu_) (see record())
  std::unique_ptr<FlatIndex> by_hash_ GUARDED_BY(mu_);
  struct MetricEntry {
    Kind kind;
    std::vector<uint32_t> ids;
  };
  std::map<std::string, MetricEntry, std::less<>> by_metric_ GUARDED_BY(mu_);
  std::vector<std::array<uint32_t, 3>> next_slot_;  // per shard, per kind; GUARDED_BY(mu_)
};

}  // namespace tally::collector
