// Live updates (docs/API.md "Live stream") and their merge into a panel's query result.
//
// The collector publishes one LiveUpdate per series and 1 s bucket, carrying the bucket's whole
// current value: PARTIAL while it grows, FINAL when closed, CORRECTION when a late point changed a
// closed bucket. So the buffer keeps the latest update per (series, second) and replaces it; it
// never adds. A panel's step bucket [b, b+step) is recomputed from the buffer only when every
// second of it has been seen, i.e. b >= coverageStart (the subscription was live before it);
// older buckets keep the HTTP answer, and a correction to one of those asks for a re-query.
// The group-by and functions are those of /api/query (the table in docs/API.md).
// Thread-safety: a value owned by one panel; not shared.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api.h"
#include "dashboard.h"
#include "tally/common/series_key.h"
#include "tally/common/sketch.h"
#include "tally/common/status.h"

namespace tally::dash {

struct LiveUpdate {
  enum class State { Partial = 0, Final = 1, Correction = 2 };
  std::string metric;
  Tags tags;  // canonical
  Kind kind = Kind::kCounter;
  int resolutionS = 1;
  int64_t time = 0;
  State state = State::Partial;
  double value = 0;  // counter: sum; gauge: last; distribution: count
  double sum = 0;
  uint64_t count = 0;
  double min = 0;
  double max = 0;
  std::shared_ptr<const Sketch> sketch;  // distributions only
};

// Decodes a tally.wire.LiveBatch; a frame that does not parse or holds an invalid sketch is an
// error.
Result<std::vector<LiveUpdate>> decodeLiveBatch(const void* data, size_t size);
// The inverse, for tests and tools.
std::string encodeLiveBatch(const std::vector<LiveUpdate>& updates);

class LiveBuffer {
 public:
  struct Options {
    std::string metric;
    std::vector<TagFilter> filters;
    std::vector<std::string> groupBy;
    Fn fn = Fn::kSum;
    size_t maxCells = 2'000'000;  // bound on memory: about 100 bytes a cell
  };

  LiveBuffer() = default;
  explicit LiveBuffer(Options options);

  // Forgets everything; the buffer covers time from `coverageStart` on.
  void reset(Options options, int64_t coverageStart);
  int64_t coverageStart() const { return m_coverageStart; }
  const Options& options() const { return m_options; }

  // Applies one update. Returns false if it is for another metric or does not pass the filters.
  bool apply(const LiveUpdate& u);

  // Recomputes r's buckets in [max(coverage aligned up to r.step, r.from), to aligned up) from the
  // buffer, adds series for new groups, zero-fills counters where the API does, and sets r.to.
  void mergeInto(QueryResult& r, int64_t to) const;

  // Drops seconds before t (the window slid past them); coverage starts at t at the earliest.
  void pruneBefore(int64_t t);
  size_t cellCount() const { return m_cells; }

  // The earliest corrected bucket that lies before coverage start (the HTTP answer for it is now
  // stale and must be re-queried); cleared by the call.
  std::optional<int64_t> takeStaleCorrection();

 private:
  struct Cell {
    double value = 0, sum = 0, min = 0, max = 0;
    uint64_t count = 0;
    bool partial = false;
    std::shared_ptr<const Sketch> sketch;
  };
  struct SeriesCells {
    Tags groupTags;
    Kind kind = Kind::kCounter;
    std::map<int64_t, Cell> secs;
  };
  std::optional<double> bucketValue(const std::vector<const SeriesCells*>& members, int64_t b,
                                    int64_t step, bool* partial) const;

  void compileFilters();

  Options m_options;
  std::vector<LabelMatcher> m_matchers;  // m_options.filters, compiled (RE2) once
  bool m_badFilter = false;
  int64_t m_coverageStart = 0;
  std::map<std::string, SeriesCells> m_series;  // by canonical series key
  size_t m_cells = 0;
  std::optional<int64_t> m_staleCorrection;
};

}  // namespace tally::dash
