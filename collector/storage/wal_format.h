// The write-ahead log's on-disk format (docs/format/wal.md).
//
// data_dir/wal/<first lsn, 20 digits>.log, each a sequence of records:
//
//   +----------+----------+------+---------+-----------------+
//   | length   | crc32    | type | lsn     | payload         |
//   | u32 LE   | u32 LE   | u8   | u64 LE  | length bytes    |
//   +----------+----------+------+---------+-----------------+
//
// crc32 (zlib's CRC-32) covers type, lsn and payload. A record that is cut short or fails its
// checksum ends the log: everything before it is valid, it and what follows were never
// acknowledged (the batch was acked only after the record was written, and synced per policy).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tally::collector::wal_format {

inline constexpr size_t kHeaderBytes = 4 + 4 + 1 + 8;
inline constexpr uint32_t kMaxPayloadBytes = 256u << 20;
inline constexpr uint8_t kTypeBatch = 1;  // payload: a serialised tally.wire.Batch as received
// payload: one interval of StatsD work (ingest/statsd_record.h). Added after type 1: a log of
// type 1 records alone (every earlier log) reads as before; a binary that predates type 2 reads
// such a record as damage (docs/format/wal.md, "Versions").
inline constexpr uint8_t kTypeStatsd = 2;
inline constexpr const char* kDirName = "wal";
inline constexpr const char* kSuffix = ".log";

}  // namespace tally::collector::wal_format
