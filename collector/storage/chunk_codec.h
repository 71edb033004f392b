// Chunk codec: the buckets of one series over a window of fixed-width slots, as one blob, and back
// (docs/format/chunk.md; constants in chunk_format.h).
//
// Buckets are fixed-width, so a chunk stores no timestamps: a slot count, the runs of present and
// absent slots, then one column per field of the kind. Integral columns (counters almost always)
// are entropy-coded with a static rANS model per column, close to the values' order-0 entropy;
// other columns are XOR-ed with their predecessor, split into byte planes and zstd-compressed.
// Decoding checks every length and the trailing checksum: a damaged blob is a corruption Status,
// never a crash or a wrong value. Thread-safety: pure functions (scratch buffers are thread-local).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/bucket.h"
#include "tally/common/status.h"

namespace tally::collector {

struct ChunkSlot {
  uint32_t index = 0;  // the bucket starting at chunk start + index * step
  BucketAgg agg;
};

// Encodes the buckets of a series of `kind`; slots must have strictly increasing indices below
// nslots (at most chunk_format::kMaxSlots).
std::string encode_chunk(Kind kind, uint32_t nslots, const std::vector<ChunkSlot>& slots);

// Decodes a blob written by encode_chunk, replacing *out. Corruption when the blob is damaged or
// is not a chunk of `kind` with `nslots` slots.
Status decode_chunk(std::string_view blob, Kind kind, uint32_t nslots, std::vector<ChunkSlot>* out);

// The kind a chunk says it holds (no other check); corruption when it is not a chunk.
Result<Kind> chunk_kind(std::string_view blob);

// A hot row: the buckets of one bucket time for a group of series (chunk_format::kHotGroupBits),
// written by flushes before compaction encodes them into segments.
struct HotEntry {
  uint64_t series_id = 0;
  Kind kind = Kind::kCounter;
  BucketAgg agg;
};
// entries: sorted by series id, each id once.
std::string encode_hot_row(const std::vector<HotEntry>& entries);
Status decode_hot_row(std::string_view blob, std::vector<HotEntry>* out);
// One series' entry, skipping the others; *found is false when the row has none.
Status find_in_hot_row(std::string_view blob, uint64_t series_id, HotEntry* out, bool* found);

// Counters only, for queries that add sums: dense[i] = the sum of slot i, 0 where it is absent.
// dense must hold nslots values.
Status decode_counter_sums(std::string_view blob, uint32_t nslots, double* dense);

// Counters only, without touching absent slots: the runs of present slots [begin, end) and their
// sums, values[first + k] for slot begin + k of a run.
struct SlotRun {
  uint32_t begin, end;
  uint32_t first;
};
Status decode_counter_runs(std::string_view blob, uint32_t nslots, std::vector<SlotRun>* runs,
                           std::vector<double>* values);

}  // namespace tally::collector
