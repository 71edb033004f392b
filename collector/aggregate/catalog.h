// SeriesCatalog: every series the collector knows, by id, by canonical-key hash and by metric.
//
// Series are created by the ingest paths (ZeroMQ batches, StatsD) and never change; a series'
// shard is its key hash modulo the shard count. The catalog answers the query planner's
// "which series of metric M match these filters" in memory, and rebuilds itself at start from
// the shards' series tables. Thread-safety: all methods are thread-safe (one shared_mutex);
// returned SeriesInfo pointers stay valid for the catalog's lifetime (series are never freed
// while the process runs).
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tally/common/series_key.h"
#include "tally/common/status.h"

namespace tally::collector {

struct SeriesInfo {
  uint64_t id = 0;     // global, assigned by the catalog, stored in the shard's series table
  uint64_t hash = 0;   // series_hash(canonical key)
  uint32_t shard = 0;
  Kind kind = Kind::kCounter;
  std::string metric;
  Tags tags;           // canonical
};

struct MetricSummary {
  std::string name;
  Kind kind;
  size_t series;
};

class SeriesCatalog {
 public:
  explicit SeriesCatalog(uint32_t shard_count) : shard_count_(shard_count) {}

  uint32_t shard_count() const { return shard_count_; }
  uint32_t shard_of(uint64_t hash) const { return static_cast<uint32_t>(hash % shard_count_); }

  // The existing series for metric+tags (tags canonical), or a new one; invalid_argument when the
  // metric already exists with another kind. *created tells whether it is new.
  Result<const SeriesInfo*> get_or_create(const std::string& metric, const Tags& tags, Kind kind,
                                          bool* created);
  // Looks a series up without creating it; kind mismatch is an error as above.
  Result<const SeriesInfo*> find(const std::string& metric, const Tags& tags, Kind kind) const;
  // Checks that get_or_create would succeed, without creating anything.
  Status check(const std::string& metric, Kind kind) const;

  // Restores a series loaded from storage (start-up).
  void restore(SeriesInfo info);

  const SeriesInfo* by_id(uint64_t id) const;
  std::vector<const SeriesInfo*> series_of(const std::string& metric) const;
  std::vector<MetricSummary> metrics() const;
  std::optional<Kind> kind_of(const std::string& metric) const;
  size_t size() const;

 private:
  const uint32_t shard_count_;
  mutable std::shared_mutex mu_;
  uint64_t next_id_ = 1;                                                       // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, std::unique_ptr<SeriesInfo>> by_id_;            // GUARDED_BY(mu_)
  std::unordered_multimap<uint64_t, const SeriesInfo*> by_hash_;               // GUARDED_BY(mu_)
  struct MetricEntry {
    Kind kind;
    std::vector<const SeriesInfo*> series;
  };
  std::map<std::string, MetricEntry, std::less<>> by_metric_;                  // GUARDED_BY(mu_)
};

}  // namespace tally::collector
