// ProducerTable: what the collector remembers per SDK producer: its series references
// (ref -> series) and which batch sequence numbers it has already accepted.
//
// De-duplication keeps, per producer, the highest accepted sequence number and a window of the
// kWindow numbers below it; a number below the window counts as a duplicate (the SDK never
// holds that many unacknowledged batches). The table is saved to data_dir/ingest.sqlite.
// Thread-safety: owned by the ingest thread.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "aggregate/catalog.h"
#include "storage/sqlite.h"

namespace tally::collector {

class ProducerTable {
 public:
  static constexpr uint64_t kWindow = 4096;

  // Opens (creating) the table's file and loads it; refs to series the catalog no longer knows are
  // dropped (the SDK then receives UNKNOWN_REF and resends its definitions).
  // sync_commits: synchronous=FULL, so saved refs and sequence windows are on disk when a save
  // returns (the log drops records only after their sequences are saved).
  static Result<std::unique_ptr<ProducerTable>> open(const std::string& path,
                                                     const SeriesCatalog& catalog,
                                                     bool sync_commits = false);

  bool seen(uint64_t producer, uint64_t seq) const;
  void mark_seen(uint64_t producer, uint64_t seq);
  const SeriesInfo* ref(uint64_t producer, uint32_t ref) const;
  // Records new references durably before the batch that defines them is acknowledged.
  Status add_refs(uint64_t producer,
                  const std::vector<std::pair<uint32_t, const SeriesInfo*>>& refs);
  // Persists the sequence windows (called periodically and at shutdown).
  Status save_sequences();
  size_t producers() const { return producers_.size(); }

 private:
  struct Producer {
    std::unordered_map<uint32_t, const SeriesInfo*> refs;
    uint64_t high = 0;             // highest accepted seq; 0 = none
    std::vector<uint64_t> window;  // bit i set: seq (high - i) accepted, i < kWindow
    bool dirty = false;
  };
  std::unique_ptr<Db> db_;
  Stmt put_ref_, put_seq_, begin_, commit_;
  std::unordered_map<uint64_t, Producer> producers_;
};

}  // namespace tally::collector
