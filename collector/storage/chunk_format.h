// Constants of the shard file's point storage and of the chunk encoding (docs/format/chunk.md).
//
// Points of one series at one resolution live in three tiers, each holding a disjoint time range:
//   hot rows   one row per bucket time and series-id group, the newest minute or two
//   segments   one blob per series per kSegmentSlots buckets (a minute at 1 s)
//   chunks     one blob per series per kChunkSlots buckets (an hour at 1 s)
// A segment or chunk blob is a chunk in the format below; only its slot count differs.
// Changing anything here changes the on-disk format: bump the version it belongs to.
#pragma once

#include <cstdint>

namespace tally::collector::chunk_format {

// meta('storage_format') of a shard file. 1: plain rows points_<res>(series_id, t, ...);
// 2: hot rows + segments + chunks. A version-1 file is converted when it is opened.
inline constexpr int kStorageFormat = 2;

// First byte of every chunk blob. (Version 1, with two rANS states, existed only in development.)
inline constexpr uint8_t kChunkVersion = 2;

// Buckets per segment: a minute at 1 s, 10 minutes at 10 s. Buckets per chunk: an hour, and at
// least kMinChunkSlots (1 s: 3600; 10 s: 360; 1 m: 360 = 6 h; 1 h: 360 = 15 days), rounded up to
// whole segments. An hour of 1 s buckets is what the entropy coder needs: its table costs about 25
// bytes, 0.007 bytes a point; a minute-long chunk would spend more on tables than on values.
// Coarser resolutions hold bigger values, so 360 of them carry the table as well, and a query for
// the last hours at 10 s or 1 m reads one chunk per series and hour, not six segments
// (docs/BENCHMARKS.md).
inline constexpr uint32_t kSegmentSlots = 60;
inline constexpr int64_t kChunkSpanS = 3600;
inline constexpr uint32_t kMinChunkSlots = 360;
inline constexpr uint32_t kChunkSlots = 3600;  // at 1 s, the largest
constexpr uint32_t chunk_slots(int64_t step_s) {
  const int64_t per_hour = (kChunkSpanS + step_s - 1) / step_s;
  const int64_t n = per_hour > kMinChunkSlots ? per_hour : kMinChunkSlots;
  return static_cast<uint32_t>((n + kSegmentSlots - 1) / kSegmentSlots * kSegmentSlots);
}
static_assert(chunk_slots(1) == 3600 && chunk_slots(10) == 360 && chunk_slots(60) == 360 &&
              chunk_slots(7) == 540);
static_assert(kChunkSlots % kSegmentSlots == 0 && kMinChunkSlots % kSegmentSlots == 0);
// The open windows are compacted in parts, so what waits for a window's end stays small:
// - once the open chunk window has kPartialChunkSegments whole segments (at 1 s: 10 minutes; at
//   the coarser steps, whose chunks hold 6 segments: 2), they are merged into the window's chunk
//   blobs so far (a blob says which slots it holds) and the chunk boundary moves to their end,
//   which need not be a chunk window's end. Without it an hour of 1 s segments waited for the
//   hour's end: about 30 MB at 10,000 series that, freed, stayed in the file as free pages;
// - at 10 s and coarser (a segment window of kPartialSegmentMinWindowS or more), once the open
//   segment window has kPartialSegmentBuckets final buckets in hot rows, they are merged into its
//   segment blobs so far and the segment boundary moves to their end (the 1 m hot rows would
//   otherwise wait an hour, the 1 h ones 60 hours). 1 s segments (a minute) are written whole.
// The price: a chunk or segment is encoded several times (docs/BENCHMARKS.md, "Disk over hours").
inline constexpr uint32_t kPartialChunkSegments = 10;
constexpr uint32_t partial_chunk_segments(uint32_t segments_per_chunk) {
  const uint32_t third = segments_per_chunk / 3 > 2 ? segments_per_chunk / 3 : 2;
  return third < kPartialChunkSegments ? third : kPartialChunkSegments;
}
static_assert(partial_chunk_segments(60) == 10 && partial_chunk_segments(6) == 2 &&
              partial_chunk_segments(9) == 3);
inline constexpr uint32_t kPartialSegmentBuckets = 10;
inline constexpr int64_t kPartialSegmentMinWindowS = 600;

// Segment and chunk rows are keyed by one integer, (window index << 32) | series id, so one
// window's blobs are one key range in series order and a compaction appends at the end of the
// b-tree. Series ids must fit in 32 bits.
inline constexpr int kKeySeriesBits = 32;
inline constexpr uint64_t kMaxChunkSeriesId = (uint64_t{1} << kKeySeriesBits) - 1;

// Page size of new shard files. Chunk rows are 0.1-4 KiB; with 4 KiB pages a quarter of each
// page is left empty, with 16 KiB pages about 6 % (measured, docs/format/chunk.md).
inline constexpr int kPageSize = 16384;

// Hot rows hold the buckets of one time for the series whose ids share id >> kHotGroupBits: a
// flush writes tens of rows, not one per series (a SQLite row costs 2-3 us here; a point in a
// grouped row about 0.05 us). Entry tag: the kind (low bits); counters whose value is integral
// set kHotVarint and store zigzag(value) as a varint instead of 8 bytes.
inline constexpr int kHotGroupBits = 8;
inline constexpr uint8_t kHotKindMask = 0x03;
inline constexpr uint8_t kHotVarint = 0x80;

// Chunk header: kind byte (the Kind enum's value).
// Columns per kind, each one of the encodings below:
//   counter       sum
//   gauge         count, sum, min, max, last
//   distribution  zero count, sketch bins (a byte stream), sum, min, max
enum class ColumnEncoding : uint8_t {
  kConst = 0,     // every value is bitwise the same double: 8 bytes
  kIntRaw = 1,    // integral values: zigzag(v) as rANS tokens + extra bits
  kIntDelta = 2,  // integral values: zigzag(v - previous) as rANS tokens + extra bits
  kFloat = 3,  // XOR with the previous value, byte planes, zstd (or stored when zstd does not help)
  kIntUnsigned = 4,  // integral values >= 0 (most counters): v as rANS tokens + extra bits
  kIntPacked = 5,  // integral values: zigzag(min) varint, bit width u8, (v - min) in that many bits
};
// Segments are read far more often than their size matters (they live an hour at most): their
// integral columns are bit-packed, which decodes several times faster than rANS; chunks use rANS.
// Integral values are coded exactly only up to 2^53 in magnitude; beyond that a column is kFloat.
inline constexpr double kMaxIntegral = 9007199254740992.0;  // 2^53

// Sketch bins stream encoding (distributions).
enum class BytesEncoding : uint8_t { kStored = 0, kZstd = 1 };
inline constexpr int kZstdLevel = 3;

// Tokens: a value u >= 0 below kDirectTokens is its own token; a larger one with its top bit at
// position b (b >= 4) is token kDirectTokens + (b - 4) * 4 + (the two bits below the top bit),
// followed by b - 2 extra bits stored raw. 16 + 60 * 4 = 256 tokens cover every uint64.
inline constexpr uint32_t kDirectTokens = 16;
inline constexpr int kDirectBits = 4;  // log2(kDirectTokens)
inline constexpr int kMantissaBits = 2;
inline constexpr uint32_t kTokens = 256;

// rANS: 32-bit states kept in [kRansLow, kRansLow << 8), byte-wise renormalisation, four
// interleaved states (value i uses state i % 4: four independent chains decode about 1.4x faster
// than two, for 8 more bytes a column); token frequencies are quantised to 2^P with P per column.
inline constexpr uint32_t kRansLow = 1u << 23;
inline constexpr int kRansStates = 4;
inline constexpr int kRansMinProbBits = 4;
inline constexpr int kRansMaxProbBits = 12;

// Presence: the chunk's slot count, then run lengths alternating absent, present, absent, ...
// (the first run may be 0), adding up to the slot count.
inline constexpr uint32_t kMaxSlots = 1u << 20;

// Last four bytes of every chunk: XXH32 of the bytes before them, little-endian.
inline constexpr uint32_t kChecksumSeed = 0x7a11c4u;

}  // namespace tally::collector::chunk_format
