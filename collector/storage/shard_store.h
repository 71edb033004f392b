// ShardStore: one shard's SQLite file (data_dir/shard-NN.sqlite): its series and, per
// resolution, its stored buckets.
//
// This is the narrow seam between aggregation and the on-disk layout (docs/format/storage.md,
// docs/format/chunk.md): the shard worker calls the writer methods, queries use a ShardReader.
// Writes merge into what is stored ("stored (+) new"), so partial buckets flushed at shutdown and
// late points both land exactly. Buckets land as hot rows; compact() later encodes closed windows
// into per-series segments and chunks, which changes where a bucket lives but never what any read
// returns. Thread-safety: the writer methods belong to the one shard thread; each ShardReader has
// its own connection and belongs to one thread at a time; SQLite's WAL mode lets readers run
// beside the writer on a consistent snapshot.
#pragma once

#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "aggregate/bucket.h"
#include "aggregate/catalog.h"
#include "deadline.h"
#include "storage/sqlite.h"
#include "tally/common/mutex.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

class PointReader;
class PointWriter;

struct StoredBucket {
  int64_t time;
  BucketAgg agg;
};

struct SeriesRef {
  uint64_t id;
  Kind kind;
};

// A query's step buckets: [from, to) in steps of `step` (from and to multiples of step, step a
// multiple of the resolution read). Row r of a grid array is out[r * steps() .. (r + 1) * steps()).
struct StepGrid {
  int64_t from = 0, to = 0, step = 1;
  int64_t since =
      std::numeric_limits<int64_t>::min();  // buckets before this are not read (retention)
  size_t steps() const { return static_cast<size_t>((to - from) / step); }
};

enum class StorageLayout {
  kChunks,     // hot rows, segments and chunks (the format)
  kPlainRows,  // one row per bucket: the first format, kept as a baseline and test reference
};

struct ShardStoreOptions {
  StorageLayout layout = StorageLayout::kChunks;
  // synchronous=FULL: every commit is on disk when commit() returns (the collector sets it unless
  // fsync = "never", so a checkpoint is durable before the log drops what it covers).
  bool sync_commits = false;
};

struct CompactStats {
  uint64_t hot_rows = 0;  // hot rows encoded into segments
  uint64_t segments = 0;  // segments written
  uint64_t chunks = 0;    // chunks written (each from the segments of its window)
};

class ShardReader {
 public:
  ShardReader();
  ~ShardReader();
  // Pins a read snapshot; reads until end_snapshot() see one consistent state.
  Status begin_snapshot();
  void end_snapshot();
  // Appends the stored buckets of a series at resolution index res with from <= time < to,
  // in time order.
  Status read(uint64_t series_id, Kind kind, size_t res, int64_t from, int64_t to,
              std::vector<StoredBucket>* out);
  // The same for many series at once: out->at(i) belongs to series[i]. shard_series (how many
  // series the shard holds) picks between point lookups and one scan per window.
  Status read(const std::vector<SeriesRef>& series, size_t res, int64_t from, int64_t to,
              size_t shard_series, std::vector<std::vector<StoredBucket>>* out);
  // Counters only: adds the sum of every stored bucket of series[i] in [grid.from, grid.to) to
  // out[rows[i] * grid.steps() + step index]. Decodes chunks straight into the grid: no BucketAgg.
  Status add_counter_sums(const std::vector<SeriesRef>& series, const std::vector<uint32_t>& rows,
                          size_t res, const StepGrid& grid, size_t shard_series, double* out);
  // The start of the earliest stored bucket at resolution index res (or of the earliest segment
  // or chunk window holding one); nullopt when nothing is stored there.
  Result<std::optional<int64_t>> earliest(size_t res);
  // The reads above give up once this passes (nullptr: never); the caller keeps it alive.
  void set_deadline(const Deadline* d);

  // Expired series (catalog.h, "Idle-series expiry"): the stored id of metric+tags (canonical)
  // if it expired; outside a snapshot.
  Result<std::optional<uint64_t>> find_expired(std::string_view metric, Kind kind,
                                               const Tags& tags);
  // Appends every expired series of `metric` whose last point came at or after since_s.
  Status expired_series(std::string_view metric, int64_t since_s, std::vector<SeriesDef>* out);

 private:
  friend class ShardStore;
  std::unique_ptr<Db> db_;
  Stmt begin_, end_, find_expired_, expired_series_;
  std::unique_ptr<PointReader> points_;
};

class ShardStore {
 public:
  static Result<std::unique_ptr<ShardStore>> open(const std::string& path,
                                                  const std::vector<Resolution>& resolutions,
                                                  ShardStoreOptions options = {});
  ~ShardStore();

  const std::string& path() const { return path_; }
  StorageLayout layout() const { return options_.layout; }
  // open() converted the file from plain rows to chunks (a file an older collector wrote).
  bool converted_rows() const { return converted_rows_; }

  // Every series of this shard that has not expired (start-up): what the catalog holds in memory.
  Result<std::vector<SeriesDef>> load_series();
  // Start-up: the largest series id stored (expired ones too), 0 when none; every metric with an
  // expired series (and its kind); one series by id, expired or not.
  Result<uint64_t> max_series_id();
  Result<std::vector<std::pair<std::string, Kind>>> expired_metrics();
  Result<std::optional<SeriesDef>> load_series_by_id(uint64_t id);

  // --- writer (shard thread) ---
  Status begin();
  Status commit();
  void rollback();
  Status put_series(const SeriesDef& s);
  // The series left memory at at_s; its last point came at last_s. It stays expired in storage
  // (also when it comes back: its record in memory then says it is live).
  Status mark_expired(uint64_t id, int64_t at_s, int64_t last_s);
  // stored (+) agg. When merged_out is set it receives the merged bucket (for corrections).
  // `time` is the bucket's start; lsn the log position the write includes (see stored_lsn).
  // Inside begin()/commit() writes may be gathered and land at commit(); outside, it commits.
  Status merge_bucket(uint64_t series_id, Kind kind, size_t res, int64_t time, const BucketAgg& agg,
                      uint64_t lsn, BucketAgg* merged_out);
  // Retention: drops a series' buckets older than `before` at resolution res. Encoded buckets go
  // a whole segment or chunk at a time, once all of it is older than `before`.
  Status delete_before(uint64_t series_id, size_t res, int64_t before, int64_t* deleted);
  // The same for every series of the shard at once (range deletes: use this one).
  Status delete_all_before(size_t res, int64_t before, int64_t* deleted);
  // The log position of the bucket (series, res, time): every log record at or below it that
  // touched this bucket is stored. A hot row keeps its own; a segment or chunk keeps the largest of
  // what went into it, valid for each of its buckets because compact() only encodes windows that
  // were final and written by the flush before it. 0 when nothing is stored there.
  Result<uint64_t> stored_lsn(uint64_t series_id, size_t res, int64_t time);
  // Encodes every window that ends at or before `watermark` (all its buckets final and written)
  // into segments, then chunks; one transaction per window. Call it outside begin()/commit(), after
  // a successful flush; a no-op for kPlainRows and when nothing is due.
  // `between`: see PointWriter::compact.
  Status compact(int64_t watermark, CompactStats* stats = nullptr,
                 const std::function<void()>& between = {});
  // Start-up, before the shard runs: deletes every stored bucket of a step (seconds) the
  // configured retention list no longer has. *freed_bytes: how much of the file became free
  // pages, which later writes reuse.
  Status drop_step(int64_t step_s, uint64_t* freed_bytes);
  Result<int64_t> get_meta(std::string_view key, int64_t fallback);
  Status set_meta(std::string_view key, int64_t value);

  // --- readers (any thread): a pool of connections ---
  Result<std::unique_ptr<ShardReader>> acquire_reader();
  void release_reader(std::unique_ptr<ShardReader> r);
  // Closes the pooled connections (their page caches go with them). For benchmarks.
  void drop_readers();

 private:
  ShardStore(std::string path, std::vector<Resolution> resolutions, ShardStoreOptions options);
  Status prepare();

  std::string path_;
  std::vector<Resolution> resolutions_;
  ShardStoreOptions options_;
  bool converted_rows_ = false;
  std::unique_ptr<Db> db_;
  std::unique_ptr<PointWriter> points_;
  bool in_transaction_ = false;
  Stmt begin_, commit_, rollback_, put_series_, mark_expired_, get_meta_, set_meta_;
  Mutex readers_mu_;
  std::vector<std::unique_ptr<ShardReader>> readers_ GUARDED_BY(readers_mu_);
};

}  // namespace tally::collector
