// ZmqIngest: the ROUTER socket SDKs send batches to, and its thread.
//
// Per frame: size check, protobuf decode, de-duplication by (producer, seq), validation
// (decode_batch) and an append to the write-ahead log. Frames are taken in bursts: one log sync
// covers the burst (group commit), then every batch of it is acknowledged and its points go to
// the shards. A batch is acknowledged OK only once its record is durable (per fsync policy); if
// the log cannot be written (disk full) the burst is taken back out of the log and answered
// UNAVAILABLE, and the SDKs resend. Rejected frames are counted and logged at a bounded rate.
// The thread also drives the collector's own metrics and the log's truncation once a second.
// Thread-safety: start()/stop() from the owning thread; everything else runs on the ingest thread.
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
#include "ingest/producer_table.h"
#include "self_metrics.h"
#include "storage/wal.h"
#include "tally/common/endpoints.h"
#include "tally/common/wire.h"  // kMaxBatchBytes

namespace tally::collector {

struct ZmqIngestOptions {
  std::string endpoint = kDefaultIngestEndpoint;
  IngestLimits limits;
  size_t max_batch_bytes = kMaxBatchBytes;
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
  // False while the log cannot be written (then every batch is answered UNAVAILABLE).
  bool log_healthy() const { return log_healthy_.load(std::memory_order_relaxed); }

 private:
  // A batch written to the log, waiting for the group's sync before its ack.
  struct Pending {
    zmq::message_t identity;
    wire::Ack ack;
    DecodedBatch decoded;
    uint64_t lsn;
    uint64_t dropped_batches;
  };
  void run();
  void handle(zmq::message_t& identity, const zmq::message_t& payload);
  void commit_group();
  void set_log_health(bool ok, const Status& why);
  void send_ack(const zmq::message_t& identity, const wire::Ack& ack);
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
  std::unordered_map<uint64_t, uint64_t> dropped_by_producer_;
  std::vector<Pending> group_;
  std::optional<Wal::Mark> group_mark_;
  std::atomic<bool> log_healthy_{true};
  uint64_t seqs_saved_lsn_ = 0;  // every record up to this LSN has its seq in ingest.sqlite
};

}  // namespace tally::collector
