// ProducerTable: what the collector remembers per SDK producer: its series references
// (ref -> series) and which batch sequence numbers it has already accepted.
//
// De-duplication keeps, per producer, the highest accepted sequence number and a window of the
// kWindow numbers below it; a number below the window counts as a duplicate (the SDK never
// holds that many unacknowledged batches). The table is saved to data_dir/ingest.sqlite.
//
// Bounded (forget()): a producer not heard from for producer_idle, and beyond producers_max the
// least recently heard, is forgotten with its refs and window, in memory and in the file. If it
// sends again, its refs are unknown (UNKNOWN_REF: the SDK resends its definitions) and its
// window starts empty.
// Thread-safety: owned by the ingest thread.
#pragma once

#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
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
  // A saved ref whose series is not in memory (it expired) is passed to `revive`, which may bring
  // the series back from storage; without it (or when it answers nullptr) the ref is dropped.
  using Revive = std::function<const SeriesInfo*(uint64_t series_id)>;
  static Result<std::unique_ptr<ProducerTable>> open(const std::string& path,
                                                     const SeriesCatalog& catalog,
                                                     bool sync_commits = false,
                                                     const Revive& revive = {});

  bool seen(uint64_t producer, uint64_t seq) const;
  void mark_seen(uint64_t producer, uint64_t seq);
  const SeriesInfo* ref(uint64_t producer, uint32_t ref) const;
  // Records new references durably before the batch that defines them is acknowledged.
  Status add_refs(uint64_t producer,
                  const std::vector<std::pair<uint32_t, const SeriesInfo*>>& refs);
  // Persists the sequence windows (called periodically and at shutdown).
  Status save_sequences();
  size_t producers() const { return producers_.size(); }
  size_t refs() const;  // every producer's, for tests and /api/cardinality
  // The producer was heard from at now_s (a batch of it was accepted).
  void touch(uint64_t producer, int64_t now_s);
  // Idle-series expiry: forgets in memory every ref to a series in `gone` (the producer's next
  // batch that uses one is answered UNKNOWN_REF and the SDK defines it again). The saved rows stay
  // until delete_refs(), called once the expiry is durable: until then a restart replays the log
  // with them.
  struct SavedRef {
    uint64_t producer;
    uint32_t ref;
    uint64_t series_id;
  };
  std::vector<SavedRef> forget_series(const std::unordered_set<const SeriesInfo*>& gone);
  // Deletes the saved rows of these refs, except a ref its producer has defined again.
  Status delete_refs(const std::vector<SavedRef>& refs);
  // Forgets producers idle for idle_s or more, then the least recently heard beyond `max` among
  // those idle for min_idle_s or more (the write-ahead log may still hold a newer producer's
  // batches, which a replay decodes with its refs). Returns how many were forgotten.
  Result<size_t> forget(int64_t now_s, int64_t idle_s, size_t max, int64_t min_idle_s);

 private:
  struct Producer {
    std::unordered_map<uint32_t, const SeriesInfo*> refs;
    uint64_t high = 0;             // highest accepted seq; 0 = none
    std::vector<uint64_t> window;  // bit i set: seq (high - i) accepted, i < kWindow
    bool dirty = false;
    int64_t last_seen_s = 0;  // 0: loaded at start, not heard from since (treated as now)
  };
  std::unique_ptr<Db> db_;
  Stmt put_ref_, put_seq_, begin_, commit_, del_refs_, del_seq_, del_ref_;
  std::unordered_map<uint64_t, Producer> producers_;
};

}  // namespace tally::collector
