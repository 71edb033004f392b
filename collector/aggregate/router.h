// Router: hands per-shard work to the shard workers and numbers it with a log sequence number
// (LSN). Every ingest path (ZeroMQ batches, StatsD, the collector's own metrics) goes through it.
// Thread-safety: route() from any thread.
#pragma once

#include <atomic>
#include <vector>

#include "aggregate/shard.h"

namespace tally::collector {

class Router {
 public:
  explicit Router(std::vector<Shard*> shards) : shards_(std::move(shards)) {}

  // Submits every non-empty item of per_shard (index = shard) under one new LSN; returns it.
  uint64_t route(std::vector<ShardWork>&& per_shard) {
    uint64_t lsn = next_lsn_.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < per_shard.size() && i < shards_.size(); ++i) {
      auto& w = per_shard[i];
      if (w.points() == 0 && w.new_series.empty()) continue;
      w.lsn = lsn;
      shards_[i]->submit(std::move(w));
    }
    return lsn;
  }
  void set_next_lsn(uint64_t lsn) { next_lsn_.store(lsn, std::memory_order_relaxed); }
  bool healthy() const {
    for (auto* s : shards_) if (!s->healthy()) return false;
    return true;
  }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) { return *shards_[i]; }

 private:
  std::vector<Shard*> shards_;
  std::atomic<uint64_t> next_lsn_{1};
};

}  // namespace tally::collector
