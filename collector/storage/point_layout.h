// How a shard file lays out its points: the seam between ShardStore (series, meta, transactions,
// reader pool) and the point tables. Private to storage/.
//
// ChunkLayout (chunk_layout.h, chunk_writer/reader/migration.cpp) is the format: hot rows, segments
// and chunks (chunk_format.h, docs/format/chunk.md). RowLayout (row_layout.cpp) is the first
// format, one row per bucket; it is kept as the reference the chunk layout is tested against and as
// the benchmarks' baseline. Thread-safety: a PointWriter belongs to the shard thread, a PointReader
// to one reader.
#pragma once

#include <functional>

#include <memory>
#include <optional>
#include <vector>

#include "deadline.h"
#include "storage/shard_store.h"
#include "storage/sqlite.h"

namespace tally::collector {

class PointWriter {
 public:
  virtual ~PointWriter() = default;
  virtual Status merge(uint64_t series_id, Kind kind, size_t res, int64_t time,
                       const BucketAgg& agg, uint64_t lsn, BucketAgg* merged_out) = 0;
  virtual Status delete_before(uint64_t series_id, size_t res, int64_t before,
                               int64_t* deleted) = 0;
  virtual Status delete_all_before(size_t res, int64_t before, int64_t* deleted) = 0;
  virtual Result<uint64_t> stored_lsn(uint64_t series_id, size_t res, int64_t time) = 0;
  // Runs its own transactions; called outside one. `between`, when set, is called every few
  // thousand series of a long encoding pass (inside its transaction): the shard applies the work
  // that arrived meanwhile, in memory, so minutes of buckets being encoded do not hold up ingest.
  virtual Status compact(int64_t watermark, CompactStats* stats,
                         const std::function<void()>& between) = 0;
  // Writes what merge() gathered in the transaction; called just before COMMIT.
  virtual Status before_commit() { return Status::ok(); }
  // Forgets it; called after ROLLBACK.
  virtual void after_rollback() {}
};

class PointReader {
 public:
  virtual ~PointReader() = default;
  // The deadline of the query reading (nullptr: none); reads give up with Status::unavailable
  // once it has passed, checked every 256 stored rows or chunks.
  void set_deadline(const Deadline* d) { deadline_ = d; }
  // The first read of a snapshot's transaction (it pins the snapshot).
  virtual Status pin() = 0;
  virtual Status read(const std::vector<SeriesRef>& series, size_t res, int64_t from, int64_t to,
                      size_t shard_series, std::vector<std::vector<StoredBucket>>* out) = 0;
  virtual Status add_counter_sums(const std::vector<SeriesRef>& series,
                                  const std::vector<uint32_t>& rows, size_t res,
                                  const StepGrid& grid, size_t shard_series, double* out) = 0;
  // The start of the earliest stored bucket at resolution index res, or of the earliest segment or
  // chunk window holding one (a bound that may be up to one window early); nullopt when none.
  virtual Result<std::optional<int64_t>> earliest(size_t res) = 0;

 protected:
  Status past_deadline(uint32_t* n) const {
    return deadline_ && deadline_->passed_every(n) ? Status::unavailable(kPastDeadline)
                                                   : Status::ok();
  }

 private:
  const Deadline* deadline_ = nullptr;
};

// Both create their tables if missing.
Result<std::unique_ptr<PointWriter>> make_chunk_writer(Db& db,
                                                       const std::vector<Resolution>& resolutions);
Result<std::unique_ptr<PointReader>> make_chunk_reader(Db& db,
                                                       const std::vector<Resolution>& resolutions);
Result<std::unique_ptr<PointWriter>> make_row_writer(Db& db,
                                                     const std::vector<Resolution>& resolutions);
Result<std::unique_ptr<PointReader>> make_row_reader(Db& db,
                                                     const std::vector<Resolution>& resolutions);

// Schema of each layout (CREATE TABLE IF NOT EXISTS ...).
std::string chunk_layout_schema(const std::vector<Resolution>& resolutions);
std::string row_layout_schema(const std::vector<Resolution>& resolutions);

// Deletes every stored bucket of one step: its tables and its boundaries in meta, in one
// transaction. The pages go to SQLite's free list and are reused by later writes.
Status drop_chunk_layout_step(Db& db, int64_t step_s);

// Converts a file's plain rows into the chunk layout's hot rows (compaction then encodes them).
Status convert_rows_to_chunks(Db& db, const std::vector<Resolution>& resolutions);

// Adds the sums of buckets in [from, to) to the grid row: a helper both layouts use.
inline void add_to_grid(const StepGrid& g, double* row, int64_t time, double v) {
  if (time >= g.from && time < g.to) row[(time - g.from) / g.step] += v;
}

}  // namespace tally::collector
