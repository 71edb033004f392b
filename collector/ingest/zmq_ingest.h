// ZmqIngest: the ROUTER socket SDKs send batches to, and its thread.
//
// Per frame: size check, de-duplication by (producer, seq) read from the frame's first bytes
// without decoding it (batch_header.h), the budget check, the definitions the collector already
// holds cut out, protobuf decode, validation (decode_batch) and an append to the write-ahead log.
//
// Backpressure: the bytes accepted but not yet applied or stored (decoded batches waiting for the
// group's sync, the shard queues (work_bytes()) and the shards' overdue buckets (held_bytes():
// windows past the watermark not yet written, late buckets)) are bounded by max_queued_bytes. While
// they are at the bound a new batch is answered UNAVAILABLE with retry_after_ms (the time the
// shards need to drain to half the bound at their measured rate, 100 ms .. 5 s) instead of being
// queued; so the collector holds at most the bound plus one batch. ZeroMQ's own receive queue is
// bounded by rcv_hwm frames per peer (a peer beyond it is pushed back by TCP) and max_batch_bytes
// per frame. Frames are taken in bursts: one log sync covers the burst (group commit), then every
// batch of it is acknowledged and its points go to the shards. A batch is acknowledged OK only once
// its record is durable (per fsync policy); if the log cannot be written (disk full) the burst is
// taken back out of the log and answered UNAVAILABLE, and the SDKs resend. Rejected frames are
// counted and logged at a bounded rate. The thread also drives the collector's own metrics and the
// log's truncation once a second.
//
// StatsD goes through the same log: the thread also waits on the StatsD router's wake fd, takes
// the interval the listener has gathered (statsd_router.h; at most every statsd_interval_ms),
// appends it as one StatsD record after the burst's batches, and routes it to the shards only after
// the group's sync, in LSN order with the batches. If the log cannot be written the interval is
// routed unlogged (UDP cannot be asked to resend) and counted in
// tally_statsd_samples_unlogged_total. Thread-safety: start()/stop() from the owning thread;
// everything else runs on the ingest thread.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "aggregate/router.h"
#include "ingest/batch_decoder.h"
#include "ingest/batch_header.h"
#include "ingest/producer_table.h"
#include "ingest/statsd_router.h"
#include "live_limits.h"
#include "self_metrics.h"
#include "storage/wal.h"
#include "tally/common/endpoints.h"
#include "tally/common/wire.h"  // kMaxBatchBytes

namespace tally::collector {

struct ZmqIngestOptions {
  std::string endpoint = kDefaultIngestEndpoint;
  IngestLimits limits;
  size_t max_queued_bytes = 256u << 20;
  int rcv_hwm = 16;  // frames per peer queued inside ZeroMQ (SDKs keep at most 8 in flight)
  // Tests only (the hidden --debug-def-delay flag): the ingest thread sleeps this long per series
  // definition it decodes, to play a collector that is slow to take new series.
  int64_t debug_def_delay_us = 0;
  size_t max_batch_bytes = kMaxBatchBytes;
  // StatsD intervals are logged at most this often (one record each): the longer, the fewer
  // series definitions and syncs per line; what the listener accepted becomes visible this much
  // later (or a sync later, whichever is longer). 20 ms: docs/BENCHMARKS.md, "StatsD logging".
  int64_t statsd_interval_ms = 20;
  CardinalityGuard* cardinality = nullptr;  // new series go through it (cardinality limits)
  // The producer table's bound (ProducerTable::forget), applied every second.
  size_t producers_max = 10000;
  int64_t producer_idle_s = 3600;
  int64_t producer_min_idle_s = 300;  // beyond producers_max, only producers idle this long go
  // When set, the budgets above (limits, max_batch_bytes, max_queued_bytes, producers_max,
  // producer_idle_s) are read from it for every frame and every tick instead (a reload changes
  // them); it must outlive the ZmqIngest. The socket's maximum message size stays what
  // max_batch_bytes was at start().
  const LiveLimits* live_limits = nullptr;
  // Idle-series expiry (catalog.h): a series with no point for this long leaves memory; 0 = never.
  // The sweep runs on this thread every expiry / 4 (1 s .. 1 min). Read from live_limits when set.
  int64_t series_idle_expiry_s = 0;
  // The collector's CURVE secret key (Z85): the socket is a CURVE server and every client's key
  // is checked by the ZAP handler (auth/zap_handler.h), which must be running. Empty = plain.
  std::string curve_secret_key;
  // With CURVE: called with the socket before it binds (the ZAP handler's watch(), which counts
  // the handshakes that fail before ZAP is asked). A failure is logged; ingest runs on.
  std::function<Status(zmq::socket_t&)> watch_handshakes;
};

class ZmqIngest {
 public:
  ZmqIngest(zmq::context_t& ctx, ZmqIngestOptions opts, SeriesCatalog& catalog,
            ProducerTable& producers, Router& router, Wal& wal, const Clock& clock,
            SelfMetrics& metrics);
  ~ZmqIngest() { stop(); }

  // Binds the ROUTER socket and starts the thread; returns the bound endpoint.
  Result<std::string> start();
  void stop();
  // Called on the ingest thread about once a second (the collector's own metrics).
  void set_tick(std::function<void()> tick) { tick_ = std::move(tick); }
  // StatsD intervals to log with each group; set before start(), may stay null.
  void set_statsd(StatsdRouter* statsd) { statsd_ = statsd; }
  // False while the log cannot be written (then every batch is answered UNAVAILABLE).
  bool log_healthy() const { return log_healthy_.load(std::memory_order_relaxed); }
  // While held (a backup copies the log), no log segment is deleted; any thread.
  void hold_log_truncation() { truncation_holds_.fetch_add(1); }
  void release_log_truncation() { truncation_holds_.fetch_sub(1); }

 private:
  // A batch written to the log, waiting for the group's sync before its ack.
  struct Pending {
    zmq::message_t identity;
    wire::Ack ack;
    DecodedBatch decoded;
    uint64_t lsn;
    uint64_t dropped_batches;
  };
  // A StatsD interval written to the log, waiting for the group's sync before it is routed.
  struct PendingStatsd {
    std::vector<ShardWork> per_shard;
    uint64_t samples;
    uint64_t lsn;
  };
  void run();
  // Takes the StatsD router's interval and appends it to the group (after its batches).
  void take_statsd();
  // Routes StatsD work the log could not take (lsn 0), counted and logged.
  void route_statsd_unlogged(std::vector<ShardWork>&& per_shard, uint64_t samples,
                             const Status& why);
  // The budgets in effect now (opts_, or live_limits when set).
  struct Budgets {
    IngestLimits limits;
    uint64_t max_batch_bytes = 0;
    uint64_t max_queued_bytes = 0;
    size_t producers_max = 0;
    int64_t producer_idle_s = 0;
    int64_t series_idle_expiry_s = 0;  // 0 = never
  };
  Budgets budgets() const;
  void handle(zmq::message_t& identity, const zmq::message_t& payload);
  // Bytes accepted and not yet applied; updates the queued-bytes gauges.
  uint64_t queued_bytes();
  uint32_t retry_after_ms(uint64_t queued, uint64_t max_queued) const;
  void commit_group();
  void set_log_health(bool ok, const Status& why);
  // Hands the new series of a batch that could not be logged to their shards.
  void route_definitions(DecodedBatch& d);
  void send_ack(const zmq::message_t& identity, const wire::Ack& ack);
  // Idle-series expiry, one sweep (catalog.h steps 1 and 3): unlinks the idle series, forgets the
  // producers' refs to them, hands them to their shards behind every point already routed, deletes
  // the saved refs of the expiries that are durable, and frees what no reader holds.
  void sweep_series(int64_t now_s, int64_t expiry_s);
  void log_reject(const std::string& reason, uint64_t producer);

  zmq::context_t& ctx_;
  const ZmqIngestOptions opts_;
  SeriesCatalog& catalog_;
  ProducerTable& producers_;
  Router& router_;
  Wal& wal_;
  const Clock& clock_;
  SelfMetrics& metrics_;
  std::unique_ptr<zmq::socket_t> socket_;
  std::function<void()> tick_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  int64_t last_reject_log_s_ = 0;
  uint64_t suppressed_rejects_ = 0;
  int64_t last_unlogged_log_s_ = 0;
  int64_t last_statsd_take_ms_ = 0;  // when the last non-empty StatsD interval was taken
  std::unordered_map<uint64_t, uint64_t> dropped_by_producer_;
  std::vector<Pending> group_;
  std::vector<PendingStatsd> statsd_group_;  // every LSN here follows every LSN in group_
  StatsdRouter* statsd_ = nullptr;
  std::optional<Wal::Mark> group_mark_;
  std::atomic<bool> log_healthy_{true};
  std::atomic<int> truncation_holds_{0};
  uint64_t seqs_saved_lsn_ = 0;  // every record up to this LSN has its seq in ingest.sqlite
  uint64_t group_bytes_ = 0;     // work_bytes of the decoded batches in group_
  uint64_t last_applied_bytes_ = 0;
  uint64_t drain_bytes_per_s_ = 0;  // the shards' recent apply rate (for retry_after_ms)
  int64_t last_sweep_s_ = 0;
  // Saved producer refs of unlinked series, deleted once the series' expiry is durable.
  std::unordered_map<uint64_t, std::vector<ProducerTable::SavedRef>> refs_to_delete_;
};

}  // namespace tally::collector
