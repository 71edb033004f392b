// DataDir: the data directory's layout (docs/format/storage.md): a TALLY file that records the
// format version and the shard count, fixed when the directory is created, the retention list and
// which collector last wrote into it (writer_revision, writer_version), and the shard files
// shard-NN.sqlite. The TALLY file is replaced by write, fsync, rename, fsync of the directory; an
// empty or unreadable one is a clear start-up error. Thread-safety: pure functions over the
// filesystem.
#pragma once

#include <cstdint>
#include <string>

#include "tally/common/status.h"

namespace tally::collector {

inline constexpr int kDataFormatVersion = 1;
// What this collector writes into a directory of that format, numbered: 1 = Tally 0.1.0 (row or
// chunk tables, write-ahead log records of type 1); 2 = StatsD records of type 2 in the log, the
// writer recorded in TALLY. A directory without writer_revision was written by 0.1.0. Opening one
// of a lower revision migrates it in place (Server logs event=migration_started / _done).
inline constexpr int kWriterRevision = 2;

struct DataDirLayout {
  std::string path;
  uint32_t shards = 0;
  bool created = false;        // this call created it
  std::string retention;       // the retention list the data was last opened with ("" if unknown)
  int writer_revision = 1;     // kWriterRevision of the collector that last wrote it
  std::string writer_version;  // its release ("" when not recorded: 0.1.0)
};

// Opens or creates the data directory. `wanted_shards` is used only when creating it; an existing
// directory keeps its own count.
Result<DataDirLayout> open_data_dir(const std::string& path, uint32_t wanted_shards);
std::string shard_path(const DataDirLayout& d, uint32_t shard);
// Records the retention list now in effect (after any change was applied).
Status record_retention(const DataDirLayout& d, const std::string& retention);
// Rewrites the TALLY file from d (format, shards, retention, writer).
Status record_layout(const DataDirLayout& d);
// fsync of a directory: makes the entries created, renamed or deleted in it durable.
Status sync_directory(const std::string& path);

}  // namespace tally::collector
