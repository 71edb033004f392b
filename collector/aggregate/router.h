// Router: hands per-shard work to the shard workers. Every ingest path (ZeroMQ batches, StatsD,
// the collector's own metrics) goes through it.
// Thread-safety: route() from any thread; logged work (lsn != 0) from the ingest thread alone.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "aggregate/shard.h"

namespace tally::collector {

class Router {
 public:
  explicit Router(std::vector<Shard*> shards) : shards_(std::move(shards)) {}

  // Submits every non-empty item of per_shard (index = shard). `lsn` is the write-ahead log
  // record the work came from, 0 for unlogged work (the collector's own metrics). Logged work is
  // routed by the ingest thread alone, so each shard sees it in LSN order.
  void route(std::vector<ShardWork>&& per_shard, uint64_t lsn = 0) {
    for (size_t i = 0; i < per_shard.size() && i < shards_.size(); ++i) {
      auto& w = per_shard[i];
      if (w.empty()) continue;
      w.lsn = lsn;
      shards_[i]->submit(std::move(w));
      if (lsn) shards_[i]->note_routed(lsn);
    }
    if (lsn > routed_lsn_.load(std::memory_order_relaxed))
      routed_lsn_.store(lsn, std::memory_order_release);
  }
  // After replay: the log's records up to `lsn` were routed (replayed) before this start.
  void note_replayed(uint64_t lsn) {
    if (lsn > routed_lsn_.load(std::memory_order_relaxed))
      routed_lsn_.store(lsn, std::memory_order_release);
  }
  // The LSN up to which every logged point is in SQLite, over all shards (the write-ahead log may
  // drop the records up to it). A shard that has stored everything routed to it holds nothing
  // back: an idle shard (no series of its own, or none sending) must not keep the log from ever
  // being cut. Called on the thread that routes logged work (the ingest thread).
  uint64_t safe_lsn() const {
    uint64_t safe = routed_lsn_.load(std::memory_order_acquire);
    for (auto* s : shards_) {
      const uint64_t stored = s->safe_lsn();
      if (stored < s->routed_lsn()) safe = std::min(safe, stored);
    }
    return safe;
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
  std::vector<Shard*> shards_;
  std::atomic<uint64_t> routed_lsn_{0};  // the highest LSN routed to any shard
};

}  // namespace tally::collector
