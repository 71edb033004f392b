// The coverage record, coverage.sqlite in the data directory (docs/format/coverage.md): the
// intervals of time during which this collector ran and accepted data. Its format number and its
// bounds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tally::collector::coverage_format {

// meta('coverage_format'): 1 = the table of docs/format/coverage.md. A file of a higher number
// was written by a newer collector and is refused at start-up, never half read.
inline constexpr int64_t kFormat = 1;

inline constexpr const char* kFileName = "coverage.sqlite";

// How often the running interval's end is written: after a kill -9 or a power loss the record
// ends at most this long before the collector stopped.
inline constexpr int64_t kHeartbeatMs = 2000;
// A start less than this after the previous interval's end continues that interval (a quick
// restart, or a crash caught between two heartbeats, is not a gap).
inline constexpr int64_t kMergeGapMs = 2000;
// At most this many intervals are kept; beyond it the oldest go (their time reads as a gap).
// Intervals that ended before the longest retention go as well.
inline constexpr size_t kMaxIntervals = 1024;

}  // namespace tally::collector::coverage_format
