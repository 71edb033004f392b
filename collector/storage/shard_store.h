// ShardStore: one shard's SQLite file (data_dir/shard-NN.sqlite): its series and, per
// resolution, its stored buckets keyed (series, bucket time).
//
// This is the narrow seam between aggregation and the on-disk layout (docs/format/storage.md):
// the shard worker calls the writer methods, queries use a ShardReader. Writes merge into what is
// stored ("stored (+) new"), so partial buckets flushed at shutdown and late points both land
// exactly. Thread-safety: the writer methods belong to the one shard thread; each ShardReader has
// its own connection and belongs to one thread at a time; SQLite's WAL mode lets readers run
// beside the writer on a consistent snapshot.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aggregate/bucket.h"
#include "aggregate/catalog.h"
#include "storage/sqlite.h"
#include "tally/common/time_bucket.h"

namespace tally::collector {

struct StoredBucket {
  int64_t time;
  BucketAgg agg;
};

class ShardReader {
 public:
  // Pins a read snapshot; reads until end_snapshot() see one consistent state.
  Status begin_snapshot();
  void end_snapshot();
  // Appends the stored buckets of a series at resolution index res with from <= time < to,
  // in time order.
  Status read(uint64_t series_id, Kind kind, size_t res, int64_t from, int64_t to, std::vector<StoredBucket>* out);

 private:
  friend class ShardStore;
  std::unique_ptr<Db> db_;
  Stmt begin_, end_, pin_;
  std::vector<Stmt> read_;  // per resolution
};

class ShardStore {
 public:
  static Result<std::unique_ptr<ShardStore>> open(const std::string& path, const std::vector<Resolution>& resolutions);

  const std::string& path() const { return path_; }

  // Every series stored in this shard (start-up).
  Result<std::vector<SeriesInfo>> load_series();

  // --- writer (shard thread) ---
  Status begin();
  Status commit();
  void rollback();
  Status put_series(const SeriesInfo& s);
  // stored (+) agg. When merged_out is set it receives the merged bucket (for corrections).
  Status merge_bucket(uint64_t series_id, Kind kind, size_t res, int64_t time, const BucketAgg& agg,
                      uint64_t lsn, BucketAgg* merged_out);
  // Retention: drops buckets of a series older than `before` at resolution res.
  Status delete_before(uint64_t series_id, size_t res, int64_t before, int64_t* deleted);
  // The LSN recorded with the stored bucket (series, res, time): every logged point up to it
  // that belongs to that bucket is in it. 0 when nothing is stored there.
  Result<uint64_t> stored_lsn(uint64_t series_id, size_t res, int64_t time);
  Result<int64_t> get_meta(std::string_view key, int64_t fallback);
  Status set_meta(std::string_view key, int64_t value);

  // --- readers (any thread): a pool of connections ---
  Result<std::unique_ptr<ShardReader>> acquire_reader();
  void release_reader(std::unique_ptr<ShardReader> r);

 private:
  ShardStore(std::string path, size_t nres) : path_(std::move(path)), nres_(nres) {}
  Status prepare();
  Status read_row(size_t res, uint64_t series_id, int64_t time, Kind kind, BucketAgg* out, bool* found);

  std::string path_;
  size_t nres_;
  std::unique_ptr<Db> db_;
  Stmt begin_, commit_, rollback_, put_series_, get_meta_, set_meta_;
  std::vector<Stmt> upsert_, select_, delete_, lsn_;
  std::mutex readers_mu_;
  std::vector<std::unique_ptr<ShardReader>> readers_;  // GUARDED_BY(readers_mu_)
};

}  // namespace tally::collector
