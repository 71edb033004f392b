// Wal: the collector's write-ahead log of accepted batches (format: storage/wal_format.h).
//
// The ingest thread appends each valid batch under a new log sequence number (LSN), syncs per
// the fsync policy (one fdatasync covers every record appended since the last: group commit),
// and only then acknowledges the batches and hands their points to the shards. At start-up the
// log is read back from its oldest segment; shards skip what they already stored. Segments
// whose every record is safely in SQLite (below the checkpoint) are deleted.
// Thread-safety: one thread (the ingest thread) uses a Wal.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/wal_format.h"
#include "tally/common/status.h"

namespace tally::collector {

enum class FsyncPolicy {
  kAlways,    // fdatasync before acknowledging (group commit): nothing acknowledged is lost
  kInterval,  // fdatasync at most every interval: a power loss may lose that interval; a crash of
              // the process alone loses nothing (the data is in the page cache)
  kNever,     // leave it to the OS
};
Result<std::pair<FsyncPolicy, int64_t>> parse_fsync_policy(
    std::string_view text);  // "always", "never", or an interval of (0, 1m]: "100ms", "1s"

struct WalOptions {
  std::string dir;
  FsyncPolicy fsync = FsyncPolicy::kAlways;
  int64_t fsync_interval_ms = 100;
  uint64_t segment_bytes = 64u << 20;
  // replay() normally stops at damage before the log's tail (a bad record in a segment that is not
  // the last, or a bad whole record followed by a valid one) and names the file and offset. With
  // salvage it moves the damaged rest of that segment to <segment>.damaged-<offset>, cuts the
  // segment there and goes on with the next record it can read (tally-collector --salvage-wal).
  bool salvage = false;
};

class Wal {
 public:
  ~Wal();
  // Opens the log directory (creating it). Reading back comes first: replay() then append().
  static Result<std::unique_ptr<Wal>> open(WalOptions opts);

  // Calls fn(lsn, payload) for every valid record in order; a torn tail (the last segment's end cut
  // short by a crash) is cut off and reported in the log. Damage anywhere before the tail returns
  // a corruption Status naming the segment and offset and deletes nothing (see
  // WalOptions::salvage). Afterwards next_lsn() follows the last valid record.
  Status replay(const std::function<void(uint64_t lsn, std::string_view payload)>& fn);
  // The same, with each record's type (wal_format::kTypeBatch, kTypeStatsd).
  Status replay_records(
      const std::function<void(uint64_t lsn, uint8_t type, std::string_view payload)>& fn);

  uint64_t next_lsn() const { return next_lsn_; }
  // Raises next_lsn (e.g. to follow what the shards stored when the log was emptied).
  void advance_to(uint64_t lsn) {
    if (lsn > next_lsn_) next_lsn_ = lsn;
  }

  // Appends one record of `type` under next_lsn() and returns that LSN. On failure (disk full) the
  // partial record is cut off again and nothing is appended.
  Result<uint64_t> append(std::string_view payload, uint8_t type = wal_format::kTypeBatch);
  // Makes what was appended durable, per policy. `force` syncs regardless of the interval.
  Status sync(bool force = false);
  // A position in the log; rollback() cuts everything appended after it (a group whose sync
  // failed is taken back out, so the log holds exactly what was acknowledged).
  struct Mark {
    size_t segments;
    uint64_t bytes;
    uint64_t next_lsn;
  };
  Mark mark() const {
    return {segments_.size(), segments_.empty() ? 0 : segments_.back().bytes, next_lsn_};
  }
  Status rollback(const Mark& m);
  // Deletes whole segments whose records all have lsn <= safe_lsn.
  Status truncate(uint64_t safe_lsn);

  uint64_t bytes() const { return total_bytes_; }
  size_t segments() const { return segments_.size(); }
  // Damaged places replay() moved aside (salvage only).
  size_t salvaged() const { return salvaged_; }

 private:
  explicit Wal(WalOptions opts) : opts_(std::move(opts)) {}
  Status open_segment(uint64_t first_lsn);
  struct Segment {
    uint64_t first_lsn;
    std::string path;
    uint64_t bytes;
  };

  WalOptions opts_;
  std::vector<Segment> segments_;
  int fd_ = -1;
  uint64_t next_lsn_ = 1;
  uint64_t total_bytes_ = 0;
  bool dirty_ = false;
  int64_t last_sync_ms_ = 0;
  size_t salvaged_ = 0;
};

}  // namespace tally::collector
