// Writes a backup of a running collector's data directory (tally/common/backup.h) without
// stopping ingest: each SQLite file through SQLite's online backup API (a consistent snapshot
// while the shards keep writing), the marker file, then the write-ahead log's segments, copied
// after the snapshots. The caller holds the log's truncation from before the first snapshot to
// the end, so every record a snapshot lacks is in the copied log, and the restored directory is
// what a crash at the moment of the copy would have left: replay brings it back exactly. A record
// still being appended may be cut short in the copy; replay treats that as a torn tail (it was not
// yet acknowledged when the copy was made).
#pragma once

#include <string>

#include "tally/common/backup.h"
#include "tally/common/status.h"

namespace tally::collector {

// `target` must be absolute, outside data_dir, and not exist or be empty.
// pause_us (tests only): a wait between the snapshots and the copy of the log.
Result<backup::Manifest> write_backup(const std::string& data_dir, const std::string& target,
                                      int64_t now_unix_ms, int64_t pause_us = 0);

}  // namespace tally::collector
