// Backups of a collector's data directory (docs/OPERATIONS.md, "Back up and restore").
//
// A backup is a directory holding a copy of every file of the data directory (each SQLite file
// as a consistent snapshot, the write-ahead log's segments as they were after those snapshots)
// and MANIFEST.json, written last, listing each file with its size and XXH3-64 hash. A directory
// without a manifest is an unfinished backup. restore() checks every file against the manifest
// before it writes anything, and writes only into a data directory that does not exist yet or is
// empty; the collector started on it replays the log as after a crash, so the restored data is
// the backup's point in time, exactly.
//
//   auto m = tally::backup::read_manifest("/backups/2026-12-02");   // Result<Manifest>
//   tally::backup::restore("/backups/2026-12-02", "/var/lib/tally", &m);
//
// Thread-safety: free functions over files; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tally/common/status.h"

namespace tally::backup {

inline constexpr const char* kManifestName = "MANIFEST.json";
inline constexpr int kManifestFormat = 1;

struct FileEntry {
  std::string path;  // relative to the backup (and data) directory, '/'-separated
  uint64_t bytes = 0;
  uint64_t xxh3 = 0;
};

struct Manifest {
  int format = kManifestFormat;
  std::string tally_version;  // of the collector that wrote it
  int64_t created_unix_ms = 0;
  std::vector<FileEntry> files;
  uint64_t total_bytes() const;
};

// Copies `from` to `to` (created, must not exist), syncs it, and describes what was written.
Result<FileEntry> copy_file(const std::string& from, const std::string& to, const std::string& rel);
// Size and hash of a file as it is now (e.g. a SQLite snapshot written by the backup API).
Result<FileEntry> describe_file(const std::string& path, const std::string& rel);
// fsync of a directory, so the entries created in it survive a power loss.
Status sync_dir(const std::string& dir);

// Writes dir/MANIFEST.json (a temporary file, synced, renamed, directory synced).
Status write_manifest(const std::string& dir, const Manifest& m);
// Reads and checks the manifest's shape; a newer format is refused by name.
Result<Manifest> read_manifest(const std::string& dir);
// Every file the manifest lists is there with its size and hash; the first difference is named.
Status verify(const std::string& dir, const Manifest& m);
// Verifies the backup, then copies it into data_dir (which must not exist or be empty); *out
// receives the manifest.
Status restore(const std::string& backup_dir, const std::string& data_dir, Manifest* out);

}  // namespace tally::backup
