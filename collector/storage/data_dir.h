// DataDir: the data directory's layout (docs/format/storage.md): a TALLY file that records the
// format version and the shard count, fixed when the directory is created, and the shard files
// shard-NN.sqlite. The TALLY file is replaced by write, fsync, rename, fsync of the directory; an
// empty or unreadable one is a clear start-up error. Thread-safety: pure functions over the
// filesystem.
#pragma once

#include <cstdint>
#include <string>

#include "tally/common/status.h"

namespace tally::collector {

inline constexpr int kDataFormatVersion = 1;

struct DataDirLayout {
  std::string path;
  uint32_t shards = 0;
  bool created = false;   // this call created it
  std::string retention;  // the retention list the data was last opened with ("" if unknown)
};

// Opens or creates the data directory. `wanted_shards` is used only when creating it; an existing
// directory keeps its own count.
Result<DataDirLayout> open_data_dir(const std::string& path, uint32_t wanted_shards);
std::string shard_path(const DataDirLayout& d, uint32_t shard);
// Records the retention list now in effect (after any change was applied).
Status record_retention(const DataDirLayout& d, const std::string& retention);
// fsync of a directory: makes the entries created, renamed or deleted in it durable.
Status sync_directory(const std::string& path);

}  // namespace tally::collector
