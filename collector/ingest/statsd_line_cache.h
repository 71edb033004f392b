// StatsdLineCache: counts a StatsD counter line it has seen before without parsing it again.
//
//   api.errors:1|c|#region:eu,status:500      key: "api.errors" + "|c|#region:eu,status:500"
//
// A line's key is its bytes with the value cut out: the name before the first ':' and everything
// from the first '|'. Two lines with one key differ only in their value, so the full parser
// (statsd_parser.h) makes the same metric, tags, sample rate and counts of them. The first line
// of a key goes through the full parser; when that yields one counter sample without "|T", the
// parser keeps what it made of the line here (add()). A later line with the key only has its
// value read (the parser's own number rules, times the same 1/rate) and added to the entry's sum
// for the open second (find() + count()); take() hands out one counter sample per entry that
// counted lines, `value` = the sum and `count` = the lines it stands for, and starts a new second.
// Summing here instead of in the router is what the router would do with the lines one by one
// (statsd_router.h: counters add up per (series, second)); it saves the per-line allocations, tag
// parsing and catalog lookup, which were most of the listener's time (docs/BENCHMARKS.md).
//
// Memory: at most `max_bytes` of entries (key, metric, tags and bookkeeping). When a new key does
// not fit, the cache is cleared at the next take(), so a changing set of series keeps its hot
// keys without growing past the budget.
//
// Thread-safety: none; one cache per listener thread and dialect.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/statsd_parser.h"

namespace tally::collector {

class StatsdLineCache {
 public:
  explicit StatsdLineCache(size_t max_bytes = 16u << 20);

  // What the full parser made of a line, for the lines with its key.
  struct Entry {
    std::string key;              // name + "|..." (the line without ":value")
    StatsdSample proto;           // metric and tags; type kCounter
    double scale = 1;             // the increment is value * scale (1/rate)
    size_t per_sample_bytes = 0;  // decoded bytes a line counts against the datagram budget
    uint32_t tags_dropped = 0;    // per line, as the parser counted them
    uint32_t names_mapped = 0;
    double sum = 0;      // of the open second
    uint64_t lines = 0;  // counted into `sum`
  };

  // Splits a metric line into name, value and the rest ("|c|#..."); false for a line the cache
  // never holds (no ':' before the first '|', or several values).
  static bool split(std::string_view line, std::string_view* name, std::string_view* value,
                    std::string_view* rest);

  // The entry of this key, or null.
  Entry* find(std::string_view name, std::string_view rest);
  // Keeps the parser's reading of a line (one counter sample, no timestamp); false when the
  // budget is full (the line was counted by the parser all the same).
  bool add(std::string_view name, std::string_view rest, const StatsdSample& sample, double scale,
           size_t per_sample_bytes, uint32_t tags_dropped, uint32_t names_mapped);
  // One more line of `e` with this (already scaled) increment.
  void count(Entry& e, double increment) {
    if (e.lines++ == 0) dirty_.push_back(static_cast<uint32_t>(&e - entries_.data()));
    e.sum += increment;
  }
  // Appends one counter sample per entry with lines (timestamp_s = `second`), resets their sums.
  void take(int64_t second, std::vector<StatsdSample>& out);
  bool has_counts() const { return !dirty_.empty(); }

  size_t size() const { return entries_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  static uint64_t hash(std::string_view name, std::string_view rest);
  void grow();

  size_t max_bytes_;
  size_t bytes_ = 0;
  bool full_ = false;
  std::vector<Entry> entries_;
  // Open addressing, linear probing: (hash, entry index + 1); 0 = empty. At most half full.
  struct Slot {
    uint64_t hash = 0;
    uint32_t index = 0;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> dirty_;  // entries with lines, in first-counted order
};

}  // namespace tally::collector
