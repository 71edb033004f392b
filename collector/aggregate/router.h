// Router: hands per-shard work to the shard workers. Every ingest path (ZeroMQ batches, StatsD,
// the collector's own metrics) goes through it.
// Thread-safety: route() from any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "aggregate/shard.h"

namespace tally::collector {

class Router {
 public:
  explicit Router(std::vector<Shard*> shards) : shards_(std::move(shards)) {}

  // Submits every non-empty item of per_shard (index = shard). `lsn` is the write-ahead log
  // record the work came from, 0 for unlogged work (StatsD, the collector's own metrics). Logged
  // work is routed by the ingest thread alone, so each shard sees it in LSN order.
  void route(std::vector<ShardWork>&& per_shard, uint64_t lsn = 0) {
    for (size_t i = 0; i < per_shard.size() && i < shards_.size(); ++i) {
      auto& w = per_shard[i];
      if (w.points() == 0 && w.new_series.empty()) continue;
      w.lsn = lsn;
      shards_[i]->submit(std::move(w));
      if (lsn) shards_[i]->note_routed(lsn);
    }
  }
  // The LSN below which every logged point is in SQLite, over all shards.
  uint64_t safe_lsn() const {
    uint64_t safe = UINT64_MAX;
    for (auto* s : shards_) safe = std::min(safe, s->safe_lsn());
    return safe == UINT64_MAX ? 0 : safe;
  }
  // Bytes submitted to the shards and not yet applied; bytes applied since start.
  uint64_t queued_bytes() const {
    uint64_t b = 0;
    for (auto* s : shards_) b += s->queued_bytes();
    return b;
  }
  uint64_t held_bytes() const {
    uint64_t b = 0;
    for (auto* s : shards_) b += s->held_bytes();
    return b;
  }
  uint64_t applied_bytes() const {
    uint64_t b = 0;
    for (auto* s : shards_) b += s->applied_bytes();
    return b;
  }
  bool healthy() const {
    for (auto* s : shards_)
      if (!s->healthy()) return false;
    return true;
  }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) { return *shards_[i]; }

 private:
  std::vector<Shard*> shards_;
};

}  // namespace tally::collector
