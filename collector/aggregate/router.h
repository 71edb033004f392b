// Router: hands per-shard work to the shard workers. Every ingest path (ZeroMQ batches, StatsD,
// the collector's own metrics) goes through it.
// Thread-safety: route() from any thread; logged work (lsn != 0) from the ingest thread alone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "aggregate/shard.h"

namespace tally::collector {

class Router {
 public:
  explicit Router(std::vector<Shard*> shards) : shards_(std::move(shards)) {}

  // Submits every non-empty item of per_shard (index = shard). `lsn` is the write-ahead log
  // record the work came from, 0 for unlogged work (StatsD, the collector's own metrics). Logged
  // work is routed by the ingest thread alone, so each shard sees it in LSN order.
  //
  // A shard that logged work passes by (none of its series in the record) still learns, every
  // kAdvanceEvery logged records, that it holds everything up to `lsn` (an empty item): its
  // checkpoint then moves its safe LSN, so the log can be truncated even when some shard never
  // sees a point (a few StatsD series over many shards).
  void route(std::vector<ShardWork>&& per_shard, uint64_t lsn = 0) {
    const bool advance = lsn && ++logged_since_advance_ >= kAdvanceEvery;
    if (advance) logged_since_advance_ = 0;
    for (size_t i = 0; i < shards_.size(); ++i) {
      ShardWork empty;
      const bool has =
          i < per_shard.size() && (per_shard[i].points() != 0 || !per_shard[i].new_series.empty());
      if (!has && !advance) continue;
      auto& w = has ? per_shard[i] : empty;
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
  // The first unhealthy shard's reason; empty when all are healthy.
  std::string health_reason() const {
    for (auto* s : shards_)
      if (auto r = s->health_reason(); !r.empty()) return r;
    return {};
  }
  size_t shard_count() const { return shards_.size(); }
  Shard& shard(size_t i) { return *shards_[i]; }

 private:
  static constexpr uint64_t kAdvanceEvery = 64;
  std::vector<Shard*> shards_;
  uint64_t logged_since_advance_ = 0;  // logged work is routed by the ingest thread alone
};

}  // namespace tally::collector
